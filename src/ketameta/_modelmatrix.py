"""Design matrices for meta-regression: the user's ``mods`` as a numeric ``X`` with the
coefficient names R and metafor print (private; used by ``metareg`` and ``pool_many``).

What the caller gets
--------------------
:func:`model_matrix` ``(mods, *, data=None, intercept=True, k)`` returns a
:class:`ModelMatrix`:

``x``
    ``(k, p)`` float64, read-only, a fresh array: one row per *input* study, in input
    order. A row where a moderator value is missing has NaN in the columns that use it
    (as R's ``model.matrix`` with ``na.action = na.pass``).
``names``
    the coefficient names as metafor prints them: ``"intrcpt"``, ``"ablat"``,
    ``"allocrandom"``, ``"factor(alloc)random"``, ``"ablat:year"``, ``"I(year^2)"``.
``intercept``
    whether column 0 is the intercept.
``missing``
    the input rows with a missing moderator value. The caller omits these studies with an
    ``OmittedStudiesWarning`` naming them; this module never warns.
``spec``
    what :meth:`ModelMatrix.new_rows` needs to build rows for new data (``predict``).
``columns``
    for each column of ``x``, its index in the design first built from ``mods``
    (``-1``: an intercept made from a column of ones, see :meth:`ModelMatrix.reduce`).

The caller then fits on the studies it keeps (``rows``: not missing in ``yi``, ``vi`` or
``mods``) and calls ``mm.reduce(rows)``, which does what metafor 3.8 does, in this order
(checked in ``validation/metafor/make_modelmatrix_reference.R``):

1. **redundant columns** are dropped: a column whose norm, after projecting out the columns
   kept before it, falls below ``1e-7`` times its own norm (an all-zero column: below
   ``1e-7``) — the rule of R's ``lm`` (LINPACK ``dqrdc2`` with limited column pivoting,
   ``tol = 1e-7``), which metafor applies through ``lm(yi ~ X - 1)`` on the studies it
   keeps. So of two collinear columns the *later* one goes: ``~ ablat + I(2*ablat)`` drops
   ``I(2 * ablat)``, a constant column beside the intercept is dropped, and a factor level
   no kept study has (an all-zero column) is dropped. metafor warns
   ``Redundant predictors dropped from the model.`` (without naming them); the caller
   should warn naming ``dropped`` (a ``KetametaWarning``). :func:`drop_redundant` is the
   same rule on bare arrays.
2. **a column of ones becomes the intercept**: if no intercept is left and a kept column is
   within ``1e-8`` of 1 in every kept study (metafor's test: ``|x - 1| < 1e-8``), it is moved
   to the front, set to exactly 1 and named ``"intrcpt"``, and ``intercept`` becomes True
   (so ``cbind(ablat, one)`` with ``intercept=FALSE`` in metafor prints ``intrcpt`` and
   ``ablat``, and the omnibus test leaves it out).

:func:`check_coefficients` gives the error for more coefficients than studies (metafor:
"Number of parameters to be estimated is larger than the number of observations.": it
allows ``p == k`` only for the equal-effects model); :func:`constant_columns` lists
constant non-intercept columns, for a caller that wants to reject them rather than drop
them as metafor does.

What ``mods`` may be
--------------------
- **an array** ``(k,)`` or ``(k, q)`` (list, tuple, ndarray, masked array, pandas
  Series; NumPy scalars inside lists are fine): numbers only (``bool`` counts as 0/1; a
  string is a ``TypeError`` naming the study). ``None``, NaN and masked entries are missing,
  ``inf`` is a ``ValueError``. Names as metafor 3.8 gives them: a vector is ``"mods"`` (a
  named pandas Series keeps its name), the columns of an unnamed matrix are ``".1"``,
  ``".2"``, ... (metafor's own names; a ``(k, 1)`` array is ``"mods"``, where metafor prints
  an empty name). With ``intercept=True`` a column of ones named ``"intrcpt"`` comes first.
- **a mapping or a DataFrame** of columns (name → values; values as for an array, or
  strings, or a pandas Categorical). Read as R reads ``~ a + b + c`` on a data frame:
  numeric columns stay numeric (named by their key); ``str`` / object / pandas
  ``string`` / ``Categorical`` / ``bool`` columns are **factors** with treatment contrasts,
  the first level the reference, one column per other level named key + level
  (``"allocrandom"``, ``"flagTRUE"``). Levels: a Categorical keeps its categories in their
  order, unused ones included (as an R factor keeps its levels: an unused level gives an
  all-zero column that ``reduce`` drops); strings are sorted by code point (R sorts them
  in the collation of its locale: the same in the C locale, but e.g. ``en_US`` puts ``"b"``
  before ``"C"`` — pass a Categorical to fix the order); logicals have the levels
  ``FALSE``, ``TRUE`` that occur. With ``intercept=False`` the first factor is coded with
  all its levels (R's rule for ``~ 0 + ...``). Nullable pandas dtypes (``Int64``,
  ``Float64``, ``boolean``, ``string``) are understood; ``pd.NA``/``None``/NaN are missing.
  A factor with one level is a ``ValueError`` (R: "contrasts can be applied only to
  factors with 2 or more levels").
- **a list of column names of** ``data`` (or one name), e.g. ``mods=["ablat", "alloc"]``:
  the same as the mapping of those columns.
- **a formula string** ``"~ ..."`` evaluated on ``data`` (a DataFrame or mapping) by the
  `formulaic <https://matthewwardrop.github.io/formulaic/>`_ library (the optional extra
  ``pip install 'ketameta[formula]'``), e.g. ``"~ ablat + C(alloc)"``, ``"~ ablat * year"``,
  ``"~ 0 + alloc"``, ``"~ I(year - 1950)"``, ``"~ np.log(ablat)"``, ``"~ poly(ablat, 2)"``.
  Terms are expanded and ordered by formulaic's parser (as R: by degree, then as
  written); the columns are then coded by **R's rules**, not formulaic's: a factor ``F`` in
  a term ``T`` is coded by contrasts if ``T`` without ``F`` is contained in an earlier term
  (the empty term counting as present when there is an intercept), and by indicators of
  all its levels otherwise; without an intercept the first factor of the first term that
  has one gets indicators. Variables within an interaction are ordered by their first
  appearance in the formula and the first varies fastest (R: ``~ h + g:h`` gives
  ``hu:gb``, ``hv:gb``, ...). So ``~ g:h`` gives R's (rank-deficient) full set of cell
  indicators, which ``reduce`` then trims exactly as metafor does. Only treatment
  contrasts with the first level as reference (``C(x)``, ``C(x, levels=[...])``) are
  supported.

  Names, mapped from the Python expression to what R prints for the equivalent R formula:
  ``Intercept`` → ``intrcpt``; a string column ``alloc`` → ``allocrandom``;
  ``C(alloc)`` (or ``factor(alloc)``, accepted as an alias) → ``factor(alloc)random``;
  ``C(x, levels=["c", "b", "a"])`` → ``factor(x, levels = c("c", "b", "a"))b``; numeric
  levels as R prints them (``factor(year)1949``); a logical column or a comparison
  (``I(ablat > 30)``) is a factor as in R → ``flagTRUE``, ``I(ablat > 30)TRUE``;
  ``np.log(x)`` (or ``log(x)``, also accepted) → ``log(x)`` (likewise ``log2``, ``log10``,
  ``log1p``, ``exp``, ``expm1``, ``sqrt``, ``abs``, ``sin``, ``cos``, ``tan``, ``floor``,
  ``ceil`` → ``ceiling``); Python operators in R's notation and spacing (``year ** 2`` →
  ``year^2``, ``x / 10`` → ``x/10``, ``x % 7`` → ``x%%7``, ``and``/``&`` → ``&``,
  ``True`` → ``TRUE``, lists → ``c(...)``); a multi-column term such as ``poly(x, 2)``
  → ``poly(x, 2)1``, ``poly(x, 2)2``; interactions joined by ``:``; non-syntactic column
  names in backticks. Anything else keeps formulaic's spelling. Note that ``^`` inside
  Python code is XOR: ``I(year^2)`` is a ``ValueError`` asking for ``I(year**2)``.
  Transforms are formulaic's (``poly``, ``scale``, ``bs``, ...), whose values may differ
  from R's functions of the same name. A ``"0 +"`` or ``"- 1"`` removes the intercept; the
  formula decides, so ``intercept=False`` with a formula that keeps its intercept is a
  ``ValueError`` (metafor silently ignores ``intercept=`` for a formula).
  A NaN produced by the formula (``np.log(-1)``) counts as missing; ±inf is a
  ``ValueError`` naming the term and study.

Rows for new data (``predict(newmods=...)``): :meth:`ModelMatrix.new_rows`.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from ._results import Owned, array_field
from ._typing import FloatArray
from ._validation import as_float
from ._warnings import CollinearityWarning

__all__ = [
    "INTERCEPT",
    "ModelMatrix",
    "check_coefficients",
    "constant_columns",
    "drop_redundant",
    "model_matrix",
]

IntArray = npt.NDArray[np.intp]

#: the name metafor gives the intercept
INTERCEPT = "intrcpt"
#: R's ``lm`` tolerance for linearly dependent columns (``qr(tol = 1e-7)``)
REDUNDANCY_TOL = 1e-7
#: metafor treats a column as the intercept when every kept value is within this of 1
ONES_TOL = 1e-8

_FORMULA_HINT = "formula `mods` need the formulaic library: pip install 'ketameta[formula]'"

_NUMERIC: Literal["numeric"] = "numeric"
_FACTOR: Literal["factor"] = "factor"
# R's codes in a term: contrasts (1) or indicators of all levels (2); numeric variables: 0
_CONTRAST, _INDICATOR, _NUMBER = 1, 2, 0


# --------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Variable:
    """One variable of the model frame: a numeric block or a factor."""

    name: str  # as R prints it at the start of a column name
    kind: Literal["numeric", "factor"]
    labels: tuple[str, ...]  # factor: level labels; numeric: column suffixes ("" if one)
    logical: bool = False  # a factor made of a logical (levels FALSE/TRUE)


@attrs.frozen(kw_only=True)
class _Design:
    """Variables, terms (variable indices in variable order) and R's coding of each."""

    variables: tuple[_Variable, ...]
    terms: tuple[tuple[int, ...], ...]
    codes: tuple[tuple[int, ...], ...]
    intercept: bool

    def names(self) -> tuple[str, ...]:
        out = [INTERCEPT] if self.intercept else []
        for term, code in zip(self.terms, self.codes, strict=True):
            parts = [self._labels(v, c) for v, c in zip(term, code, strict=True)]
            out.extend(":".join(combo[::-1]) for combo in itertools.product(*parts[::-1]))
        return tuple(out)

    def _labels(self, v: int, code: int) -> list[str]:
        var = self.variables[v]
        labels = var.labels[1:] if code == _CONTRAST else var.labels
        return [var.name + lab for lab in labels]

    def assemble(self, values: Sequence[FloatArray], n: int) -> FloatArray:
        """The design from each variable's columns (factors: indicators of every level)."""
        cols: list[FloatArray] = [np.ones(n)] if self.intercept else []
        for term, code in zip(self.terms, self.codes, strict=True):
            parts = []
            for v, c in zip(term, code, strict=True):
                block = values[v]
                start = 1 if c == _CONTRAST else 0
                parts.append([block[:, j] for j in range(start, block.shape[1])])
            for combo in itertools.product(*parts[::-1]):
                col = combo[-1].copy()
                for other in combo[-2::-1]:
                    col = col * other
                cols.append(col)
        return np.column_stack(cols) if cols else np.empty((n, 0))


