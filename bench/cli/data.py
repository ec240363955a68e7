"""``bench data``: get GTZAN (checksum verified) or write synthetic datasets in the real layouts."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import interactive


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="get or generate datasets").add_subparsers(metavar="ACTION")
    synth = data.add_parser(
        "synth", help="write a synthetic dataset in the real layout"
    ).add_subparsers(metavar="DATASET", required=True)
    p = synth.add_parser("gtzan", help="GTZAN: WAV clips, features CSV, artist-filtered splits")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-genre", type=int, default=10)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per clip")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_synth)
    p = synth.add_parser("msd", help="MSD: HDF5 track files in the subset's data/A/B/C layout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tracks", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--songs-per-artist", type=float, default=4.0, help="mean (default: 4)")
    p.add_argument("--workers", type=int, help="processes (default: one per core from 500)")
    p.set_defaults(func=cmd_data_synth_msd)
    p = data.add_parser(
        "fetch",
        help="download and unpack a dataset archive, checksum verified, size bounded",
        description="Download a GTZAN archive (zip or tar), check its SHA-256, check every "
        "member's path, link and declared size before anything is written, and unpack it into "
        "--out (new or empty) only when all of it succeeds.",
    )
    p.add_argument("dataset", choices=("gtzan",))
    p.add_argument("--url", required=True)
    p.add_argument(
        "--sha256",
        required=True,
        help="expected SHA-256 of the archive: from the dataset's publisher, or `sha256sum FILE` "
        "of a copy you trust",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to create (or an empty one)")
    p.add_argument(
        "--max-size",
        type=_size,
        default="8G",
        help="largest download and total unpacked size, e.g. 500M, 20G (default: 8G; Kaggle's "
        "GTZAN archive is ~1.2 GB and unpacks to ~1.3 GB)",
    )
    p.add_argument(
        "--max-ratio",
        type=float,
        default=100,
        help="largest unpacked/archive size ratio (default: 100; audio compresses ~1.1x, "
        "a zip bomb ~1000x)",
    )
    p.set_defaults(func=cmd_data_fetch)


def _size(text: str) -> int:
    from bench.data.download import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_data_synth(args: argparse.Namespace) -> int:
    from bench.features.synthetic import synth_gtzan

    root = synth_gtzan(
        args.out,
        per_genre=args.per_genre,
        seed=args.seed,
        duration=args.duration,
        progress=interactive(),
    )
    print(f"synthetic GTZAN written to {root}")
    return 0


def cmd_data_synth_msd(args: argparse.Namespace) -> int:
    from bench.data.synthetic_msd import TRUTH_FILE, synth_msd

    root = synth_msd(
        args.out,
        tracks=args.tracks,
        seed=args.seed,
        songs_per_artist=args.songs_per_artist,
        workers=args.workers,
        progress=interactive(),
    )
    print(
        f"synthetic MSD ({args.tracks} track files) written to {root / 'data'}; each track's "
        f"generating genre is in {root / TRUTH_FILE}"
    )
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from bench.data.download import fetch

    root = fetch(
        args.url,
        args.sha256,
        args.out,
        max_size=args.max_size,
        max_ratio=args.max_ratio,
        progress=interactive(),
    )
    print(f"GTZAN ready at {root}; run: bench run --suite gtzan --data-dir {root}")
    return 0
