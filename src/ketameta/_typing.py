"""Type aliases shared across ketameta."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.integer[Any]]
ArrayLike = npt.ArrayLike
Tau2Method = Literal["EE", "FE", "CE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]
TestKind = Literal["z", "t", "knha", "adhoc"]
NanPolicy = Literal["omit", "raise"]
Control = dict[str, Any]
