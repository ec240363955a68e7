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
    from bench.redact import mask, mask_log_records

    mask_log_records()
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = mask(" ".join(["bench", *argv]))  # what bench.command records
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
        print(f"bench: error: {exc}", file=sys.stderr)  # masked when it was raised
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: show the traceback, but never a password it may hold
        import traceback

        print(mask(traceback.format_exc()), file=sys.stderr, end="")
        return 1


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

    p = sub.add_parser(
        "doctor",
        help="check the installation: versions, torchaudio, devices, threads, stores",
        description="Print Python, torch, torchaudio (and whether it loads), scikit-learn, "
        "xgboost (and whether it has CUDA), optuna, mlflow, the devices, thread settings, and "
        "the MLflow store and Optuna storage in use (passwords masked). Exit code 1, with the "
        "exact fix, when something is broken.",
    )
    _tracking_arg(p)
    p.add_argument("--storage", help="Optuna storage to report (default: as for `bench tune`)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("run", help="train and evaluate every model of a suite on every fold")
    p.add_argument("--suite", required=True, help="suite name or path to a suite TOML file")
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: $BENCH_DATA or ./data)")
    p.add_argument("--models", help="comma-separated subset of models (default: the suite's)")
    _labels_arg(p)
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
    p.add_argument(
        "--tuned",
        action="store_true",
        help="also run each model with its parameters from experiments/tuned/<suite>.toml "
        "(`bench tune`), on folds whose test sides exclude the tuning split",
    )
    p.add_argument("--no-report", action="store_true", help="do not write the leaderboard")
    p.add_argument("--reports-dir", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_run)

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
    _labels_arg(p)
    p.add_argument(
        "--protocol",
        choices=("stratified-kfold", "fault-filtered", "artist-kfold"),
        help="validation protocol whose development split is tuned on (default: the suite's)",
    )
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument(
        "--metric",
        help="accuracy, balanced_accuracy, f1_macro or log_loss "
        "(default: the suite's [tuning] metric, else accuracy)",
    )
    p.add_argument(
        "--storage",
        help="Optuna storage: a journal file path (default: $BENCH_OPTUNA_STORAGE or "
        "./optuna.journal), sqlite:///FILE (one worker) or postgresql://USER:PW@HOST:PORT/DB",
    )
    p.add_argument("--study", help="study name (default: SUITE.PROTOCOL.MODEL.METRIC)")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random", "cmaes"))
    p.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"))
    p.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="worker processes on this machine (default: the number of cores, at most 4)",
    )
    p.add_argument("--seed", type=int, help="seed of the split and sampler (default: the suite's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    _tracking_arg(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("studies", help="list Optuna studies with their best value and parameters")
    p.add_argument("--storage", help="Optuna storage (default: as for `bench tune`)")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser(
        "report",
        help="write reports/<suite>/leaderboard.md (statistics, per-class F1, plots) from MLflow",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="one suite's leaderboard: reports/<suite>/")
    which.add_argument(
        "--suites", help="comma-separated suites: mean ranks across them, reports/summary-<a>+<b>/"
    )
    _tracking_arg(p)
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
    _tracking_arg(p)
    p.set_defaults(func=cmd_predict)

    _features_parsers(sub)

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
    p = data.add_parser("fetch", help="download and unpack a dataset archive, checksum verified")
    p.add_argument("dataset", choices=("gtzan",))
    p.add_argument("--url", required=True)
    p.add_argument("--sha256", help="expected SHA-256 of the archive (strongly recommended)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_data_fetch)
    return parser


def _labels_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels",
        type=Path,
        help="MSD suites: genre label file (track_id<TAB>genre, or a CSV with track_id/song_id "
        "and genre columns) instead of genres derived from artist terms",
    )


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

    suites = list_suites()
    name = max((len(s.name) for s in suites), default=0)
    kind = max((len(s.dataset.kind) for s in suites), default=0)
    protocol = max((len(s.protocol.describe()) for s in suites), default=0)
    for suite in suites:
        models = ", ".join(m.name for m in suite.models)
        print(
            f"{suite.name:<{name}}  {suite.dataset.kind:<{kind}}  "
            f"{suite.protocol.describe():<{protocol}}  {models}"
        )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.doctor import diagnose, render

    found = diagnose(args.tracking_uri, args.storage)
    print(render(found))
    broken = [f.name for f in found if f.problem]
    if broken:
        print(f"bench doctor: {len(broken)} problem(s): {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from bench.catalog import open_dataset
    from bench.errors import BenchError
    from bench.suites import load_suite

    if args.workers < 1:
        raise BenchError(f"--workers must be at least 1, got {args.workers}")
    if args.folds is not None and args.folds < 2:
        raise BenchError(f"--folds must be at least 2, got {args.folds}")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    suite = load_suite(args.suite).with_overrides(models, args.protocol, args.folds, args.seed)
    suite = _with_labels(suite, args.labels)
    from bench import registry

    for entry in suite.models:  # every model and parameter, before any data is read
        registry.get(entry.name).check(entry.params)
    dataset = open_dataset(suite.dataset, args.data_dir, progress=sys.stderr.isatty())
    if dataset.skipped:
        log.warning("%d unreadable file(s) skipped; listed on the MLflow run", len(dataset.skipped))
    for reason, count in dataset.dropped.items():
        print(f"dropped: {count} {reason}")
    dev = None
    if args.tuned:
        from bench.tuning import apply_tuned

        suite, dev = apply_tuned(suite, dataset)
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
        f"{suite.protocol.describe()}, {len({m.name for m in suite.models})} model(s)"
        + (
            f" ({sum(m.variant == 'tuned' for m in suite.models)} tuned too); {dev.description}"
            if dev is not None
            else ""
        )
    )
    with logging_redirect_tqdm():
        summary = run_suite(
            suite,
            dataset,
            tracker,
            workers=args.workers,
            device=args.device,
            on_job=on_job,
            command=args.command_line,
            dev=dev,
        )
    if bar is not None:
        bar.close()
    print(
        f"{summary.finished} job(s) finished, {summary.failed} failed, "
        f"{summary.skipped} already done; MLflow: {tracker.display} "
        f"(experiment bench/{suite.name}, parent run {summary.parent_run_id})"
    )
    if not args.no_report:
        from bench.report import write_report

        print(f"leaderboard: {write_report(suite.name, tracker, args.reports_dir)}")
    return 1 if summary.failed else 0


def _with_labels(suite, labels: Path | None):
    """The suite reading genres from ``labels`` (an MSD suite's ``[dataset] labels``)."""
    if labels is None:
        return suite
    from dataclasses import replace

    from bench.errors import BenchError

    if not suite.dataset.kind.startswith(("msd", "synthetic-msd")):
        raise BenchError(f"--labels applies to MSD suites; {suite.name} reads {suite.dataset.kind}")
    if not labels.is_file():
        raise BenchError(f"{labels}: label file not found")
    options = {**suite.dataset.options, "labels": str(labels.resolve())}
    return replace(suite, dataset=replace(suite.dataset, options=options))


def _outcome(result) -> str:
    if result.status == "FINISHED":
        return f"acc {result.metrics['accuracy']:.3f}"
    return "FAILED"


def cmd_tune(args: argparse.Namespace) -> int:
    from bench import registry
    from bench.errors import BenchError
    from bench.suites import load_suite
    from bench.tuning import check_options, check_search_space, open_storage, parse_storage

    storage = parse_storage(args.storage)
    suite = load_suite(args.suite).with_overrides(None, args.protocol, None, args.seed)
    suite = _with_labels(suite, args.labels)
    metric = args.metric or suite.tuning.metric
    check_options(args.trials, args.workers, metric, args.sampler, args.pruner, storage)
    if args.timeout is not None and args.timeout <= 0:
        raise BenchError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    spec = registry.get(args.model)

    entries = {m.name: m.params for m in suite.models}
    suite_params = dict(entries.get(spec.name, {}))
    spec.check(suite_params)
    check_search_space(spec, suite_params, suite.seed)
    open_storage(storage)  # an unreachable database fails here, before the data is loaded
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from bench.catalog import open_dataset
    from bench.data.splits import dev_split
    from bench.environment import resolve_device
    from bench.tracking import Tracker
    from bench.tuning import TuneRequest, tune

    device = resolve_device(args.device)
    dataset = open_dataset(suite.dataset, args.data_dir, progress=sys.stderr.isatty())
    dev = dev_split(
        dataset, suite.protocol, suite.seed, suite.tuning.dev_fraction, suite.tuning.folds
    )
    study = args.study or f"{suite.name}.{suite.protocol.name}.{spec.name}.{metric}"
    request = TuneRequest(
        model=spec.name,
        suite=suite,
        dataset=dataset,
        dev=dev,
        trials=args.trials,
        storage=storage,
        study_name=study,
        metric=metric,
        sampler=args.sampler,
        pruner=args.pruner,
        workers=args.workers,
        seed=suite.seed,
        device=device,
        timeout=args.timeout,
        threads=max(1, (os.cpu_count() or 1) // args.workers),
    )
    tracker = Tracker(suite.name, args.tracking_uri)
    print(
        f"tuning {spec.name} on {dataset.name} ({dataset.n_tracks} tracks): {dev.description}; "
        f"study {study!r} in {storage.display}"
    )
    bar = None

    def on_progress(state):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=args.trials, desc=f"tune {spec.name}", unit="trial", file=sys.stderr)
        bar.n = min(state.done, args.trials)
        best = "—" if state.best_value is None else f"{state.best_value:.4f}"
        bar.set_postfix_str(f"best {metric} {best}, pruned {state.pruned}, failed {state.failed}")
        bar.refresh()

    with logging_redirect_tqdm():
        try:
            result = tune(request, tracker, on_progress, args.command_line)
        finally:
            if bar is not None:
                bar.close()
    state = result.state
    minutes, seconds = divmod(int(result.seconds), 60)
    print(
        f"study {study}: {state.done} trial(s) ({state.complete} complete, {state.pruned} pruned)"
        f", {state.failed} failed; this command took {minutes}m{seconds:02d}s"
    )
    baseline = state.baseline
    label = f"dev CV {metric}"
    if baseline is not None:
        print(f"  untuned {spec.name:<14} {label} {baseline:.4f}  (the suite's parameters)")
    if state.best_value is not None:
        gain = "" if baseline is None else f"  ({state.best_value - baseline:+.4f})"
        print(
            f"  tuned   {spec.name:<14} {label} {state.best_value:.4f}{gain}  "
            f"(trial {state.best_number})"
        )
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(state.best_params.items()))
        print(f"  best parameters: {shown}")
        print(
            f"written to {result.tuned_file}; `bench run --suite {suite.name} --tuned` scores "
            "tuned beside default on folds that exclude the development tracks"
        )
    print(f"MLflow: {tracker.display} (experiment bench/{suite.name}, run {result.parent_run_id})")
    for error in result.errors:
        print(f"bench: error: {error}", file=sys.stderr)
    if state.done < args.trials and not args.timeout:
        return 1
    return 1 if result.errors else 0


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_studies(args: argparse.Namespace) -> int:
    from bench.tuning import list_studies, parse_storage

    storage = parse_storage(args.storage)
    rows = list_studies(storage)
    if not rows:
        print(f"no studies in {storage.display}")
        return 0
    print(f"studies in {storage.display}:")
    for row in rows:
        best = "—" if row["best"] is None else f"{row['best']:.4f}"
        base = "—" if row["baseline"] is None else f"{row['baseline']:.4f}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(row["params"].items()))
        print(
            f"{row['study']}  model {row['model']}  {row['trials']} trials  "
            f"best {row['metric']} {best} (untuned {base})  {params}"
        )
    return 0


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


