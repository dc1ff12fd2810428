"""Bubble plot of the BCG latitude meta-regression (REML, risk ratios on a log axis)."""

import ketameta
from ketameta.plot import bubble

data = ketameta.datasets.bcg()
es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
res = ketameta.metareg(es, mods="~ ablat", data=data)
bubble(
    res,
    "ablat",
    transf="exp",
    xlabel="Absolute latitude of the trial site (degrees)",
    ylabel="Risk ratio (log scale)",
)