@attrs.frozen(kw_only=True)
class _ArraySpec:
    """``mods`` was a numeric array of ``q`` columns."""

    q: int


@attrs.frozen(kw_only=True)
class _Column:
    key: str
    kind: Literal["numeric", "factor"]
    levels: tuple[Any, ...] = ()  # raw level values of a factor, in level order
    logical: bool = False


@attrs.frozen(kw_only=True)
class _ColumnsSpec:
    """``mods`` was a mapping / DataFrame / column names: ``~ c1 + c2 + ...``."""

    columns: tuple[_Column, ...]
    design: _Design


@attrs.frozen(kw_only=True)
class _FormulaSpec:
    """``mods`` was a formula evaluated by formulaic."""

    formula: str
    factor_spec: Any  # formulaic ModelSpec of the variables, one term each, full coding
    factor_exprs: tuple[str, ...]
    logical: tuple[bool, ...]
    columns: tuple[_Column, ...]  # data columns converted before formulaic sees them
    design: _Design


Spec = _ArraySpec | _ColumnsSpec | _FormulaSpec


def _owned(x: FloatArray) -> Any:
    """A fresh array this module made, taken over by the result without a copy."""
    return Owned(x)


def _tuple_field() -> Any:
    return attrs.field(converter=tuple)


@attrs.frozen(kw_only=True)
class ModelMatrix:
    """A design matrix built from ``mods`` (see the module docstring).

    Attributes
    ----------
    x : ndarray, shape (k, p)
        Read-only float64; one row per input study, NaN where a moderator is missing.
    names : tuple of str
        Coefficient names as metafor prints them.
    intercept : bool
        Whether column 0 is the intercept (``"intrcpt"``).
    missing : tuple of int
        Input rows with a missing moderator value.
    spec : object
        What :meth:`new_rows` needs (private structure).
    columns : tuple of int
        Index of each column in the design first built from ``mods``; ``-1`` is an
        intercept made from a column of ones by :meth:`reduce`.
    """

    x: FloatArray = array_field()
    names: tuple[str, ...] = _tuple_field()
    intercept: bool
    missing: tuple[int, ...] = _tuple_field()
    spec: Spec = attrs.field(eq=False, repr=False)
    columns: tuple[int, ...] = _tuple_field()

    @property
    def p(self) -> int:
        """Number of columns (coefficients)."""
        return int(self.x.shape[1])

    def reduce_and_warn(self, rows: Any, units: str) -> tuple[ModelMatrix, tuple[str, ...]]:
        """:meth:`reduce`, with a :class:`~ketameta.CollinearityWarning` naming the dropped
        columns (as metafor's "Redundant predictors dropped"; `units`: what the rows are,
        "studies" or "effects"), attributed to the caller of the public function."""
        reduced, dropped = self.reduce(rows)
        if dropped:
            warnings.warn(
                f"moderators {list(dropped)} are linear combinations of earlier ones (on the "
                f"{units} used) and were dropped (as metafor: 'Redundant predictors dropped')",
                CollinearityWarning,
                stacklevel=3,
            )
        return reduced, dropped

    def reduce(self, rows: Any) -> tuple[ModelMatrix, tuple[str, ...]]:
        """metafor's treatment of the design on the studies it fits (``rows``).

        Drops redundant columns (:func:`drop_redundant`), then, if no intercept is left,
        makes a column equal to 1 (within ``1e-8``) on ``rows`` the intercept: moved to the
        front, exactly 1, named ``"intrcpt"``. Returns the new matrix (its
        :meth:`new_rows` gives the same columns) and the names of the dropped columns.
        """
        idx = _rows_index(rows, self.x.shape[0])
        keep = _independent(self.x[idx])
        p = self.x.shape[1]
        dropped: tuple[str, ...]
        if len(keep) == p:
            x = self.x
            names, dropped, cols = self.names, (), list(self.columns)
        else:
            x = self.x[:, keep]
            names = tuple(self.names[j] for j in keep)
            dropped = tuple(nm for j, nm in enumerate(self.names) if j not in keep)
            cols = [self.columns[j] for j in keep]
        intercept = self.intercept
        if not intercept and idx.size:
            with np.errstate(invalid="ignore"):
                ones = np.flatnonzero(np.all(np.abs(x[idx] - 1.0) < ONES_TOL, axis=0))
            if ones.size:
                j = int(ones[0])
                order = [j] + [i for i in range(x.shape[1]) if i != j]
                x = x[:, order]
                x[:, 0] = 1.0
                names = (INTERCEPT, *(names[i] for i in order[1:]))
                cols = [-1, *(cols[i] for i in order[1:])]
                intercept = True
        if x is self.x and intercept == self.intercept:
            return self, dropped
        out = ModelMatrix(
            x=_owned(np.ascontiguousarray(x, dtype=np.float64)),
            names=names,
            intercept=intercept,
            missing=self.missing,
            spec=self.spec,
            columns=tuple(cols),
        )
        return out, dropped

    def new_rows(self, newmods: Any = None, *, data: Any = None) -> FloatArray:
        """Rows of this design for new moderator values (for ``predict``).

        Parameters
        ----------
        newmods : array_like, mapping or DataFrame
            - positional values of this matrix's columns: ``(n, p)``, or ``(n, p - 1)``
              without the intercept (then it is added); a 1-D vector is ``n`` values of
              the one moderator when there is one, else one row;
            - a mapping of coefficient names (without the intercept) to values, as
              metafor's named ``newmods``;
            - for a model built from a mapping, DataFrame or formula: a mapping or
              DataFrame of the *variables* (e.g. ``{"ablat": [20, 40], "alloc":
              ["random", "random"]}``), coded with the levels of the fitted data; an
              unknown level is a ``ValueError``; a list of column names of ``data``.
        data : mapping or DataFrame, optional
            For a formula model, the new data may be given here instead.

        Returns
        -------
        ndarray, shape (n, p)
            A fresh float64 array (missing numeric values give NaN).
        """
        spec = self.spec
        if newmods is None and data is not None and not isinstance(spec, _ArraySpec):
            newmods, data = data, None
        if isinstance(newmods, str) or (
            _is_sequence_of_str(newmods) and not isinstance(spec, _ArraySpec)
        ):
            if data is None:
                msg = "`newmods` names columns, so `data` is required"
                raise TypeError(msg)
            keys = [newmods] if isinstance(newmods, str) else list(newmods)
            newmods = {key: _data_column(data, key, "data") for key in keys}
        if newmods is None:
            msg = "`newmods` is required"
            raise TypeError(msg)
        if _is_table(newmods):
            if isinstance(newmods, Mapping) and all(
                isinstance(v, str) or not hasattr(v, "__len__") for v in newmods.values()
            ):
                newmods = {key: [v] for key, v in newmods.items()}  # one row of scalars
            keys = _table_keys(newmods)
            moderators = [nm for nm in self.names if nm != INTERCEPT]
            if isinstance(spec, _ColumnsSpec | _FormulaSpec):
                variables = [c.key for c in spec.columns]
                if set(keys) != set(moderators) or not set(variables) - set(keys):
                    absent = [v for v in variables if v not in keys]
                    if absent:
                        msg = (
                            f"`newmods` has no column {absent[0]!r}: give the variables "
                            f"{variables} (or the coefficients {moderators} by name)"
                        )
                        raise ValueError(msg)
                    return self._select(_new_full(spec, newmods))
            return self._by_name(newmods, keys, moderators)
        return self._positional(newmods)

    def _select(self, full: FloatArray) -> FloatArray:
        out = np.empty((full.shape[0], len(self.columns)))
        for i, j in enumerate(self.columns):
            out[:, i] = 1.0 if j < 0 else full[:, j]
        return out

    def _by_name(self, newmods: Any, keys: list[str], moderators: list[str]) -> FloatArray:
        unknown = [key for key in keys if key not in moderators]
        absent = [nm for nm in moderators if nm not in keys]
        if unknown or absent:
            msg = (
                "`newmods` must name the coefficients "
                f"{moderators} (without the intercept)"
                + (f"; unknown: {unknown}" if unknown else "")
                + (f"; missing: {absent}" if absent else "")
            )
            raise ValueError(msg)
        cols = [_as_numeric_vector(_get(newmods, nm), f"newmods[{nm!r}]") for nm in moderators]
        n = _common_length(cols, "newmods")
        out = np.empty((n, self.p))
        j = 0
        for i, nm in enumerate(self.names):
            if nm == INTERCEPT:
                out[:, i] = 1.0
            else:
                out[:, i] = cols[j]
                j += 1
        return out

    def _positional(self, newmods: Any) -> FloatArray:
        arr = _as_numeric(newmods, "newmods", ndim=None)
        q = self.p - int(self.intercept)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim == 1:
            if q == 1:
                arr = arr.reshape(-1, 1)
            elif arr.shape[0] in (q, self.p):
                arr = arr.reshape(1, -1)
            else:
                msg = (
                    f"`newmods` has {arr.shape[0]} values but the model has {q} moderator columns"
                )
                raise ValueError(msg)
        if arr.ndim != 2:
            msg = f"`newmods` must be 1- or 2-dimensional, got shape {arr.shape}"
            raise ValueError(msg)
        _reject_inf(arr, "newmods")
        if arr.shape[1] == self.p:
            return arr
        if self.intercept and arr.shape[1] == q:
            return np.column_stack([np.ones(arr.shape[0]), arr])
        widths = f"{q} (without the intercept) or {self.p}" if self.intercept else f"{self.p}"
        msg = f"`newmods` has {arr.shape[1]} columns but the model needs {widths}: {self.names}"
        raise ValueError(msg)


