"""Selection models (issue #19): ketameta.selection_model against metafor's selmodel().

Run: ``python benchmarks/selection.py [rounds]`` (default 3; needs ``Rscript`` with metafor
and the reference JSON of the tests for the data). Both sides fit the same models on
dat.hackshaw1998 (k = 37, random effects): the 3PSM, a four-interval step function, the
negative-exponential and the beta model; metafor with its default settings. Times are CPU
seconds per fit (``time.process_time`` / R's ``proc.time()`` user+system), the best of the
rounds; R and Python alternate round by round so that both meet the same machine load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import ketameta

MODELS = {
    "3PSM": ({"steps": (0.025,)}, 'type="stepfun", steps=0.025'),
    "step, 4 intervals": (
        {"steps": (0.025, 0.1, 0.5, 1)},
        'type="stepfun", steps=c(.025, .1, .5, 1)',
    ),
    "negexp": ({"type": "negexp"}, 'type="negexp"'),
    "beta": ({"type": "beta"}, 'type="beta"'),
}
R_CODE = """
suppressMessages(library(metafor)); d <- dat.hackshaw1998; res <- rma(yi, vi, data=d, method="ML")
t <- proc.time(); invisible(selmodel(res, %s)); e <- proc.time() - t
cat(e[["user.self"]] + e[["sys.self"]])
"""


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    ref = json.loads(
        (Path(__file__).parents[1] / "tests/reference/metafor_selmodel.json").read_text()
    )
    case = next(c for c in ref["cases"] if c["name"] == "hackshaw_3psm")
    fit = ketameta.pool(case["yi"], case["vi"], method="ML")
    best: dict[str, list[float]] = {m: [float("inf"), float("inf")] for m in MODELS}
    for _ in range(rounds):
        for name, (kw, r_args) in MODELS.items():
            out = subprocess.run(
                ["Rscript", "-e", R_CODE % r_args], capture_output=True, text=True, check=True
            )
            best[name][1] = min(best[name][1], float(out.stdout.strip().split()[-1]))
            t = time.process_time()
            ketameta.selection_model(fit, **kw)
            best[name][0] = min(best[name][0], time.process_time() - t)
    print(f"{'model':20s} {'ketameta s':>11s} {'metafor s':>10s} {'ratio':>7s}")
    for name, (ours, theirs) in best.items():
        print(f"{name:20s} {ours:11.3f} {theirs:10.3f} {theirs / ours:6.1f}x")


if __name__ == "__main__":
    main()
