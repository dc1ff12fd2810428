"""Forest plot of the BCG vaccine trials (REML, risk ratios on a log axis)."""

import ketameta
from ketameta.plot import forest

data = ketameta.datasets.bcg()
es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
forest(ketameta.pool(es), labels=labels, transform="exp", xlabel="Risk ratio (log scale)")
