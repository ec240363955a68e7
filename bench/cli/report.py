"""``bench report``, ``bench predict``, ``bench promote``: use what ``bench run`` logged."""

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

    p = sub.add_parser(
        "predict",
        help="top-3 genres per audio file from a logged or registered model",
        description="Genre probabilities per audio file from a model bench logged: a job's run "
        "id (--run) or an MLflow model URI (--model runs:/ID/model, models:/NAME@champion, "
        "models:/NAME/3). The model's MLmodel is checked and its skops file loaded through "
        "bench's type allowlist: models bench did not log are refused.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="MLflow run id of a (model, fold) job")
    which.add_argument("--model", help="MLflow model URI: runs:/ID/model or models:/NAME@ALIAS")
    p.add_argument("files", nargs="+", type=Path, help="audio files (wav, au, flac, ...)")
    p.add_argument("--top", type=int, default=3)
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per file with every genre's probability, unrounded",
    )
    tracking_arg(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "promote",
        help="register a job's logged model in the MLflow Model Registry",
        description="Register the model logged by job run RUN_ID as a new version of NAME "
        "(created if needed), optionally pointing an alias (e.g. champion) at it. "
        "`bench predict --model models:/NAME@ALIAS` then uses it, and `bench report` marks "
        "its leaderboard row.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a FINISHED job")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument("--alias", help="alias to point at the new version, e.g. champion")
    tracking_arg(p)
    p.set_defaults(func=cmd_promote)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.errors import BenchError
    from bench.report import check_reports_dir, write_report, write_summary
    from bench.tracking import Tracker

    check_reports_dir(args.reports_dir)
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
    import json

    from bench.data.gtzan import printable
    from bench.errors import BenchError
    from bench.predict import load_logged_model, predict_files

    if args.top < 1:
        raise BenchError(f"--top must be at least 1, got {args.top}")
    model = load_logged_model(args.model or args.run, args.tracking_uri)
    failed = 0
    for result in predict_files(model, args.files, 0 if args.json else args.top):
        if result.error:  # logged as a warning where it was skipped
            failed += 1
        elif args.json:
            print(json.dumps({"path": str(result.path), "proba": dict(result.top)}))
        else:
            ranked = ", ".join(f"{genre} {p:.3f}" for genre, p in result.top)
            print(f"{printable(result.path)}: {ranked}")  # a non-UTF-8 name cannot be printed
    return 1 if failed else 0


def cmd_promote(args: argparse.Namespace) -> int:
    from bench.tracking import promote

    print(f"registered {promote(args.run_id, args.name, args.alias, args.tracking_uri)}")
    return 0
