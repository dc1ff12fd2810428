"""Command line of ketameta: ``ketameta`` or ``python -m ketameta``.

``ketameta example`` (the default) runs the library's worked example on the bundled
BCG vaccine trials: effect sizes, a random-effects model and its heterogeneity.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _example() -> int:
    from . import datasets, escalc, pool

    data = datasets.bcg()
    es = escalc("RR", data=data, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    print("BCG vaccine trials (Colditz et al. 1994): log risk ratios of tuberculosis,")
    print(f"{len(es)} trials; random-effects model (REML), as metafor's rma(yi, vi).\n")
    result = pool(es, method="REML")
    print(result.summary())
    print("\nQ-profile confidence intervals for the heterogeneity:")
    print(result.tau2_ci())
    print("\nKnapp-Hartung adjusted:")
    kh = pool(es, method="REML", test="knha")
    print(
        f"estimate {kh.estimate:.4f}, {100 * kh.level:g}% CI [{kh.ci_lower:.4f}, "
        f"{kh.ci_upper:.4f}], p = {kh.pvalue:.4f} (t, df = {kh.df:g})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ketameta`` command."""
    parser = argparse.ArgumentParser(
        prog="ketameta", description="Meta-analysis primitives, exact to metafor."
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("example", help="worked example on the BCG vaccine trials (default)")
    args = parser.parse_args(argv)
    # only one command so far; more (pool, egger, funnel, crps) join it here
    return _example() if args.command in (None, "example") else 2


if __name__ == "__main__":
    sys.exit(main())
