"""Datasets bundled with ketameta.

``bcg()``: the BCG vaccine trials (Colditz et al. 1994), the standard worked example
of meta-analysis (metafor's ``dat.bcg``). ``load_crps()``: the curated evidence on ketamine
for complex regional pain syndrome, with its provenance.

References
----------
.. [1] Colditz, G. A., Brewer, T. F., Berkey, C. S., Wilson, M. E., Burdick, E.,
   Fineberg, H. V., & Mosteller, F. (1994). Efficacy of BCG vaccine in the prevention
   of tuberculosis: Meta-analysis of the published literature. JAMA, 271(9), 698-702.
   https://doi.org/10.1001/jama.1994.03510330076038
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import namedtuple
from importlib import resources
from typing import Any

import attrs

__all__ = ["CRPSData", "bcg", "berkey1998", "konstantopoulos2011", "load_crps"]


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


def konstantopoulos2011() -> dict[str, list[Any]]:
    """Konstantopoulos (2011): 56 studies of modified school calendars in 11 school districts.

    The standard example of a three-level meta-analysis (schools within districts):
    standardised mean differences of achievement between schools on a modified and on a
    traditional calendar.

    Returns
    -------
    dict of lists
        Columns ``district`` (district id), ``school`` (school id within its district),
        ``study`` (1-56), ``year``, ``yi`` (standardised mean difference) and ``vi`` (its
        sampling variance).

    Notes
    -----
    The values published in Konstantopoulos (2011), Table 1, as distributed by the R package
    metadat (``dat.konstantopoulos2011``, GPL (>= 2)); data of a published table are facts,
    reproduced here for the worked example of :func:`ketameta.pool_mv`.

    References
    ----------
    .. [1] Konstantopoulos, S. (2011). Fixed effects and variance components estimation in
       three-level meta-analysis. Research Synthesis Methods, 2(1), 61-76.
       https://doi.org/10.1002/jrsm.35

    Examples
    --------
    >>> from ketameta.datasets import konstantopoulos2011
    >>> dat = konstantopoulos2011()
    >>> len(dat["yi"]), len(set(dat["district"]))
    (56, 11)
    """
    return _read_csv("konstantopoulos2011.csv")


def berkey1998() -> dict[str, list[Any]]:
    """Berkey et al. (1998): 5 trials of surgical against non-surgical periodontal
    treatment, two correlated outcomes each.

    The standard example of a multivariate meta-analysis: the mean differences in probing
    depth (``PD``) and attachment level (``AL``), with their sampling variances and
    covariance.

    Returns
    -------
    dict of lists
        Columns ``trial``, ``author``, ``year``, ``ni`` (patients), ``outcome`` (``"PD"``
        or ``"AL"``), ``yi``, ``vi`` and ``v1i``, ``v2i``: the row of the trial's 2 x 2
        sampling covariance matrix (the first row of a trial holds the PD variance and the
        covariance, the second the covariance and the AL variance).

    Notes
    -----
    The values published in Berkey et al. (1998), Table I, as distributed by the R package
    metadat (``dat.berkey1998``, GPL (>= 2)).

    References
    ----------
    .. [1] Berkey, C. S., Hoaglin, D. C., Antczak-Bouckoms, A., Mosteller, F., & Colditz,
       G. A. (1998). Meta-analysis of multiple outcomes by regression with random effects.
       Statistics in Medicine, 17(22), 2537-2550.

    Examples
    --------
    >>> from ketameta.datasets import berkey1998
    >>> dat = berkey1998()
    >>> dat["outcome"][:2], dat["v1i"][:2]
    (['PD', 'AL'], [0.0075, 0.003])
    """
    return _read_csv("berkey1998.csv")


@attrs.frozen(kw_only=True)
class CRPSData:
    """The curated CRPS ketamine dataset (see :func:`load_crps`).

    Attributes
    ----------
    studies, outcomes, published : tuple of records, or pandas DataFrames
        One record (a named tuple) per row of each table; empty cells are ``None`` ("not
        reported"), integer columns are ``int``, and every other value is the text the
        source printed.
    provenance : dict
        The JSON sidecar: column descriptions, source kinds, curation rules, known gaps,
        sha256 of each table, how to cite and how to propose a correction.
    version : str
        Dataset version.
    """

    studies: Any
    outcomes: Any
    published: Any
    provenance: dict[str, Any] = attrs.field(repr=False)
    version: str
    citations: dict[str, str] = attrs.field(repr=False)

    def cite(self, study_id: str) -> str:
        """A formatted reference of a study, e.g. ``cite("SIGTERMANS2009")``."""
        if study_id not in self.citations:
            msg = f"unknown study {study_id!r}; known: {', '.join(sorted(self.citations))}"
            raise KeyError(msg)
        return str(self.citations[study_id])


def _reference(r: Any) -> str:
    venue = f"{r.journal}, {r.volume_pages}." if r.volume_pages else f"{r.journal}."
    parts = [f"{r.authors} ({r.year}).", venue]
    if r.doi:
        parts.append(f"https://doi.org/{r.doi}")
    if r.pmid:
        parts.append(f"PMID {r.pmid}.")
    return " ".join(parts)


def _parse_cell(value: str, integer: bool, floating: bool) -> Any:
    if value == "":
        return None  # not reported, never 0
    if integer:
        return int(value)
    if floating:
        return float(value)
    return value


def _load_table(name: str, spec: dict[str, Any]) -> tuple[tuple[str, ...], list[Any]]:
    raw = resources.files(__name__).joinpath("crps").joinpath(spec["file"]).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec["sha256"]:
        msg = (
            f"the CRPS table {spec['file']} does not match its recorded sha256 "
            f"({digest} != {spec['sha256']}): the installed dataset is corrupted or was edited"
        )
        raise ValueError(msg)
    reader = csv.DictReader(raw.decode("utf-8").splitlines())
    columns = tuple(reader.fieldnames or ())
    record = namedtuple(f"{name.capitalize()}Record", columns)  # type: ignore[misc]
    integers = set(spec.get("integer_columns", ()))
    floats = set(spec.get("float_columns", ()))
    rows = []
    for row in reader:
        if None in row or None in row.values():
            msg = f"the CRPS table {spec['file']}, line {reader.line_num}: wrong number of fields"
            raise ValueError(msg)
        values = {}
        for c in columns:
            try:
                values[c] = _parse_cell(row[c], c in integers, c in floats)
            except ValueError as exc:
                kind = "an integer" if c in integers else "a number"
                msg = (
                    f"the CRPS table {spec['file']}, line {reader.line_num}, column {c!r}: "
                    f"{row[c]!r} is not {kind}"
                )
                raise ValueError(msg) from exc
        rows.append(record(**values))
    return columns, rows


def load_crps(*, as_frame: bool = False) -> CRPSData:
    """The curated dataset of clinical studies of ketamine for CRPS.

    Three tables: ``studies`` (citation, design, route, agent, regimen, n, and
    ``related_to`` for re-analyses), ``outcomes`` (every reported number with its arm, n,
    time point, statistic, dispersion and what kind it is, p-value, responder definition
    and source) and ``published`` (pooled results of published meta-analyses). The
    loader checks each table against the sha256 recorded in its JSON sidecar.

    Parameters
    ----------
    as_frame : bool
        Return pandas DataFrames instead of tuples of records (requires pandas).

    Returns
    -------
    CRPSData

    Examples
    --------
    >>> from ketameta.datasets import load_crps
    >>> crps = load_crps()
    >>> len(crps.studies), crps.version
    (16, '1.0.0')
    >>> crps.cite("SIGTERMANS2009")[:45]
    'Sigtermans MJ, van Hilten JJ, Bauer MCR, Arbo'
    """
    try:
        sidecar = json.loads(
            resources.files(__name__).joinpath("crps").joinpath("crps.json").read_text("utf-8")
        )
        specs = sidecar["tables"]
        tables = {name: _load_table(name, spec) for name, spec in specs.items()}
        version, studies = sidecar["version"], tables["studies"][1]
    except json.JSONDecodeError as exc:
        msg = f"the CRPS sidecar crps.json is not valid JSON ({exc})"
        raise ValueError(msg) from exc
    except KeyError as exc:
        msg = f"the CRPS sidecar crps.json lacks the entry {exc}: the installation is damaged"
        raise ValueError(msg) from exc
    except OSError as exc:
        msg = f"a file of the CRPS dataset cannot be read ({exc})"
        raise ValueError(msg) from exc
    if as_frame:
        import pandas as pd

        values = {
            name: pd.DataFrame([r._asdict() for r in rows], columns=list(cols))
            for name, (cols, rows) in tables.items()
        }
    else:
        values = {name: tuple(rows) for name, (_, rows) in tables.items()}
    citations = {r.study_id: _reference(r) for r in studies}
    return CRPSData(
        studies=values["studies"],
        outcomes=values["outcomes"],
        published=values["published"],
        provenance=sidecar,
        version=version,
        citations=citations,
    )