# --------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------


def model_matrix(mods: Any, *, data: Any = None, intercept: bool = True, k: int) -> ModelMatrix:
    """The design matrix of ``mods`` for ``k`` studies (see the module docstring).

    Raises ``TypeError`` / ``ValueError`` naming ``mods`` (and the study, 0-based) for
    non-numeric values, ±inf, the wrong number of rows, a factor with one level, a
    moderator missing in every study, or a formula without terms; ``ImportError`` with the
    install hint for a formula without formulaic.

    Examples
    --------
    >>> from ketameta._modelmatrix import model_matrix
    >>> mods = {"ablat": [44, 55, 13, 27], "alloc": ["random", "alternate", "random", None]}
    >>> mm = model_matrix(mods, k=4)
    >>> mm.names, mm.missing
    (('intrcpt', 'ablat', 'allocrandom'), (3,))
    >>> mm.x
    array([[ 1., 44.,  1.],
           [ 1., 55.,  0.],
           [ 1., 13.,  1.],
           [ 1., 27., nan]])
    >>> mm.new_rows({"ablat": [30], "alloc": ["alternate"]})
    array([[ 1., 30.,  0.]])
    >>> twice = model_matrix({"ablat": [44, 55, 13, 27], "double": [88, 110, 26, 54]}, k=4)
    >>> reduced, dropped = twice.reduce([0, 1, 2, 3])
    >>> reduced.names, dropped
    (('intrcpt', 'ablat'), ('double',))
    """
    intercept = _check_bool(intercept, "intercept")
    if type(mods) is np.ndarray and data is None:
        return _from_array(mods, intercept, k)  # (the usual case: no names to look up)
    if mods is None:
        msg = "`mods` is required"
        raise TypeError(msg)
    if isinstance(mods, str):
        if "~" in mods:
            return _from_formula(mods, data, intercept, k)
        if data is not None and _has_column(data, mods):
            return _from_columns({mods: _data_column(data, mods, "data")}, intercept, k)
        msg = (
            f"`mods` {mods!r} is neither a formula (it would start with '~', e.g. "
            f"'~ {mods}') nor a column of `data`"
        )
        raise ValueError(msg)
    if _is_sequence_of_str(mods) and data is not None:
        cols = {}
        for key in mods:
            if not _has_column(data, key):
                msg = f"`mods` names the column {key!r}, which `data` does not have"
                raise ValueError(msg)
            cols[key] = _data_column(data, key, "data")
        return _from_columns(cols, intercept, k)
    if data is not None:
        msg = "`data` is only used with a formula or column names in `mods`"
        raise TypeError(msg)
    if _is_sequence_of_str(mods):
        msg = (
            "`mods` is a list of strings: to use columns of a table by name pass `data=`; "
            "a categorical moderator goes in a mapping or DataFrame ({'alloc': [...]})"
        )
        raise TypeError(msg)
    if _is_table(mods):
        return _from_columns({key: _get(mods, key) for key in _table_keys(mods)}, intercept, k)
    return _from_array(mods, intercept, k)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        msg = f"`{name}` must be True or False, got {value!r}"
        raise TypeError(msg)
    return bool(value)


