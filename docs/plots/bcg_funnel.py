"""Contour-enhanced funnel plot of the BCG vaccine trials with the trim-and-fill study."""

import ketameta
from ketameta.plot import funnel

es = ketameta.escalc(
    "RR", data=ketameta.datasets.bcg(), ai="tpos", bi="tneg", ci="cpos", di="cneg"
)
funnel(ketameta.trim_and_fill(es))  # (the x axis is named from the measure)
