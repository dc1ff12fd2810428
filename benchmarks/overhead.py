"""Fixed per-call cost of single fits and small batches, across ketameta versions and peers.

Run: ``python benchmarks/overhead.py [rounds] [--tree NAME=SRC_DIR ...]``, e.g.
``--tree stop11=/tmp/stop11/src --tree before=/tmp/base/src`` (a ``git worktree add`` of
another commit); the ketameta imported by this interpreter is "this". Each version runs in
its own worker process (``PYTHONPATH=SRC_DIR``); the peers (statsmodels'
``combine_effects``, PyMARE's plain-array estimators, when installed) in one more (so that
no ketameta process carries their imports). In every round each worker in turn (in a
rotating order) times every call of its own (CPU time, ``time.process_time``, of its
process: robust to other tenants' load), so all versions meet the same load; figures are
medians (minima) over rounds and ratios the medians of the per-round ratios.

Calls: ``pool(yi, vi, method=...)`` with k = 15 (ten simulated datasets, true τ² = 0.05,
the time per fit the mean over the ten), DL and REML; ``pool_many`` on m = 1 and m = 100
analyses of k = 15 (DL, REML); PyMARE's ``DerSimonianLaird().fit(y, v, X)`` and
``VarianceBasedLikelihoodEstimator("REML").fit(y, v, X)``;
statsmodels' ``combine_effects(method_re="dl")``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import warnings

WORKER = r"""
import json, sys, time, warnings
import numpy as np
import ketameta
peers = sys.argv[1] == "1"  # (the peers only, in a process of their own)
rng = np.random.default_rng(20)
k = 15
data = []
for _ in range(10):
    v = rng.uniform(0.01, 0.2, k)
    data.append((rng.normal(0.3, np.sqrt(v + 0.05)), v))
V1 = rng.uniform(0.01, 0.2, (1, k)); Y1 = rng.normal(0.3, np.sqrt(V1 + 0.05))
V100 = rng.uniform(0.01, 0.2, (100, k)); Y100 = rng.normal(0.3, np.sqrt(V100 + 0.05))
calls = {}
def each(fn):
    def run():
        for y, v in data:
            fn(y, v)
    return run, len(data)
if not peers:
    calls["pool DL"] = each(lambda y, v: ketameta.pool(y, v, method="DL"))
    calls["pool REML"] = each(lambda y, v: ketameta.pool(y, v, method="REML"))
for m, (Y, V) in ((1, (Y1, V1)), (100, (Y100, V100))):
    for meth in ("DL", "REML") if hasattr(ketameta, "pool_many") and not peers else ():
        calls[f"pool_many m={m} {meth}"] = (
            (lambda Y=Y, V=V, meth=meth: ketameta.pool_many(Y, V, method=meth)), 1)
if peers:
    try:
        from statsmodels.stats.meta_analysis import combine_effects
        calls["statsmodels DL"] = each(lambda y, v: combine_effects(y, v, method_re="dl"))
    except ImportError:
        pass
    try:
        from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator
        X = np.ones((k, 1))
        calls["PyMARE DL"] = each(lambda y, v: DerSimonianLaird().fit(y[:, None], v[:, None], X))
        calls["PyMARE REML"] = each(
            lambda y, v: VarianceBasedLikelihoodEstimator("REML").fit(y[:, None], v[:, None], X))
        Xm = np.ones((k, 1))
        calls["PyMARE DL m=100"] = (
            (lambda: DerSimonianLaird().fit(Y100.T, V100.T, Xm)), 1)
    except ImportError:
        pass
warnings.simplefilter("ignore")
for fn, _ in calls.values():
    fn()
print(json.dumps(list(calls)), flush=True)
for line in sys.stdin:
    budget = float(line)  # CPU seconds per call kind
    out = {}
    for name, (fn, per) in calls.items():
        n = 0
        start = time.process_time()
        while True:
            fn()
            n += 1
            elapsed = time.process_time() - start
            if elapsed >= budget:
                break
        out[name] = elapsed / (n * per)
    print(json.dumps(out), flush=True)
"""


def start(name: str, src: str | None, peers: bool) -> tuple[str, subprocess.Popen[str], list[str]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, "1" if peers else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    names = json.loads(proc.stdout.readline())
    return name, proc, names


def main() -> None:
    args = sys.argv[1:]
    rounds = 15
    trees: list[tuple[str, str]] = []
    while args:
        a = args.pop(0)
        if a == "--tree":
            label, _, src = args.pop(0).partition("=")
            trees.append((label, src))
        else:
            rounds = int(a)
    workers = [start("this", None, False), start("peers", None, True)]
    workers += [start(n, s, False) for n, s in trees]
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        # (each round in another order: no version always runs right after another)
        for label, proc, _names in workers[r % len(workers) :] + workers[: r % len(workers)]:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write("0.05\n")
            proc.stdin.flush()
            for name, t in json.loads(proc.stdout.readline()).items():
                key = name if label == "peers" else f"{label}: {name}"
                times.setdefault(key, []).append(t)
    for _, proc, _ in workers:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    print(f"{rounds} rounds; CPU µs per call (median / min); load {os.getloadavg()}")
    for name, ts in times.items():
        print(f"  {name:34s} {1e6 * statistics.median(ts):9.1f} / {1e6 * min(ts):9.1f}")

    def ratio(a: str, b: str) -> str:
        if a not in times or b not in times:
            return "n/a"
        rs = [x / y for x, y in zip(times[a], times[b], strict=True)]
        return f"{statistics.median(rs):.2f}x (IQR {_q(rs, 0.25):.2f}-{_q(rs, 0.75):.2f})"

    print("paired ratios (median of per-round ratios):")
    pairs = [
        ("statsmodels DL", "this: pool DL"),
        ("PyMARE DL", "this: pool DL"),
        ("PyMARE REML", "this: pool REML"),
        ("PyMARE DL m=100", "this: pool_many m=100 DL"),
    ]
    for label, _ in trees:
        for call in (
            "pool DL",
            "pool REML",
            "pool_many m=1 DL",
            "pool_many m=100 DL",
            "pool_many m=100 REML",
        ):
            pairs.append((f"this: {call}", f"{label}: {call}"))
    for a, b in pairs:
        print(f"  {a} / {b}: {ratio(a, b)}")


def _q(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
