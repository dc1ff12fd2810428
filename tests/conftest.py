"""Shared fixtures: reference values computed by R's metafor and printed in publications."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

# Property-test profiles: "ci" (default, fast) and "thorough" for release checks:
#   pytest --hypothesis-profile=thorough
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile("ci")

REFERENCE = Path(__file__).parent / "reference"


def load_reference(name: str) -> Any:
    """Load one of the committed reference files in ``tests/reference``."""
    return json.loads((REFERENCE / name).read_text(encoding="utf-8"))


def as_float(values: Any) -> np.ndarray:
    """JSON values to floats, with metafor's NA (``"NA"``/``null``) as NaN."""
    arr = np.atleast_1d(np.asarray(values, dtype=object))
    return np.array([np.nan if x in (None, "NA") else float(x) for x in arr], dtype=float)


@pytest.fixture(scope="session")
def shared_reference() -> dict[str, Any]:
    """metafor 3.8-1 answers on public datasets (../shared/refvals, copied verbatim)."""
    data = load_reference("shared_metafor_reference.json")
    return {case["id"]: case for case in data["cases"]}


@pytest.fixture(scope="session")
def published() -> dict[str, Any]:
    """Values printed in papers and metafor's documentation (../shared/refvals/published.json)."""
    data = load_reference("published.json")
    return {case["id"]: case for case in data["cases"]}


def assert_printed(actual: Any, expected: Any, decimals: int) -> None:
    """A printed value is reproduced when it agrees within (a little over) half a unit of
    its last printed decimal (published.json's convention)."""
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), as_float(expected), rtol=0, atol=0.6 * 10.0**-decimals
    )
