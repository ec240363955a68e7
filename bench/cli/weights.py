"""``bench weights fetch musicnn``: pretrained weights from the package index, converted once."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub) -> None:
    weights = sub.add_parser(
        "weights", help="get pretrained weights (from the package index, checksum verified)"
    ).add_subparsers(metavar="ACTION", required=True)
    p = weights.add_parser(
        "fetch",
        help="download the musicnn 0.1.0 wheel (pip), check its SHA-256 and convert its "
        "checkpoints into $BENCH_WEIGHTS (default $BENCH_CACHE/weights)",
    )
    p.add_argument("family", choices=("musicnn",))
    p.add_argument("--wheel", type=Path, help="use this musicnn-0.1.0 wheel instead of pip")
    p.add_argument("--out", type=Path, help="weights folder (default: $BENCH_WEIGHTS)")
    p.set_defaults(func=cmd_weights_fetch)


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from bench.features.pretrained.weights import LICENCE, fetch

    for path in fetch(args.wheel, args.out):
        print(f"wrote {path}")
    print(f"musicnn weights: {LICENCE}")
    return 0
