"""``bench`` command line: parses arguments, calls the library, prints.

Heavy libraries (torch, MLflow, xgboost, scikit-learn) are imported inside the commands that
need them, so ``bench --help`` and ``bench models`` start instantly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("bench")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ours are enough
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    from bench.errors import BenchError

    try:
        return args.func(args) or 0
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark music-genre classifiers: suites of models x folds, "
        "logged to MLflow, summarised in markdown leaderboards.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--family", help="only this family (baseline, bagging, boosting, ...)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("suites", help="list suites (experiments/*.toml)")
    p.set_defaults(func=cmd_suites)

    p = sub.add_parser("run", help="train and evaluate every model of a suite on every fold")
    p.add_argument("--suite", required=True, help="suite name or path to a suite TOML file")
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: $BENCH_DATA or ./data)")
    p.add_argument("--models", help="comma-separated subset of models (default: the suite's)")
    p.add_argument(
        "--protocol",
        choices=("stratified-kfold", "fault-filtered", "artist-kfold"),
        help="validation protocol (default: the suite's)",
    )
    p.add_argument("--folds", type=int, help="number of folds for k-fold protocols")
    p.add_argument("--seed", type=int, help="seed for splits and models (default: the suite's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="jobs run at once, each in its own process with cores/workers threads "
        "(default: the number of cores, at most 4)",
    )
    _tracking_arg(p)
    p.add_argument("--no-report", action="store_true", help="do not write the leaderboard")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write reports/<suite>/leaderboard.md from MLflow runs")
    p.add_argument("--suite", required=True)
    _tracking_arg(p)
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="top-3 genres per audio file from a logged model")
    p.add_argument("--run", required=True, help="MLflow run id of a (model, fold) job")
    p.add_argument("files", nargs="+", type=Path, help="audio files (wav, au, flac, ...)")
    p.add_argument("--top", type=int, default=3)
    _tracking_arg(p)
    p.set_defaults(func=cmd_predict)

    data = sub.add_parser("data", help="get or generate datasets").add_subparsers(metavar="ACTION")
    p = data.add_parser("synth", help="write a synthetic dataset in the real layout")
    p.add_argument("dataset", choices=("gtzan",))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-genre", type=int, default=10)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per clip")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_synth)
    p = data.add_parser("fetch", help="download and unpack a dataset archive, checksum verified")
    p.add_argument("dataset", choices=("gtzan",))
    p.add_argument("--url", required=True)
    p.add_argument("--sha256", help="expected SHA-256 of the archive (strongly recommended)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_data_fetch)
    return parser


def _tracking_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )


def cmd_models(args: argparse.Namespace) -> int:
    from bench.registry import list_models

    specs = list_models(family=args.family)
    width = max(len(s.name) for s in specs) if specs else 4
    print(f"{'name':<{width}}  {'family':<9}  {'input':<8}  description")
    for s in specs:
        print(f"{s.name:<{width}}  {s.family:<9}  {s.input_kind:<8}  {s.description}")
    return 0


def cmd_suites(args: argparse.Namespace) -> int:
    from bench.suites import list_suites

    for suite in list_suites():
        models = ", ".join(m.name for m in suite.models)
        print(f"{suite.name:<10} {suite.dataset.kind:<16} {suite.protocol.describe():<28} {models}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from bench.data.catalog import open_dataset
    from bench.errors import BenchError
    from bench.suites import load_suite

    if args.workers < 1:
        raise BenchError(f"--workers must be at least 1, got {args.workers}")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    suite = load_suite(args.suite).with_overrides(models, args.protocol, args.folds, args.seed)
    from bench import registry

    for entry in suite.models:
        registry.get(entry.name)
    dataset = open_dataset(suite.dataset, args.data_dir, progress=sys.stderr.isatty())
    if dataset.skipped:
        log.warning("%d unreadable clip(s) skipped; listed on the MLflow run", len(dataset.skipped))
    from bench.runner import run_suite
    from bench.tracking import Tracker

    tracker = Tracker(suite.name, args.tracking_uri)
    bar = None

    def on_job(result, total):
        nonlocal bar
        if result is None:
            bar = tqdm(total=total, desc=f"{suite.name}", unit="job", file=sys.stderr)
            return
        bar.update(1)
        bar.set_postfix_str(f"{result.job.name} {_outcome(result)}")
        if result.status != "FINISHED":
            log.warning("%s failed: %s", result.job.name, result.error)

    print(
        f"suite {suite.name}: {dataset.name} ({len(dataset)} rows, {dataset.n_tracks} tracks), "
        f"{suite.protocol.describe()}, {len(suite.models)} model(s)"
    )
    with logging_redirect_tqdm():
        summary = run_suite(
            suite,
            dataset,
            tracker,
            workers=args.workers,
            device=args.device,
            on_job=on_job,
            command=" ".join(["bench", *sys.argv[1:]]),
        )
    if bar is not None:
        bar.close()
    print(
        f"{summary.finished} job(s) finished, {summary.failed} failed, "
        f"{summary.skipped} already done; MLflow: {tracker.uri} "
        f"(experiment bench/{suite.name}, parent run {summary.parent_run_id})"
    )
    if not args.no_report:
        from bench.report import write_report

        print(f"leaderboard: {write_report(suite.name, tracker, args.reports_dir)}")
    return 1 if summary.failed else 0


def _outcome(result) -> str:
    if result.status == "FINISHED":
        return f"acc {result.metrics['accuracy']:.3f}"
    return "FAILED"


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import write_report
    from bench.tracking import Tracker

    tracker = Tracker(args.suite, args.tracking_uri, create=False)
    print(f"leaderboard: {write_report(args.suite, tracker, args.reports_dir)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from bench.predict import load_logged_model, predict_files

    model, card = load_logged_model(args.run, args.tracking_uri)
    failed = 0
    for result in predict_files(model, card, args.files, args.top):
        if result.error:
            failed += 1
            print(f"bench: error: {result.error}", file=sys.stderr)
            continue
        ranked = ", ".join(f"{genre} {p:.3f}" for genre, p in result.top)
        print(f"{result.path}: {ranked}")
    return 1 if failed else 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from bench.data.synthetic import synth_gtzan

    root = synth_gtzan(
        args.out,
        per_genre=args.per_genre,
        seed=args.seed,
        duration=args.duration,
        progress=sys.stderr.isatty(),
    )
    print(f"synthetic GTZAN written to {root}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from bench.data.download import fetch

    root = fetch(args.url, args.sha256, args.out, progress=sys.stderr.isatty())
    print(f"GTZAN ready at {root}; run: bench run --suite gtzan --data-dir {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
