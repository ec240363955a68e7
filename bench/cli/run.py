"""``bench run``: every model of a suite on every fold, logged to MLflow, then the leaderboard."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.cli.common import (
    LazyBar,
    cluster_arg,
    default_workers,
    interactive,
    labels_arg,
    options_from,
    protocol_arg,
    system_metrics_arg,
    tracking_arg,
)

log = logging.getLogger("bench")


def add_parsers(sub) -> None:
    p = sub.add_parser("run", help="train and evaluate every model of a suite on every fold")
    p.add_argument("--suite", required=True, help="suite name or path to a suite TOML file")
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: $BENCH_DATA or ./data)")
    p.add_argument("--models", help="comma-separated subset of models (default: the suite's)")
    labels_arg(p)
    protocol_arg(p, "validation protocol (default: the suite's)")
    p.add_argument("--folds", type=int, help="number of folds for k-fold protocols")
    p.add_argument("--seed", type=int, help="seed for splits and models (default: the suite's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="jobs run at once, each in its own process with cores/workers threads "
        "(default: the number of cores, at most 4)",
    )
    tracking_arg(p)
    cluster_arg(p)
    system_metrics_arg(p, "each job's run while it runs (not with --cluster)")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="also run each model with its parameters from experiments/tuned/<suite>.toml "
        "(`bench tune`), on folds whose test sides exclude the tuning split",
    )
    p.add_argument("--no-report", action="store_true", help="do not write the leaderboard")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from contextlib import closing

    from tqdm.contrib.logging import logging_redirect_tqdm

    from bench.runner import RunOptions, prepare, run_suite

    if not args.no_report:
        from bench.report import check_reports_dir

        check_reports_dir(args.reports_dir)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    options = options_from(RunOptions, args, models=models, progress=interactive())
    ready = prepare(options)
    print(_header(ready))
    with logging_redirect_tqdm(), _JobBar(ready.suite.name) as bar, closing(ready):
        summary = run_suite(
            ready.suite, ready.dataset, ready.tracker, workers=args.workers, device=args.device,
            on_job=bar.update, command=args.command_line, dev=ready.dev, cluster=ready.cluster,
        )  # fmt: skip
    elsewhere = f", {summary.elsewhere} done by another run" if summary.elsewhere else ""
    print(
        f"{summary.finished} job(s) finished, {summary.failed} failed, "
        f"{summary.skipped} already done{elsewhere}; MLflow: {ready.tracker.display} "
        f"(experiment bench/{ready.suite.name}, parent run {summary.parent_run_id})"
    )
    print(ready.tracker.browse_hint())
    if not args.no_report:
        from bench.report import write_report

        print(f"leaderboard: {write_report(ready.suite.name, ready.tracker, args.reports_dir)}")
    return 1 if summary.failed else 0


def _header(ready) -> str:
    suite, dataset, dev = ready.suite, ready.dataset, ready.dev
    lines = [f"dropped: {count} {reason}" for reason, count in dataset.dropped.items()]
    tuned = ""
    if dev is not None:
        n = sum(m.variant == "tuned" for m in suite.models)
        tuned = f" ({n} tuned too); {dev.description}"
    lines.append(
        f"suite {suite.name}: {dataset.name} ({len(dataset)} rows, {dataset.n_tracks} tracks), "
        f"{suite.protocol.describe()}, {len({m.name for m in suite.models})} model(s){tuned}"
    )
    return "\n".join(lines)


class _JobBar(LazyBar):
    """A progress bar over the jobs, with each one's outcome; failures logged as they end."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def update(self, result, total: int) -> None:
        if result is None:
            self.start(total, self.name, "job")
            return
        from bench.runner import ELSEWHERE

        self.bar.update(1)
        outcome = "FAILED"
        if result.finished:
            outcome = f"acc {result.metrics['accuracy']:.3f}"
        elif result.status == ELSEWHERE:
            outcome = "done by another run"
        self.bar.set_postfix_str(f"{result.job.name} {outcome}")
        if result.error:
            log.warning("%s failed: %s", result.job.name, result.error)