def drop_redundant(
    x: FloatArray, names: Sequence[str], rows: Any
) -> tuple[FloatArray, tuple[str, ...], tuple[str, ...]]:
    """Drop the columns of ``x[rows]`` that are linear combinations of earlier ones.

    R's rule, as ``lm`` (and so metafor, which fits ``lm(yi ~ X - 1)`` to find them)
    applies it [1]_: the columns are taken left to right; a column is redundant when the
    norm of what is left of it after projecting out the columns kept so far is below
    ``1e-7`` times its own norm (an all-zero column: below ``1e-7``), so of two collinear
    columns the later one goes.

    Parameters
    ----------
    x : ndarray, shape (k, p)
    names : sequence of str
        Column names.
    rows : array_like of int or bool
        The studies the model is fitted on (no NaN in ``x`` there).

    Returns
    -------
    x : ndarray
        ``x`` without the redundant columns (all rows; a new array).
    kept, dropped : tuple of str
        Names of the kept and of the dropped columns.

    References
    ----------
    .. [1] Dongarra, J. J., Bunch, J. R., Moler, C. B. & Stewart, G. W. (1979). *LINPACK
       Users' Guide*, ch. 9 (QR with column pivoting), SIAM. doi:10.1137/1.9781611971811;
       R's ``qr`` (``LAPACK = FALSE``, ``tol = 1e-07``) uses a modification with limited
       pivoting that moves negligible columns to the end.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        msg = f"`x` must be 2-D with one column per name, got shape {arr.shape}"
        raise ValueError(msg)
    keep = _independent(arr[_rows_index(rows, arr.shape[0])])
    kept = tuple(names[j] for j in keep)
    dropped = tuple(nm for j, nm in enumerate(names) if j not in keep)
    return np.array(arr[:, keep], dtype=np.float64), kept, dropped


def _independent(sub: FloatArray) -> list[int]:
    """Indices of the columns of ``sub`` kept by R's rule (see :func:`drop_redundant`):
    Gram-Schmidt, left to right, each column against the columns kept before it
    (twice, so the residual is exact to rounding)."""
    if not np.isfinite(sub).all():
        msg = "`x` has missing or non-finite values in the rows of the fit"
        raise ValueError(msg)
    n, p = sub.shape
    if n == 0:
        return []
    work = np.array(sub, dtype=np.float64, order="F")
    norms = np.sqrt(np.einsum("ij,ij->j", work, work))
    keep: list[int] = []
    for j in range(p):
        col = work[:, j]
        left = math.sqrt(float(col @ col))
        if left < REDUNDANCY_TOL * (norms[j] if norms[j] > 0 else 1.0):
            continue
        keep.append(j)
        if j + 1 < p:
            q = col / left
            rest = work[:, j + 1 :]
            rest -= q[:, None] * (q @ rest)
            rest -= q[:, None] * (q @ rest)
    return keep


def constant_columns(x: FloatArray, rows: Any, *, intercept: bool) -> tuple[int, ...]:
    """Indices of the non-intercept columns of ``x`` that are constant on ``rows``."""
    arr = np.asarray(x, dtype=np.float64)[_rows_index(rows, np.shape(x)[0])]
    start = 1 if intercept else 0
    if arr.shape[0] == 0:
        return ()
    same = np.all(arr == arr[:1], axis=0)
    return tuple(int(j) for j in np.flatnonzero(same) if j >= start)


def check_coefficients(p: int, k: int, *, equal_effects: bool = False) -> None:
    """Raise the ``ValueError`` for more coefficients than a model of ``k`` studies allows.

    metafor fits ``p <= k`` coefficients with the equal-effects model and ``p < k``
    otherwise (one degree of freedom is needed for τ²).
    """
    if p > k or (p == k and not equal_effects):
        need = "at most as many" if equal_effects else "fewer"
        msg = (
            f"the model has {p} coefficients but only {k} studies: it needs {need} "
            "coefficients than studies (remove moderators or factor levels)"
        )
        raise ValueError(msg)


# --------------------------------------------------------------------------------------
# input conversion
# --------------------------------------------------------------------------------------


def _rows_index(rows: Any, k: int) -> IntArray:
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (k,):
            msg = f"`rows` as a mask must have {k} entries, got shape {arr.shape}"
            raise ValueError(msg)
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.empty(0, dtype=np.intp)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        msg = "`rows` must be a 1-D array of study indices or a boolean mask"
        raise TypeError(msg)
    out = arr.astype(np.intp)
    if out.min() < -k or out.max() >= k:
        msg = f"`rows` has an index outside 0..{k - 1}"
        raise ValueError(msg)
    return out


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas"


def _is_table(obj: Any) -> bool:
    """A mapping of columns or a DataFrame (not a Series)."""
    if isinstance(obj, Mapping):
        return True
    return _is_pandas(obj) and hasattr(obj, "columns")


def _table_keys(obj: Any) -> list[str]:
    keys = list(obj.columns) if hasattr(obj, "columns") else list(obj.keys())
    for key in keys:
        if not isinstance(key, str):
            msg = f"moderator names must be strings, got {key!r}"
            raise TypeError(msg)
    return keys


def _get(obj: Any, key: str) -> Any:
    return obj[key]


def _has_column(data: Any, key: str) -> bool:
    try:
        return key in (list(data.columns) if hasattr(data, "columns") else data)
    except TypeError:
        return False


def _data_column(data: Any, key: str, what: str) -> Any:
    if not _is_table(data):
        msg = f"`{what}` must be a mapping of columns or a pandas DataFrame, got {type(data)!r}"
        raise TypeError(msg)
    if not _has_column(data, key):
        msg = f"`{what}` has no column {key!r}"
        raise ValueError(msg)
    return data[key]


def _is_sequence_of_str(obj: Any) -> bool:
    return (
        isinstance(obj, list | tuple)
        and len(obj) > 0
        and all(isinstance(item, str) for item in obj)
    )


def _is_missing(value: Any) -> bool:
    if value is None or value is np.ma.masked:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    name = type(value).__name__
    return name in ("NAType", "NaTType")


def _common_length(cols: Sequence[FloatArray], name: str) -> int:
    n = cols[0].shape[0]
    for c in cols[1:]:
        if c.shape[0] != n:
            msg = f"the columns of `{name}` have different lengths"
            raise ValueError(msg)
    return int(n)


def _object_values(values: Any) -> npt.NDArray[Any]:
    """Values as a 1-D object array with None for missing (masked arrays, pandas NA)."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        out = np.array(np.ma.getdata(values), dtype=object, copy=True)
        out[mask] = None
        return out
    if _is_pandas(values) and hasattr(values, "to_numpy"):
        return np.asarray(values.to_numpy(dtype=object, na_value=None), dtype=object)
    arr = np.empty(len(values), dtype=object) if isinstance(values, list | tuple) else None
    if arr is not None:
        for i, v in enumerate(values):
            arr[i] = v
        return arr
    return np.asarray(values, dtype=object)


def _as_numeric(values: Any, name: str, *, ndim: int | None) -> FloatArray:
    """A new float64 array by the shared conversion (:func:`ketameta._validation.as_float`:
    None/NaN/masked/pd.NA → NaN, bool → 0/1, Decimal and NumPy scalars accepted, strings
    and dates a ``TypeError`` naming `name` and the study)."""
    out = as_float(values, name)
    if ndim is not None and out.ndim != ndim:
        msg = f"`{name}` must be {ndim}-dimensional, got an array of shape {out.shape}"
        raise ValueError(msg)
    return out


def _as_numeric_vector(values: Any, name: str) -> FloatArray:
    out = _as_numeric(values, name, ndim=None)
    if out.ndim == 0:
        out = out.reshape(1)
    if out.ndim != 1:
        msg = f"`{name}` must be 1-dimensional, got an array of shape {out.shape}"
        raise ValueError(msg)
    _reject_inf(out, name)
    return out


