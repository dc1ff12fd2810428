"""Forest plot of the BCG vaccine trials for a paper: events and totals per group, risk
ratios with 95% CIs on a log axis, REML weights, the prediction interval, heterogeneity,
the test for the overall effect and "favours" labels."""

import ketameta
from ketameta.plot import forest

data = ketameta.datasets.bcg()
labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels=labels)
forest(
    ketameta.pool(es),
    arms=("Vaccinated", "Not vaccinated"),
    favours=("Favours vaccine", "Favours control"),
)
