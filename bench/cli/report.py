"""``bench report`` and ``bench predict``: read what ``bench run`` logged."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import tracking_arg


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write reports/<suite>/leaderboard.md (statistics, per-class F1, plots) from MLflow",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="one suite's leaderboard: reports/<suite>/")
    which.add_argument(
        "--suites", help="comma-separated suites: mean ranks across them, reports/summary-<a>+<b>/"
    )
    tracking_arg(p)
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.add_argument(
        "--format",
        choices=("md", "html"),
        default="md",
        help="md: GitHub markdown with PNGs beside it; html: one self-contained file",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="top-3 genres per audio file from a logged model")
    p.add_argument("--run", required=True, help="MLflow run id of a (model, fold) job")
    p.add_argument("files", nargs="+", type=Path, help="audio files (wav, au, flac, ...)")
    p.add_argument("--top", type=int, default=3)
    tracking_arg(p)
    p.set_defaults(func=cmd_predict)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.errors import BenchError
    from bench.report import write_report, write_summary
    from bench.tracking import Tracker

    if args.suite:
        tracker = Tracker(args.suite, args.tracking_uri, create=False)
        out = write_report(args.suite, tracker, args.reports_dir, args.format)
        print(f"leaderboard: {out}")
        return 0
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if not suites:
        raise BenchError("--suites needs at least one suite name")
    trackers = [Tracker(s, args.tracking_uri, create=False) for s in suites]
    print(f"summary: {write_summary(suites, trackers, args.reports_dir, args.format)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from bench.errors import BenchError
    from bench.predict import load_logged_model, predict_files

    if args.top < 1:
        raise BenchError(f"--top must be at least 1, got {args.top}")
    model, card = load_logged_model(args.run, args.tracking_uri)
    failed = 0
    for result in predict_files(model, card, args.files, args.top):
        if result.error:  # logged as a warning where it was skipped
            failed += 1
            continue
        ranked = ", ".join(f"{genre} {p:.3f}" for genre, p in result.top)
        print(f"{result.path}: {ranked}")
    return 1 if failed else 0