def _where(i: int, shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return f"study {i // shape[1]}, column {i % shape[1]}"
    return f"study {i}"


def _reject_inf(arr: FloatArray, name: str, label: str | None = None) -> None:
    bad = np.isinf(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        value = float(arr.reshape(-1)[i])
        where = _where(i, arr.shape)
        msg = (
            f"`{name}` must be finite (NaN marks a missing value); {where} has "
            f"{label or name}={value!r}"
        )
        raise ValueError(msg)


def _check_rows(n: int, k: int, what: str) -> None:
    if n != k:
        msg = f"{what} has {n} rows but there are {k} studies"
        raise ValueError(msg)


def _from_array(mods: Any, intercept: bool, k: int) -> ModelMatrix:
    if type(mods) is np.ndarray and mods.dtype == np.float64 and mods.size:
        fast = _from_float_array(mods, intercept, k)
        if fast is not None:
            return fast
    name = "mods"
    series_name = getattr(mods, "name", None) if _is_pandas(mods) else None
    arr = _as_numeric(mods, "mods", ndim=None)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    _reject_inf(arr, "mods")
    if arr.ndim == 1:
        if isinstance(series_name, str) and series_name:
            name = series_name
        arr = arr.reshape(-1, 1)
        labels: tuple[str, ...] = (name,)
    elif arr.ndim == 2:
        q = arr.shape[1]
        labels = (name,) if q == 1 else tuple(f".{j + 1}" for j in range(q))
    else:
        msg = f"`mods` must be 1- or 2-dimensional, got an array of shape {arr.shape}"
        raise ValueError(msg)
    _check_rows(arr.shape[0], k, "`mods`")
    if arr.shape[1] == 0:
        msg = "`mods` has no columns"
        raise ValueError(msg)
    nan = np.isnan(arr)
    missing: tuple[int, ...] = ()
    if nan.any():
        if k and nan.all(axis=0).any():
            j = int(np.flatnonzero(nan.all(axis=0))[0])
            msg = f"`mods` column {labels[j]!r} is missing for every study"
            raise ValueError(msg)
        missing = tuple(int(i) for i in np.flatnonzero(nan.any(axis=1)))
    if intercept:
        x = np.empty((k, arr.shape[1] + 1))
        x[:, 0] = 1.0
        x[:, 1:] = arr
    else:
        x = arr
    names = ((INTERCEPT,) if intercept else ()) + labels
    return ModelMatrix(
        x=_owned(x),
        names=names,
        intercept=intercept,
        missing=missing,
        spec=_ArraySpec(q=arr.shape[1]),
        columns=tuple(range(x.shape[1])),
    )


#: the coefficient names of the columns of a plain array, per number of columns
_ARRAY_LABELS: dict[int, tuple[str, ...]] = {}


def _from_float_array(mods: FloatArray, intercept: bool, k: int) -> ModelMatrix | None:
    """:func:`_from_array` for the usual case, a plain float64 array ``(k,)`` or ``(k, q)``
    of finite values: one check and one copy into the design (NaN or ±inf return None:
    the general path marks the missing rows or names the offending study)."""
    if mods.ndim == 1:
        q = 1
    elif mods.ndim == 2 and mods.shape[1] > 0:
        q = mods.shape[1]
    else:
        return None
    if mods.shape[0] != k or not np.logical_and.reduce(np.isfinite(mods), axis=None):
        return None
    p = q + 1 if intercept else q
    x = np.empty((k, p))
    if intercept:
        x[:, 0] = 1.0
        x[:, 1:] = mods.reshape(k, q)
    else:
        x[:] = mods.reshape(k, q)
    labels = _ARRAY_LABELS.get(q) if mods.ndim == 2 else ("mods",)
    if labels is None:
        labels = ("mods",) if q == 1 else tuple(f".{j + 1}" for j in range(q))
        _ARRAY_LABELS[q] = labels
    return ModelMatrix(
        x=_owned(x),
        names=((INTERCEPT,) if intercept else ()) + labels,
        intercept=intercept,
        missing=(),
        spec=_ArraySpec(q=q),
        columns=tuple(range(p)),
    )


# --------------------------------------------------------------------------------------
# columns: numeric or factor
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Prepared:
    """One input column, converted: numeric values, or factor codes (-1 = missing)."""

    column: _Column
    numeric: FloatArray | None = None
    codes: IntArray | None = None


def _category_info(values: Any) -> tuple[list[Any], IntArray] | None:
    """(categories, codes) of a pandas Categorical / category Series, else None."""
    cat = values
    if _is_pandas(values) and str(getattr(values, "dtype", "")) == "category":
        cat = values.array if hasattr(values, "array") else values
    if _is_pandas(cat) and hasattr(cat, "categories") and hasattr(cat, "codes"):
        return list(cat.categories), np.asarray(cat.codes, dtype=np.intp).copy()
    return None


def _prepare_column(values: Any, key: str, what: str, *, like: _Column | None = None) -> _Prepared:
    """Convert one column; with ``like`` (new data), code it as the fitted column."""
    label = f"`{what}` column {key!r}"
    if isinstance(values, str | bytes):
        msg = f"{label} must be a sequence of values, got the string {values!r}"
        raise TypeError(msg)
    if not hasattr(values, "__len__"):
        values = [values]
    if like is not None and like.kind == _NUMERIC:
        out = _as_numeric(values, f"{what}[{key!r}]", ndim=1)
        _reject_inf(out, what, key)
        return _Prepared(column=like, numeric=out)
    cats = _category_info(values)
    if cats is not None:
        levels, codes = cats
        if like is not None:
            return _recode(levels, codes, like, label)
        return _Prepared(column=_Column(key=key, kind=_FACTOR, levels=tuple(levels)), codes=codes)
    dtype = getattr(values, "dtype", None)
    kind = getattr(dtype, "kind", None)
    if kind in ("i", "u", "f") or str(dtype).startswith(("Int", "UInt", "Float")):
        out = _as_numeric(values, f"{what}[{key!r}]", ndim=1)
        _reject_inf(out, what, key)
        return _Prepared(column=_Column(key=key, kind=_NUMERIC), numeric=out)
    obj = _object_values(values)
    if obj.ndim != 1:
        msg = f"{label} must be 1-dimensional, got shape {obj.shape}"
        raise ValueError(msg)
    present = [v for v in obj if not _is_missing(v)]
    is_bool = [isinstance(v, bool | np.bool_) for v in present]
    is_str = [isinstance(v, str) for v in present]
    if like is not None:
        return _recode_values(obj, like, label)
    if present and all(is_bool):
        logical_levels = tuple(sorted({bool(v) for v in present}))
        col = _Column(key=key, kind=_FACTOR, levels=logical_levels, logical=True)
        return _recode_values(obj, col, label)
    if present and all(is_str):
        col = _Column(key=key, kind=_FACTOR, levels=tuple(sorted(set(present))))
        return _recode_values(obj, col, label)
    if any(is_str) or any(is_bool):

        def sort(v: Any) -> str:
            return (
                "string"
                if isinstance(v, str)
                else "logical"
                if isinstance(v, bool | np.bool_)
                else "number"
            )

        seen = [(i, v) for i, v in enumerate(obj) if not _is_missing(v)]
        i, first = seen[0]
        j, other = next((j, v) for j, v in seen if sort(v) != sort(first))
        msg = (
            f"{label} mixes {sort(first)}s and {sort(other)}s (study {i}: {first!r}; "
            f"study {j}: {other!r})"
        )
        raise TypeError(msg)
    out = _as_numeric(obj, f"{what}[{key!r}]", ndim=1)
    _reject_inf(out, what, key)
    return _Prepared(column=_Column(key=key, kind=_NUMERIC), numeric=out)


def _recode(levels: list[Any], codes: IntArray, like: _Column, label: str) -> _Prepared:
    lookup = {lv: i for i, lv in enumerate(like.levels)}
    new = np.full(codes.shape, -1, dtype=np.intp)
    for i, c in enumerate(codes):
        if c < 0:
            continue
        value = levels[c]
        if value not in lookup:
            msg = f"{label}: {value!r} (row {i}) is not one of the levels {list(like.levels)}"
            raise ValueError(msg)
        new[i] = lookup[value]
    return _Prepared(column=like, codes=new)


def _recode_values(obj: npt.NDArray[Any], col: _Column, label: str) -> _Prepared:
    lookup = {lv: i for i, lv in enumerate(col.levels)}
    codes = np.full(obj.shape, -1, dtype=np.intp)
    for i, v in enumerate(obj):
        if _is_missing(v):
            continue
        key = bool(v) if col.logical and isinstance(v, bool | np.bool_) else v
        try:
            codes[i] = lookup[key]
        except (KeyError, TypeError):
            msg = f"{label}: {v!r} (row {i}) is not one of the levels {list(col.levels)}"
            raise ValueError(msg) from None
    return _Prepared(column=col, codes=codes)


def _indicators(codes: IntArray, n_levels: int) -> FloatArray:
    out = np.zeros((codes.shape[0], n_levels))
    ok = codes >= 0
    out[np.flatnonzero(ok), codes[ok]] = 1.0
    out[~ok] = np.nan
    return out


def _check_levels(name: str, labels: Sequence[str]) -> None:
    if len(labels) < 2:
        which = f" ({labels[0]!r})" if labels else ""
        msg = (
            f"`mods`: the factor {name} has {len(labels)} level{which}; a factor needs at "
            "least 2 levels (R: 'contrasts can be applied only to factors with 2 or more "
            "levels')"
        )
        raise ValueError(msg)


def _r_codes(
    terms: Sequence[tuple[int, ...]], is_factor: Sequence[bool], intercept: bool
) -> tuple[tuple[int, ...], ...]:
    """R's coding of every variable in every term (see the module docstring)."""
    codes: list[list[int]] = []
    for t, term in enumerate(terms):
        row = []
        for v in term:
            if not is_factor[v]:
                row.append(_NUMBER)
                continue
            margin = set(term) - {v}
            if not margin or any(margin <= set(prev) for prev in terms[:t]):
                row.append(_CONTRAST)
            else:
                row.append(_INDICATOR)
        codes.append(row)
    if not intercept:
        first = next(
            ((t, j) for t, term in enumerate(terms) for j, v in enumerate(term) if is_factor[v]),
            None,
        )
        if first is not None:
            codes[first[0]][first[1]] = _INDICATOR
    return tuple(tuple(row) for row in codes)


def _level_label(value: Any) -> str:
    """A factor level as R prints it."""
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _r_double(float(value))
    return str(value)


def _variable_of(col: _Column) -> _Variable:
    if col.kind == _NUMERIC:
        return _Variable(name=col.key, kind=_NUMERIC, labels=("",))
    return _Variable(
        name=col.key,
        kind=_FACTOR,
        labels=tuple(_level_label(lv) for lv in col.levels),
        logical=col.logical,
    )


def _values_of(prepared: Sequence[_Prepared]) -> list[FloatArray]:
    values = []
    for p in prepared:
        if p.column.kind == _NUMERIC:
            assert p.numeric is not None
            values.append(p.numeric.reshape(-1, 1))
        else:
            assert p.codes is not None
            values.append(_indicators(p.codes, len(p.column.levels)))
    return values


def _from_columns(cols: Mapping[str, Any], intercept: bool, k: int) -> ModelMatrix:
    if not cols:
        msg = "`mods` has no columns"
        raise ValueError(msg)
    prepared = []
    for key, values in cols.items():
        p = _prepare_column(values, key, "mods")
        n = p.numeric.shape[0] if p.numeric is not None else len(p.codes)  # type: ignore[arg-type]
        _check_rows(n, k, f"`mods` column {key!r}")
        prepared.append(p)
    columns = tuple(p.column for p in prepared)
    variables = tuple(_variable_of(c) for c in columns)
    values = _values_of(prepared)
    for var, val in zip(variables, values, strict=True):
        if k and np.isnan(val).all():
            msg = f"`mods` column {var.name!r} is missing for every study"
            raise ValueError(msg)
        if var.kind == _FACTOR:
            _check_levels(repr(var.name), var.labels)
    terms = tuple((i,) for i in range(len(columns)))
    codes = _r_codes(terms, [v.kind == _FACTOR for v in variables], intercept)
    design = _Design(variables=variables, terms=terms, codes=codes, intercept=intercept)
    x = design.assemble(values, k)
    names = design.names()
    missing = _missing_rows(values)
    return ModelMatrix(
        x=_owned(x),
        names=names,
        intercept=intercept,
        missing=missing,
        spec=_ColumnsSpec(columns=columns, design=design),
        columns=tuple(range(len(names))),
    )


def _missing_rows(values: Sequence[FloatArray]) -> tuple[int, ...]:
    if not values:
        return ()
    bad = np.zeros(values[0].shape[0], dtype=bool)
    for v in values:
        bad |= np.isnan(v).any(axis=1)
    return tuple(int(i) for i in np.flatnonzero(bad))


def _new_full(spec: _ColumnsSpec | _FormulaSpec, newmods: Any) -> FloatArray:
    """The full design (before ``reduce``) for new data of the variables."""
    if isinstance(spec, _ColumnsSpec):
        prepared = []
        for col in spec.columns:
            if not _has_column(newmods, col.key):
                msg = f"`newmods` has no column {col.key!r}"
                raise ValueError(msg)
            prepared.append(_prepare_column(newmods[col.key], col.key, "newmods", like=col))
        values = _values_of(prepared)
        n = _common_length([v[:, 0] for v in values], "newmods")
        _check_new_factors(spec.design, values)
        return spec.design.assemble(values, n)
    return _formula_new(spec, newmods)


def _check_new_factors(design: _Design, values: Sequence[FloatArray]) -> None:
    for var, val in zip(design.variables, values, strict=True):
        if var.kind == _FACTOR:
            bad = np.isnan(val).any(axis=1) | (np.nansum(val, axis=1) == 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                msg = (
                    f"`newmods`: {var.name} is missing or not one of the levels "
                    f"{list(var.labels)} in row {i}"
                )
                raise ValueError(msg)


# --------------------------------------------------------------------------------------
# formulas (formulaic)
# --------------------------------------------------------------------------------------


def _import_formulaic() -> Any:
    try:
        import formulaic
    except ImportError as exc:
        raise ImportError(_FORMULA_HINT) from exc
    return formulaic


#: NumPy functions named as in R (``np.log(x)`` → ``log(x)``); also usable bare
_R_FUNCTIONS = {
    "log": "log",
    "log2": "log2",
    "log10": "log10",
    "log1p": "log1p",
    "exp": "exp",
    "expm1": "expm1",
    "sqrt": "sqrt",
    "abs": "abs",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "floor": "floor",
    "ceil": "ceiling",
}


def _context() -> dict[str, Any]:
    """Names a formula may use besides formulaic's: R's ``factor`` and math functions."""
    from formulaic.transforms import C

    ctx: dict[str, Any] = {"factor": C, "np": np, "numpy": np}
    for py, r in _R_FUNCTIONS.items():
        ctx[py] = getattr(np, py)
        ctx[r] = getattr(np, py)
    return ctx


def _parse_formula(formula: str) -> tuple[Any, list[Any]]:
    """(formulaic SimpleFormula, factors in order of first appearance in the formula)."""
    formulaic = _import_formulaic()
    from formulaic.parser import DefaultFormulaParser

    try:
        parsed = formulaic.Formula(formula)
    except Exception as exc:  # formulaic's parse errors have several classes
        msg = f"`mods`: cannot parse the formula {formula!r}: {exc}"
        raise ValueError(msg) from exc
    if not isinstance(parsed, formulaic.SimpleFormula):
        msg = f"`mods` must be a one-sided formula such as '~ ablat + C(alloc)', got {formula!r}"
        raise ValueError(msg)
    order: dict[str, int] = {}
    for token in DefaultFormulaParser().get_tokens(formula):
        if token.kind.value in ("name", "python"):
            expr = token.to_factor().expr
            order.setdefault(expr, len(order))
    factors: list[Any] = []
    for term in parsed:
        for factor in term.factors:
            if factor.eval_method.value == "literal":
                continue
            if factor not in factors:
                factors.append(factor)
    factors.sort(key=lambda f: order.get(f.expr, len(order)))
    return parsed, factors


def _python_ast(expr: str) -> ast.expr | None:
    try:
        return ast.parse(expr, mode="eval").body
    except SyntaxError:
        return None


def _is_logical_expr(node: ast.expr | None) -> bool:
    """A comparison (or a logical combination of them): R makes it a logical factor."""
    if node is None:
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "I":
        return len(node.args) == 1 and _is_logical_expr(node.args[0])
    if isinstance(node, ast.Compare | ast.BoolOp):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        return _is_logical_expr(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        return _is_logical_expr(node.left) and _is_logical_expr(node.right)
    return False


def _has_xor(node: ast.expr | None) -> bool:
    return node is not None and any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitXor) for n in ast.walk(node)
    )


def _frame(data: Any, k: int) -> Any:
    """``data`` as a pandas DataFrame (a shallow copy: never modified)."""
    import pandas as pd

    if data is None:
        msg = "a formula in `mods` needs `data` (a DataFrame or a mapping of columns)"
        raise TypeError(msg)
    if not _is_table(data):
        msg = f"`data` must be a pandas DataFrame or a mapping of columns, got {type(data)!r}"
        raise TypeError(msg)
    if hasattr(data, "columns"):
        frame = data.copy(deep=False)
    else:
        cols = {}
        for key, values in data.items():
            if np.ndim(values) == 0:
                msg = f"`data` column {key!r} must be a sequence of values"
                raise TypeError(msg)
            if isinstance(values, np.ma.MaskedArray) or not (
                _is_pandas(values) or isinstance(values, np.ndarray)
            ):
                values = _object_values(values)
            cols[key] = values
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            msg = f"the columns of `data` have different lengths {sorted(lengths)}"
            raise ValueError(msg)
        frame = pd.DataFrame({key: pd.Series(v) for key, v in cols.items()})
    _check_rows(len(frame), k, "`data`")
    return frame.reset_index(drop=True)


def _formulaic_column(p: _Prepared) -> Any:
    """A converted column as formulaic should see it."""
    import pandas as pd

    col = p.column
    if col.kind == _NUMERIC:
        return pd.Series(p.numeric, dtype=np.float64)
    assert p.codes is not None
    if col.logical:
        vals = np.array([float(col.levels[c]) if c >= 0 else np.nan for c in p.codes])
        if not np.isnan(vals).any():
            return pd.Series(vals.astype(bool))
        return pd.Series(vals)
    return pd.Series(pd.Categorical.from_codes(p.codes, categories=list(col.levels)))


def _full_levels_logical(col: _Column) -> _Column:
    # a logical column is offered to formulaic as 0/1; R's levels are the values present,
    # for new data we accept both
    return attrs.evolve(col, levels=(False, True)) if col.logical else col


def _convert_frame(
    frame: Any, names: Sequence[str], like: Sequence[_Column] | None
) -> tuple[Any, tuple[_Column, ...]]:
    columns = []
    frame = frame.copy(deep=False)
    for i, key in enumerate(names):
        if key not in frame.columns:
            if like is not None:
                msg = f"`newmods` has no column {key!r}"
                raise ValueError(msg)
            continue
        p = _prepare_column(
            frame[key],
            key,
            "data" if like is None else "newmods",
            like=None if like is None else _full_levels_logical(like[i]),
        )
        frame[key] = _formulaic_column(p)
        columns.append(p.column)
    return frame, tuple(columns)


def _evaluate(factor_formula: Any, frame: Any, spec: Any | None) -> tuple[Any, list[FloatArray]]:
    """Each factor's columns from formulaic (categoricals: all levels)."""
    formulaic = _import_formulaic()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if spec is None:
                mm = formulaic.model_matrix(
                    factor_formula,
                    frame,
                    ensure_full_rank=False,
                    na_action="ignore",
                    context=_context(),
                )
            else:
                mm = spec.get_model_matrix(frame, na_action="ignore", context=_context())
        except Exception as exc:  # evaluation errors of user code have many classes
            msg = f"`mods`: the formula could not be evaluated on the data: {exc}"
            raise ValueError(msg) from exc
    model_spec = mm.model_spec
    blocks = []
    for structure in model_spec.structure:
        cols = [mm[c] for c in structure.columns]
        block = np.column_stack([_series_float(c, structure.term) for c in cols])
        blocks.append(block)
    return model_spec, blocks


def _series_float(series: Any, term: Any) -> FloatArray:
    try:
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        msg = f"`mods`: the term {term} is not numeric ({exc})"
        raise TypeError(msg) from exc


def _from_formula(formula: str, data: Any, intercept: bool, k: int) -> ModelMatrix:
    _import_formulaic()
    from formulaic import SimpleFormula
    from formulaic.parser.types import Term

    parsed, factors = _parse_formula(formula)
    has_intercept = any(
        len(t.factors) == 1 and t.factors[0].eval_method.value == "literal" for t in parsed
    )
    if not intercept and has_intercept:
        msg = (
            "`intercept=False` contradicts the formula, which has an intercept: write "
            f"'~ 0 + ...' (or '- 1') in the formula instead (got {formula!r})"
        )
        raise ValueError(msg)
    for term in parsed:
        lits = [f for f in term.factors if f.eval_method.value == "literal"]
        if lits and (len(term.factors) > 1 or lits[0].expr not in ("1",)):
            msg = f"`mods`: the formula term {term} is not supported (a constant)"
            raise ValueError(msg)
    if not factors:
        if has_intercept:
            msg = "`mods`: the formula has only an intercept (that is `pool`, no moderators)"
        else:
            msg = f"`mods`: the formula {formula!r} has no terms"
        raise ValueError(msg)
    exprs = [f.expr for f in factors]
    trees = [_python_ast(f.expr) if f.eval_method.value == "python" else None for f in factors]
    for expr, tree in zip(exprs, trees, strict=True):
        if _has_xor(tree):
            msg = (
                f"`mods`: '^' in the Python code {expr!r} is bitwise XOR, not a power: "
                "write '**' (e.g. 'I(year**2)' for R's 'I(year^2)')"
            )
            raise ValueError(msg)
    frame = _frame(data, k)
    needed = [c for c in frame.columns if isinstance(c, str) and _mentioned(c, exprs)]
    frame, columns = _convert_frame(frame, needed, None)
    by_key = {c.key: c for c in columns}
    logical = tuple(
        (f.eval_method.value == "lookup" and f.expr in by_key and by_key[f.expr].logical)
        or _is_logical_expr(tree)
        for f, tree in zip(factors, trees, strict=True)
    )
    factor_formula = SimpleFormula([Term([f]) for f in factors], _ordering="none")
    model_spec, blocks = _evaluate(factor_formula, frame, None)
    variables = []
    values = []
    for f, tree, is_logical, block, structure in zip(
        factors, trees, logical, blocks, model_spec.structure, strict=True
    ):
        kind, state = model_spec.encoder_state.get(f.expr, (None, {}))
        rname = _r_name(f.expr, f.eval_method.value, tree)
        if getattr(kind, "value", kind) == "categorical":
            _check_contrasts(f.expr, state)
            levels = list(state.get("categories", []))
            labels = tuple(_level_label(lv) for lv in levels)
            if block.shape[1] != len(labels):
                msg = f"`mods`: unexpected columns for {f.expr}: {structure.columns}"
                raise ValueError(msg)
            block = block.copy()
            block[block.sum(axis=1) == 0] = np.nan  # no level: a missing value
            var = _Variable(name=rname, kind=_FACTOR, labels=labels)
        elif is_logical and block.shape[1] == 1 and _is_zero_one(block[:, 0]):
            v = block[:, 0]
            present = sorted({bool(b) for b in v[~np.isnan(v)]})
            labels = tuple("TRUE" if b else "FALSE" for b in present)
            block = np.column_stack([1.0 - v, v])[:, [int(b) for b in present]]
            var = _Variable(name=rname, kind=_FACTOR, labels=labels, logical=True)
        else:
            labels = tuple(_sub_label(f.expr, c) for c in structure.columns)
            if f.expr.startswith("poly(") and labels == tuple(map(str, range(len(labels)))):
                labels = tuple(str(i + 1) for i in range(len(labels)))  # raw: R counts from 1
            var = _Variable(name=rname, kind=_NUMERIC, labels=labels)
        if k and np.isnan(block).all():
            msg = f"`mods`: {var.name} is missing for every study"
            raise ValueError(msg)
        if var.kind == _FACTOR:
            _check_levels(var.name, var.labels)
        _reject_inf(block, "mods", var.name)
        variables.append(var)
        values.append(block)
    index = {f.expr: i for i, f in enumerate(factors)}
    terms = tuple(
        tuple(sorted(index[f.expr] for f in t.factors if f.eval_method.value != "literal"))
        for t in parsed
        if any(f.eval_method.value != "literal" for f in t.factors)
    )
    codes = _r_codes(terms, [v.kind == _FACTOR for v in variables], has_intercept)
    design = _Design(variables=tuple(variables), terms=terms, codes=codes, intercept=has_intercept)
    x = design.assemble(values, k)
    names = design.names()
    return ModelMatrix(
        x=_owned(x),
        names=names,
        intercept=has_intercept,
        missing=_missing_rows(values),
        spec=_FormulaSpec(
            formula=formula,
            factor_spec=model_spec,
            factor_exprs=tuple(exprs),
            logical=logical,
            columns=columns,
            design=design,
        ),
        columns=tuple(range(len(names))),
    )


def _formula_new(spec: _FormulaSpec, newmods: Any) -> FloatArray:
    import pandas as pd

    n = _table_length(newmods)
    frame = _frame(newmods, n) if n is not None else pd.DataFrame()
    keys = [c.key for c in spec.columns]
    frame, _ = _convert_frame(frame, keys, spec.columns)
    _, blocks = _evaluate(None, frame, spec.factor_spec)
    values = []
    for var, block in zip(spec.design.variables, blocks, strict=True):
        if var.kind == _FACTOR and var.logical:
            v = block[:, 0]
            levels = [lab == "TRUE" for lab in var.labels]
            block = np.column_stack([1.0 - v, v])[:, [int(b) for b in levels]]
            if not np.all(np.isin(v[~np.isnan(v)], [float(b) for b in levels])):
                i = int(np.flatnonzero(~np.isin(v, [float(b) for b in levels]))[0])
                msg = f"`newmods`: {var.name} is not one of {list(var.labels)} in row {i}"
                raise ValueError(msg)
        elif var.kind == _FACTOR:
            block = block.copy()
            block[block.sum(axis=1) == 0] = np.nan
        _reject_inf(block, "newmods", var.name)
        values.append(block)
    _check_new_factors(spec.design, values)
    return spec.design.assemble(values, values[0].shape[0])


def _table_length(obj: Any) -> int | None:
    if hasattr(obj, "columns"):
        return len(obj)
    lengths = {np.size(v) if np.ndim(v) else 1 for v in obj.values()}
    if len(lengths) > 1:
        msg = "the columns of `newmods` have different lengths"
        raise ValueError(msg)
    return lengths.pop() if lengths else None


def _mentioned(name: str, exprs: Sequence[str]) -> bool:
    pattern = re.compile(r"(?<![\w.])" + re.escape(name) + r"(?![\w])")
    return any(expr == name or pattern.search(expr) for expr in exprs)


def _is_zero_one(v: FloatArray) -> bool:
    w = v[~np.isnan(v)]
    return bool(np.all((w == 0) | (w == 1)))


def _check_contrasts(expr: str, state: Mapping[str, Any]) -> None:
    contrasts = state.get("contrasts")
    inner = getattr(contrasts, "contrasts", None)
    if inner is None:
        return
    ok = type(inner).__name__ == "TreatmentContrasts"
    base = getattr(inner, "base", None)
    if ok and base is not None and type(base).__name__ != "_MissingType" and repr(base) != "UNSET":
        levels = list(state.get("categories", []))
        ok = bool(levels) and base == levels[0]
    if not ok:
        msg = (
            f"`mods`: {expr} asks for contrasts other than treatment contrasts with the first "
            "level as reference; to change the reference, order the levels: "
            "C(x, levels=[reference, ...]) or a pandas Categorical"
        )
        raise ValueError(msg)


def _sub_label(expr: str, column: str) -> str:
    """The suffix R gives a column of a multi-column term (``poly(x, 2)[1]`` → ``1``)."""
    if column == expr:
        return ""
    if column.startswith(expr + "[") and column.endswith("]"):
        return column[len(expr) + 1 : -1]
    return column[len(expr) :] if column.startswith(expr) else column


# --------------------------------------------------------------------------------------
# names: Python expressions as R deparses them
# --------------------------------------------------------------------------------------

_R_SYNTACTIC = re.compile(r"^((\.[A-Za-z._]|[A-Za-z])[A-Za-z0-9._]*|\.)$")
_R_RESERVED = frozenset(
    {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE"}
    | {"NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}
)


def _r_symbol(name: str) -> str:
    if _R_SYNTACTIC.match(name) and name not in _R_RESERVED:
        return name
    return "`" + name.replace("`", "\\`") + "`"


def _r_name(expr: str, method: str, tree: ast.expr | None) -> str:
    if method == "lookup":
        return _r_symbol(expr)
    if tree is None:
        return expr
    try:
        return _Deparse().visit(tree)[0]
    except _Unsupported:
        return expr


def _r_double(v: float) -> str:
    """A double as R prints it with 15 significant digits (fixed or scientific, the
    shorter; fixed on a tie)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    mantissa, exp_s = f"{abs(v):.14e}".split("e")
    e = int(exp_s)
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    nsig = len(digits)
    neg = 1 if v < 0 else 0
    if e >= 0:
        fixed_w = neg + e + 1 + (nsig - e - 1 + 1 if nsig > e + 1 else 0)
    else:
        fixed_w = neg + 2 + (-e - 1) + nsig
    sci_w = neg + nsig + (1 if nsig > 1 else 0) + 2 + (3 if abs(e) >= 100 else 2)
    if fixed_w <= sci_w:
        decimals = max(0, nsig - e - 1)
        return f"{v:.{decimals}f}"
    mant = digits[0] + ("." + digits[1:] if nsig > 1 else "")
    return f"{'-' if neg else ''}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"


class _Unsupported(Exception):
    pass


# R's operator precedence (higher binds tighter), spacing and associativity
_R_BINOPS: dict[type, tuple[str, int]] = {
    ast.Pow: ("^", 14),
    ast.Mod: ("%%", 11),
    ast.FloorDiv: ("%/%", 11),
    ast.Mult: (" * ", 10),
    ast.Div: ("/", 10),
    ast.Add: (" + ", 9),
    ast.Sub: (" - ", 9),
    ast.BitAnd: (" & ", 6),
    ast.BitOr: (" | ", 5),
}
_R_CMP: dict[type, str] = {
    ast.Gt: " > ",
    ast.GtE: " >= ",
    ast.Lt: " < ",
    ast.LtE: " <= ",
    ast.Eq: " == ",
    ast.NotEq: " != ",
}
_ATOM = 20


class _Deparse:
    """Python AST → (R source, precedence), as R's ``deparse`` spells the same call."""

    def visit(self, node: ast.AST) -> tuple[str, int]:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise _Unsupported(type(node).__name__)
        result: tuple[str, int] = method(node)
        return result

    def _wrap(self, node: ast.AST, prec: int, *, strict: bool) -> str:
        text, p = self.visit(node)
        return f"({text})" if (p < prec or (strict and p == prec)) else text

    def visit_BinOp(self, node: ast.BinOp) -> tuple[str, int]:
        if type(node.op) not in _R_BINOPS:
            raise _Unsupported(type(node.op).__name__)
        op, prec = _R_BINOPS[type(node.op)]
        right_assoc = isinstance(node.op, ast.Pow)
        left = self._wrap(node.left, prec, strict=right_assoc)
        right = self._wrap(node.right, prec, strict=not right_assoc)
        return f"{left}{op}{right}", prec

    def visit_UnaryOp(self, node: ast.UnaryOp) -> tuple[str, int]:
        if isinstance(node.op, ast.USub | ast.UAdd):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return sign + self._wrap(node.operand, 13, strict=False), 13
        if isinstance(node.op, ast.Not | ast.Invert):  # R users write !(a == b)
            text, p = self.visit(node.operand)
            return "!" + (text if p == _ATOM else f"({text})"), 7
        raise _Unsupported(type(node.op).__name__)

    def visit_BoolOp(self, node: ast.BoolOp) -> tuple[str, int]:
        op, prec = (" & ", 6) if isinstance(node.op, ast.And) else (" | ", 5)
        parts = [self._wrap(v, prec, strict=i > 0) for i, v in enumerate(node.values)]
        return op.join(parts), prec

    def visit_Compare(self, node: ast.Compare) -> tuple[str, int]:
        if len(node.ops) != 1 or type(node.ops[0]) not in _R_CMP:
            raise _Unsupported(type(node.ops[0]).__name__)
        left = self._wrap(node.left, 8, strict=False)
        right = self._wrap(node.comparators[0], 8, strict=True)
        return f"{left}{_R_CMP[type(node.ops[0])]}{right}", 8

    def visit_Call(self, node: ast.Call) -> tuple[str, int]:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in ("np", "numpy") and func.attr in _R_FUNCTIONS:
                name = _R_FUNCTIONS[func.attr]
            else:
                name = f"{func.value.id}.{func.attr}"
        elif isinstance(func, ast.Name):
            name = {"C": "factor"}.get(func.id, func.id)
            name = _R_FUNCTIONS.get(name, name)
        else:
            raise _Unsupported(type(func).__name__)
        args = [self.visit(a)[0] for a in node.args]
        for kw in node.keywords:
            if kw.arg is None:
                raise _Unsupported(type(kw).__name__)
            args.append(f"{kw.arg} = {self.visit(kw.value)[0]}")
        return f"{name}({', '.join(args)})", _ATOM

    def visit_Name(self, node: ast.Name) -> tuple[str, int]:
        return _r_symbol(node.id), _ATOM

    def visit_Attribute(self, node: ast.Attribute) -> tuple[str, int]:
        return f"{self.visit(node.value)[0]}.{node.attr}", _ATOM

    def visit_Constant(self, node: ast.Constant) -> tuple[str, int]:
        v = node.value
        if isinstance(v, bool):
            return ("TRUE" if v else "FALSE"), _ATOM
        if v is None:
            return "NULL", _ATOM
        if isinstance(v, int | float):
            text = _r_double(float(v))
            return text, (13 if text.startswith("-") else _ATOM)
        if isinstance(v, str):
            escaped = v.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}"', _ATOM
        raise _Unsupported(type(v).__name__)

    def _sequence(self, elts: Sequence[ast.expr]) -> tuple[str, int]:
        return "c(" + ", ".join(self.visit(e)[0] for e in elts) + ")", _ATOM

    def visit_List(self, node: ast.List) -> tuple[str, int]:
        return self._sequence(node.elts)

    def visit_Tuple(self, node: ast.Tuple) -> tuple[str, int]:
        return self._sequence(node.elts)
