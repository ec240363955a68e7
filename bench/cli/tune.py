"""``bench tune`` and ``bench studies``: Optuna studies of a registered model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.common import (
    LazyBar,
    cluster_arg,
    default_workers,
    interactive,
    labels_arg,
    options_from,
    protocol_arg,
    short,
    system_metrics_arg,
    tracking_arg,
)


def add_parsers(sub) -> None:
    from bench.tuning.options import METRICS, PRUNERS, SAMPLERS

    p = sub.add_parser(
        "tune",
        help="tune a registered model with Optuna on the suite's development split",
        description="Tune MODEL with Optuna. The objective is the mean CV metric on the suite's "
        "development split (never the leaderboard's test tracks). Re-running the same command "
        "continues the study until it holds --trials complete-or-pruned trials; the best "
        "parameters go to experiments/tuned/<suite>.toml for `bench run --tuned`.",
    )
    p.add_argument("model", help="registered model name (see `bench models`)")
    p.add_argument(
        "--trials",
        type=int,
        default=50,
        help="complete-or-pruned trials the study should hold in total (default: 50)",
    )
    p.add_argument("--suite", default="gtzan", help="suite whose data and protocol to tune on")
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: $BENCH_DATA or ./data)")
    labels_arg(p)
    protocol_arg(
        p, "validation protocol whose development split is tuned on (default: the suite's)"
    )
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument(
        "--metric",
        help=f"{', '.join(METRICS)} (default: the suite's [tuning] metric, else accuracy)",
    )
    p.add_argument(
        "--storage",
        help="Optuna storage: a journal file path (default: $BENCH_OPTUNA_STORAGE or "
        "./optuna.journal), sqlite:///FILE (one worker) or postgresql://USER:PW@HOST:PORT/DB",
    )
    p.add_argument("--study", help="study name (default: SUITE.PROTOCOL.MODEL.METRIC)")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS)
    p.add_argument("--pruner", default="median", choices=PRUNERS)
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes on this machine (default: the number of cores, at most 4); "
        "never more than --trials, nor, without --cluster, than the cores here",
    )
    p.add_argument("--seed", type=int, help="seed of the split and sampler (default: the suite's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    tracking_arg(p)
    cluster_arg(p)
    system_metrics_arg(p, "the study's run while this command tunes (not with --cluster)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("studies", help="list Optuna studies with their best value and parameters")
    p.add_argument("--storage", help="Optuna storage (default: as for `bench tune`)")
    p.set_defaults(func=cmd_studies)


def cmd_tune(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from bench.catalog import data_root
    from bench.cluster import connect_cluster
    from bench.suites import load_suite
    from bench.tracking import Tracker
    from bench.tuning.options import TuneOptions
    from bench.tuning.session import plan, tune

    # before plan() opens the study's storage, which creates ./optuna.journal: no data, no file
    data_root(load_suite(args.suite).dataset, args.data_dir)
    request = plan(options_from(TuneOptions, args, progress=interactive()))
    tracker = Tracker(request.suite.name, args.tracking_uri, system_metrics=args.system_metrics)
    print(
        f"tuning {request.model} on {request.dataset.name} ({request.dataset.n_tracks} tracks): "
        f"{request.dev.description}; study {request.study_name!r} in {request.storage.display}"
    )
    client = connect_cluster(args.cluster)
    with logging_redirect_tqdm(), _TrialBar(request) as bar:
        try:
            result = tune(request, tracker, bar.update, args.command_line, client)
        finally:
            if client is not None:
                client.close()
    print(_summary(request, result))
    where = f"experiment bench/{request.suite.name}, run {result.parent_run_id}"
    print(f"MLflow: {tracker.display} ({where})")
    for error in result.errors:
        print(f"bench: error: {error}", file=sys.stderr)
    if result.state.done < args.trials and not args.timeout:
        return 1
    return 1 if result.errors else 0


def _summary(request, result) -> str:
    state, name, metric = result.state, request.model, request.metric
    minutes, seconds = divmod(int(result.seconds), 60)
    lines = [
        f"study {request.study_name}: {state.done} trial(s) ({state.complete} complete, "
        f"{state.pruned} pruned), {state.failed} failed; this command took {minutes}m{seconds:02d}s"
    ]
    label = f"dev CV {metric}"
    if state.baseline is not None:
        lines.append(f"  untuned {name:<14} {label} {state.baseline:.4f}  (the suite's parameters)")
    if state.best_value is not None:
        gain = "" if state.baseline is None else f"  ({state.best_value - state.baseline:+.4f})"
        best = f"{state.best_value:.4f}{gain}  (trial {state.best_number})"
        lines.append(f"  tuned   {name:<14} {label} {best}")
        shown = ", ".join(f"{k}={short(v)}" for k, v in sorted(state.best_params.items()))
        lines.append(f"  best parameters: {shown}")
        lines.append(
            f"written to {result.tuned_file}; `bench run --suite {request.suite.name} --tuned` "
            "scores tuned beside default on folds that exclude the development tracks"
        )
    return "\n".join(lines)


class _TrialBar(LazyBar):
    """A progress bar over the study's trials with the best value so far."""

    def __init__(self, request) -> None:
        super().__init__()
        self.request = request

    def update(self, state) -> None:
        trials = self.request.trials
        if self.bar is None:
            self.start(trials, f"tune {self.request.model}", "trial")
        self.bar.n = min(state.done, trials)
        best = "—" if state.best_value is None else f"{state.best_value:.4f}"
        self.bar.set_postfix_str(
            f"best {self.request.metric} {best}, pruned {state.pruned}, failed {state.failed}"
        )
        self.bar.refresh()


def cmd_studies(args: argparse.Namespace) -> int:
    from bench.tuning.storage import parse_storage
    from bench.tuning.study import list_studies

    storage = parse_storage(args.storage)
    rows = list_studies(storage)
    if not rows:
        print(f"no studies in {storage.display}")
        return 0
    print(f"studies in {storage.display}:")
    for row in rows:
        best = "—" if row["best"] is None else f"{row['best']:.4f}"
        base = "—" if row["baseline"] is None else f"{row['baseline']:.4f}"
        params = ", ".join(f"{k}={short(v)}" for k, v in sorted(row["params"].items()))
        print(
            f"{row['study']}  model {row['model']}  {row['trials']} trials  "
            f"best {row['metric']} {best} (untuned {base})  {params}"
        )
    return 0