def _features_parsers(sub) -> None:
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
    from bench.environment import resolve_device
    from bench.errors import BenchError

    device = resolve_device(args.device)
    if args.fidelity:
        from bench.features.fidelity import write_fidelity_report

        out, result = write_fidelity_report(args.data_dir, args.report, device)
        r = result.table()["bench r"]
        print(f"{len(result.files)} clips; lowest Pearson r {r.min():.4f} ({r.idxmin()}): {out}")
        return 0
    if args.out is None:
        raise BenchError("bench features needs --out F.csv (or --fidelity)")
    if args.segment is not None and args.segment <= 0:
        raise BenchError(f"--segment must be positive, got {args.segment}")
    from tqdm import tqdm

    from bench.features.extract import audio_files, featurise_folder, write_table

    files = audio_files(args.data_dir)
    with tqdm(
        total=len(files), unit="clip", desc="features", disable=not sys.stderr.isatty()
    ) as bar:
        run = featurise_folder(
            args.data_dir, args.segment, device, args.workers, on_file=lambda _: bar.update()
        )
    rows = write_table(run.rows, args.out)
    print(
        f"{rows} row(s) from {len(run.rows)} clip(s) written to {args.out}; "
        f"{len(run.skipped)} file(s) skipped, {len(run.fixed)} fix(es) applied"
    )
    for reason in run.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    return 1 if not run.rows else 0


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


def cmd_data_synth(args: argparse.Namespace) -> int:
    from bench.features.synthetic import synth_gtzan

    root = synth_gtzan(
        args.out,
        per_genre=args.per_genre,
        seed=args.seed,
        duration=args.duration,
        progress=sys.stderr.isatty(),
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
        progress=sys.stderr.isatty(),
    )
    print(
        f"synthetic MSD ({args.tracks} track files) written to {root / 'data'}; each track's "
        f"generating genre is in {root / TRUTH_FILE}"
    )
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from bench.data.download import fetch

    root = fetch(args.url, args.sha256, args.out, progress=sys.stderr.isatty())
    print(f"GTZAN ready at {root}; run: bench run --suite gtzan --data-dir {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
