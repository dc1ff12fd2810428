"""Forest plot of the BCG vaccine trials by allocation method: a block per subgroup with
its own REML diamond, the overall diamond and the test for subgroup differences."""

import ketameta
from ketameta.plot import forest

data = ketameta.datasets.bcg()
labels = [f"{a} ({y})" for a, y in zip(data["author"], data["year"], strict=True)]
es = ketameta.escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg", labels=labels)
sub = ketameta.subgroups(es, groups="alloc", data=data)
forest(
    sub,
    arms=("Vaccinated", "Not vaccinated"),
    favours=("Favours vaccine", "Favours control"),
)
