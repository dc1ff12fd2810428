"""Warning and error classes raised by ketameta.

Every warning ketameta emits is a subclass of :class:`KetametaWarning`, so a
pipeline can silence or escalate them as a group; every error is a subclass of
the built-in exception a caller would expect (``ValueError``, ``RuntimeError``).
"""

from __future__ import annotations

__all__ = [
    "AccuracyWarning",
    "CollinearityWarning",
    "ConvergenceError",
    "DegenerateDataWarning",
    "KetametaWarning",
    "LocalMaximumWarning",
    "OmittedStudiesWarning",
    "SmallSampleWarning",
    "UndefinedEffectWarning",
    "ZeroCellWarning",
]


class KetametaWarning(UserWarning):
    """Base class of all warnings emitted by ketameta."""


class AccuracyWarning(KetametaWarning):
    """A numerical integration did not reach the requested accuracy (the estimated error
    is in the result)."""


class SmallSampleWarning(KetametaWarning):
    """The data are too few for part of the analysis (e.g. k = 1: τ² is set to 0)."""


class OmittedStudiesWarning(KetametaWarning):
    """Studies with missing values were left out; their indices are in ``result.omitted``."""


class LocalMaximumWarning(KetametaWarning):
    """The ML/REML score's root reached from the start is a local maximum of the
    likelihood lower than the likelihood at τ² = 0, so τ² is set to 0 (as metafor)."""


class UndefinedEffectWarning(KetametaWarning):
    """An effect size is undefined for some studies although their inputs are complete
    (e.g. Fisher's z of a correlation of ±1): their ``yi`` and ``vi`` are NaN, as metafor's
    ``NA``, and the warning names them."""


class ZeroCellWarning(UndefinedEffectWarning):
    """A 2×2 table or count had zero cells that made an effect size undefined."""


class DegenerateDataWarning(KetametaWarning):
    """The data leave a statistic undefined (e.g. an exact fit: the residual variance is 0
    and a test has no reference distribution); it is reported as NaN."""


class CollinearityWarning(KetametaWarning):
    """Moderators that are linear combinations of others were dropped from the model (as
    metafor); their names are in the message and in ``result.dropped``."""


class ConvergenceError(RuntimeError):
    """An iterative estimator did not converge; no result is returned.

    Parameters
    ----------
    method : str
        The τ² estimator that failed.
    iterations : int
        Iterations run before giving up.
    detail : str
        What went wrong.
    what : str
        What was being estimated (``"tau^2"``; ``"variance components"`` for
        :func:`~ketameta.pool_mv`).
    """

    def __init__(
        self, method: str, iterations: int, detail: str = "", *, what: str = "tau^2"
    ) -> None:
        self.method = method
        self.iterations = iterations
        msg = f"the {method} estimator of {what} did not converge in {iterations} iterations"
        if detail:
            msg += f": {detail}"
        msg += " (raise control['maxiter'] or try another `method`)"
        super().__init__(msg)
