"""Datasets bundled with ketameta.

``bcg()``: the BCG vaccine trials (Colditz et al. 1994), the standard worked example
of meta-analysis (metafor's ``dat.bcg``).

References
----------
.. [1] Colditz, G. A., Brewer, T. F., Berkey, C. S., Wilson, M. E., Burdick, E.,
   Fineberg, H. V., & Mosteller, F. (1994). Efficacy of BCG vaccine in the prevention
   of tuberculosis: Meta-analysis of the published literature. JAMA, 271(9), 698-702.
   https://doi.org/10.1001/jama.1994.03510330076038
"""

from __future__ import annotations

import csv
from importlib import resources
from typing import Any

__all__ = ["bcg"]


def _read_csv(name: str) -> dict[str, list[Any]]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    columns: dict[str, list[Any]] = {key: [] for key in rows[0]}
    for row in rows:
        for key, value in row.items():
            columns[key].append(_parse(value))
    return columns


def _parse(value: str) -> Any:
    if value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def bcg() -> dict[str, list[Any]]:
    """The BCG vaccine trials: 13 studies of BCG against tuberculosis (Colditz et al. 1994).

    Returns
    -------
    dict of lists
        Columns ``trial``, ``author``, ``year``, ``tpos``/``tneg`` (tuberculosis
        cases / non-cases, vaccinated), ``cpos``/``cneg`` (same, not vaccinated),
        ``ablat`` (absolute latitude of the study site) and ``alloc`` (allocation).
        Pass it as ``data=`` to :func:`ketameta.escalc`, or to ``pandas.DataFrame``.

    References
    ----------
    .. [1] Colditz et al. (1994), JAMA 271(9):698-702.

    Examples
    --------
    >>> from ketameta.datasets import bcg
    >>> data = bcg()
    >>> len(data["tpos"]), data["author"][0]
    (13, 'Aronson')
    """
    return _read_csv("bcg.csv")
