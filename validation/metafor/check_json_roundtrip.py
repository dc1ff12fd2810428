"""Confirm that every number in a reference JSON parses to the double R wrote (bit for bit).

Usage: python3 validation/metafor/check_json_roundtrip.py FILE.json FILE.hex
FILE.hex holds sprintf("%a") of every finite number in document order (the R scripts write it
to the directory named by the environment variable KETAMETA_HEX_LOG; it is not committed).
"""

import json
import sys


class Obj:
    """A JSON object kept in document order."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        self.pairs = pairs


def numbers(node: object, out: list[float]) -> None:
    """Append every number under `node` to `out`, in document order."""
    if isinstance(node, bool) or node is None or isinstance(node, str):
        return
    if isinstance(node, (int, float)):
        out.append(float(node))
    elif isinstance(node, list):
        for item in node:
            numbers(item, out)
    elif isinstance(node, Obj):
        for _, value in node.pairs:
            numbers(value, out)


def main() -> None:
    path, hexpath = sys.argv[1], sys.argv[2]
    with open(path) as f:
        doc = json.load(f, object_pairs_hook=Obj)
    got: list[float] = []
    numbers(doc, got)
    with open(hexpath) as f:
        want = [float.fromhex(line.strip()) for line in f if line.strip()]
    assert len(got) == len(want), (len(got), len(want))
    bad = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
    print(f"{path}: {len(got)} numbers, {len(bad)} differ from R's doubles")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
