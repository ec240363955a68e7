"""``bench features`` and ``bench perf``: the 57 Kaggle features of audio, and their speed."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench.cli.common import interactive

log = logging.getLogger("bench")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "features",
        help="compute the 57 GTZAN features of audio files into a Kaggle-layout CSV",
        description="Compute the 57 Kaggle GTZAN features (chroma, rms, spectral, zcr, HPSS, "
        "tempo, 20 MFCCs: mean and variance) of every clip under DATA_DIR/genres_original/<genre>/ "
        "(or DATA_DIR/<label>/), batched in torch, and write them in the Kaggle column layout. "
        "With --fidelity, compare the 30 s features with DATA_DIR/features_30_sec.csv instead.",
    )
    p.add_argument("--data-dir", type=Path, required=True, help="folder of audio (GTZAN layout)")
    p.add_argument(
        "--segment", type=float, help="seconds per row (3: Kaggle's 3 s table; default whole clips)"
    )
    p.add_argument("--out", type=Path, help="CSV to write")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--workers", type=int, help="workers (default: the number of cores)")
    p.add_argument(
        "--fidelity",
        action="store_true",
        help="write a report comparing bench's 30 s features with features_30_sec.csv",
    )
    p.add_argument("--report", type=Path, default=Path("reports") / "features_fidelity.md")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "perf",
        help="time bench's features against librosa, the I/O floor and start-up: reports/perf.md",
    )
    p.add_argument("--data-dir", type=Path, required=True, help="folder of audio (GTZAN layout)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per figure (median)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--workers", type=int, help="workers (default: the number of cores)")
    p.add_argument("--no-librosa", action="store_true", help="skip the librosa baseline")
    p.add_argument("--out", type=Path, default=Path("reports") / "perf.md")
    p.set_defaults(func=cmd_perf)


def cmd_features(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench.environment import resolve_device
    from bench.errors import BenchError
    from bench.features.extract import featurise_folder, write_table

    device = resolve_device(args.device)
    if args.fidelity:
        return _fidelity(args, device)
    if args.out is None:
        raise BenchError("bench features needs --out F.csv (or --fidelity)")
    with tqdm(unit="clip", desc="features", disable=not interactive()) as bar:
        run = featurise_folder(
            args.data_dir,
            args.segment,
            device,
            args.workers,
            on_file=lambda _: bar.update(),
            on_start=lambda files: bar.reset(total=files),
        )
    rows = write_table(run.rows, args.out)
    print(
        f"{rows} row(s) from {len(run.rows)} clip(s) written to {args.out}; "
        f"{len(run.skipped)} file(s) skipped, {len(run.fixed)} fix(es) applied"
    )
    for reason in run.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    return 1 if not run.rows else 0


def _fidelity(args: argparse.Namespace, device: str) -> int:
    from bench.features.fidelity import write_fidelity_report

    out, result = write_fidelity_report(args.data_dir, args.report, device)
    r = result.table()["bench r"]
    print(f"{len(result.files)} clips; lowest Pearson r {r.min():.4f} ({r.idxmin()}): {out}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.perf import measure, render

    result = measure(
        args.data_dir,
        repeats=args.repeats,
        device=args.device,
        workers=args.workers,
        with_librosa=not args.no_librosa,
        on_step=lambda name: log.info("perf: timing %s", name),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = render(result)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0
