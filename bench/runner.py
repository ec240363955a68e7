"""Suite -> jobs (model x fold), each in its own process, every outcome logged.

A job runs in a child process so that a time budget can be enforced by killing it and a crash
(even a segfault or out-of-memory kill) becomes a FAILED run instead of ending the suite. Only
this parent process talks to the tracker. Re-running the same suite skips jobs whose
(model, fold, config hash) already FINISHED and retries the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import artifacts, registry
from bench.data.dataset import Dataset
from bench.data.splits import DevSplit, Fold, make_folds
from bench.environment import pid_alive, resolve_device
from bench.evaluate import model_inputs, score_fold, servable_folds, with_resources
from bench.metrics import ENSEMBLE_WEIGHT
from bench.suites import Suite
from bench.tracking import (
    MODEL_DIR,
    SYSTEM_METRICS_ON_A_CLUSTER,
    Status,
    Tag,
    Tracker,
    run_tags,
)

log = logging.getLogger(__name__)


@dataclass
class Job:
    model: str
    family: str
    factory: Callable[..., Any]
    params: dict[str, Any]
    fold: Fold
    config_hash: str
    input_kind: str = "tabular"
    variant: str = "default"

    @property
    def key(self) -> str:
        return f"{self.model}|{self.fold.name}|{self.config_hash}"

    @property
    def label(self) -> str:
        """The model as the leaderboard names it: ``mlp`` or ``mlp (tuned)``."""
        return self.model if self.variant == "default" else f"{self.model} ({self.variant})"

    @property
    def name(self) -> str:
        return f"{self.label}/{self.fold.name}"


@dataclass
class JobResult:
    job: Job
    status: str  # Status.FINISHED | Status.FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifacts: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status == Status.FINISHED


ELSEWHERE = "ELSEWHERE"
"""A job another command finished or is running (``JobResult.status``; never recorded)."""


@dataclass
class RunSummary:
    parent_run_id: str
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    elsewhere: int = 0
    """Jobs that another command sharing the store finished or claimed during this run."""
    skipped_models: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOptions:
    """What ``bench run`` was asked (None: the suite's default)."""

    suite: str
    data_dir: Path | None = None
    models: list[str] | None = None
    labels: Path | None = None
    protocol: str | None = None
    folds: int | None = None
    seed: int | None = None
    workers: int = 1
    tracking_uri: str | None = None
    tuned: bool = False
    progress: bool = False
    """Show a progress bar while the dataset loads."""
    cluster: str | None = None
    """A Dask scheduler's address (else ``$BENCH_CLUSTER``; neither: local processes)."""
    system_metrics: bool = False
    """Record MLflow's system metrics (CPU, memory, GPU) on each job's run."""


@dataclass
class Prepared:
    """A suite ready to run: narrowed by the options, its data loaded, its store open."""

    suite: Suite
    dataset: Dataset
    tracker: Tracker
    dev: DevSplit | None = None
    """With ``--tuned``: the development split the tuned parameters came from."""
    cluster: Any = None
    """A connected Dask client, with ``--cluster``; closed by :meth:`close`."""

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


def prepare(options: RunOptions) -> Prepared:
    """Check everything ``options`` name (every model and parameter before any data is read),
    load the data, add the tuned entries for ``--tuned``, and open the MLflow store."""
    from bench.catalog import open_dataset
    from bench.cluster import cluster_address
    from bench.errors import BenchError
    from bench.suites import load_suite
    from bench.tuned import apply_tuned

    if options.workers < 1:
        raise BenchError(f"--workers must be at least 1, got {options.workers}")
    if options.system_metrics and cluster_address(options.cluster):
        raise BenchError(SYSTEM_METRICS_ON_A_CLUSTER)
    suite = load_suite(options.suite).with_overrides(
        options.models, options.protocol, options.folds, options.seed, options.labels
    )
    for entry in suite.models:
        registry.get(entry.name).check(entry.params)
    dataset = open_dataset(suite.dataset, options.data_dir, progress=options.progress)
    if dataset.skipped:
        log.warning("%d unreadable file(s) skipped; listed on the MLflow run", len(dataset.skipped))
    dev = None
    if options.tuned:
        suite, dev = apply_tuned(suite, dataset)
    from bench.cluster import connect_cluster

    tracker = Tracker(suite.name, options.tracking_uri, system_metrics=options.system_metrics)
    return Prepared(suite, dataset, tracker, dev, connect_cluster(options.cluster))


def plan_jobs(
    suite: Suite, dataset: Dataset, device: str, dev: DevSplit | None = None
) -> tuple[list[Job], dict[str, str]]:
    """Every (model, fold) of the suite with its exact parameters, and models that cannot run.

    Audio and multimodal models see only the tracks that have audio; without any they are
    skipped with the reason, never silently. With ``dev`` (a ``--tuned`` run) the folds
    leave the development split's tracks out of every test side.
    """
    folds = make_folds(dataset, suite.protocol, suite.seed, dev)
    jobs, skipped = [], {}
    for entry in suite.models:
        spec = registry.get(entry.name)
        params = spec.complete(entry.params, suite.seed, device)
        model_folds, reason = servable_folds(spec, params, dataset, folds)
        if reason:
            skipped[entry.name] = reason
        if not model_folds:
            continue
        config = {
            "model": entry.name,
            "params": params,
            "protocol": suite.protocol.__dict__,
            "seed": suite.seed,
            "data": dataset.fingerprint,
        }
        if entry.variant != "default":
            config["variant"] = entry.variant
        if dev is not None and dev.held_out:
            config["dev_split"] = dev.signature
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        config_hash = digest.hexdigest()[:12]
        jobs.extend(
            Job(
                entry.name,
                spec.family,
                spec.factory,
                params,
                f,
                config_hash,
                spec.input_kind,
                entry.variant,
            )
            for f in model_folds
        )
    return jobs, skipped


def run_suite(
    suite: Suite,
    dataset: Dataset,
    tracker: Tracker,
    *,
    workers: int = 1,
    device: str = "auto",
    on_job: Callable[[JobResult | None, int], None] | None = None,
    command: str = "",
    dev: DevSplit | None = None,
    cluster: Any = None,
) -> RunSummary:
    """Run every job not yet FINISHED; ``on_job(result, total)`` is called as each ends.

    ``dev``: the development split tuned parameters came from (``bench run --tuned``).
    ``cluster``: a Dask client (:func:`bench.cluster.connect`) to run the jobs on, instead of
    ``workers`` local processes.

    Each job is claimed in the store just before it starts (:meth:`Tracker.claim_job`), so any
    number of ``bench run`` commands sharing a store split the jobs between them: none is
    trained or logged twice, and a job claimed by a command that died is run again.
    """
    device = resolve_device(device)
    jobs, skipped_models = plan_jobs(suite, dataset, device, dev)
    reaped = tracker.reap_stale_runs()
    if reaped:
        log.info("marked %d run(s) left RUNNING by a killed process as KILLED", reaped)
    done = tracker.finished_job_keys()
    pending = longest_first([j for j in jobs if j.key not in done], tracker.model_seconds())
    for job in jobs:  # logged, but killed before its checkpoints were removed
        if job.key in done:
            shutil.rmtree(checkpoint_dir(job), ignore_errors=True)
    protocol, description = suite.protocol.name, suite.protocol.describe()
    if dev is not None and dev.held_out:
        protocol = f"{protocol}:dev-{dev.signature}"
        description = f"{description}, tuning split held out: {dev.description}"
    tags = {
        Tag.SUITE: suite.name,
        Tag.PROTOCOL: protocol,
        Tag.PROTOCOL_DESCRIPTION: description,
        Tag.DATASET: dataset.name,
        Tag.DATA_FINGERPRINT: dataset.fingerprint,
        Tag.SEED: str(suite.seed),
        Tag.DEVICE: device,
        Tag.COMMAND: command,
        **run_tags(),
    }
    n_folds = len({j.fold.name for j in jobs})
    parent = tracker.start_parent(
        f"{suite.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        description=f"`{command or 'bench run --suite ' + suite.name}`: "
        f"{len(suite.models)} model(s) x {n_folds} fold(s) on {dataset.name} ({description}). "
        "Each child run is one (model, fold) job with its metrics, logged model and "
        f"predictions; the leaderboard is `bench report --suite {suite.name}`.",
        params={
            "models": ",".join(sorted({m.name for m in suite.models})),
            "folds": n_folds,
            "n_rows": len(dataset),
            "n_tracks": dataset.n_tracks,
            "workers": workers,
        },
        tags={
            **tags,
            Tag.SKIPPED_CLIPS: str(len(dataset.skipped)),
            **({Tag.DROPPED: json.dumps(dataset.dropped)} if dataset.dropped else {}),
        },
    )
    from bench.catalog import data_ref

    data = data_ref(dataset)
    tracker.log_dataset(parent, data, "suite")
    summary = RunSummary(parent, skipped=len(jobs) - len(pending), skipped_models=skipped_models)
    for name, reason in skipped_models.items():
        log.warning("skipping %s: %s", name, reason)
        family = registry.get(name).family
        tracker.log_skip(parent, name, reason, {**tags, Tag.FAMILY: family})
    if on_job:
        on_job(None, len(pending))
    claims: dict[str, str] = {}

    def claimed() -> Iterator[Job]:
        for job in pending:
            run_id = tracker.claim_job(
                parent,
                job.name,
                job.key,
                _job_tags(job, tags),
                description=f"{job.model} ({job.family}) on {job.fold.name} of {description}: "
                f"fitted on {len(job.fold.train)} rows, scored on {len(job.fold.test)}.",
                data=data,
            )
            if run_id is None:  # finished or running under another command meanwhile
                summary.elsewhere += 1
                if on_job:
                    on_job(JobResult(job, ELSEWHERE), len(pending))
                continue
            claims[job.key] = run_id
            yield job

    beat = _Heartbeat(tracker, claims)
    status = Status.FAILED
    with scratch_space() as scratch:
        try:
            results = _execute_all(
                claimed(), dataset, suite, workers, Path(scratch), cluster, beat, tracker, claims
            )
            for result in results:
                _record(tracker, claims[result.job.key], result)
                del claims[result.job.key]  # recorded: no longer ours to release
                if result.status == Status.FINISHED:
                    summary.finished += 1
                else:
                    summary.failed += 1
                if result.artifacts:
                    shutil.rmtree(result.artifacts, ignore_errors=True)
                if result.status == Status.FINISHED:
                    shutil.rmtree(checkpoint_dir(result.job), ignore_errors=True)
                if on_job:
                    on_job(result, len(pending))
            status = Status.FINISHED
        finally:
            _close_run(tracker, parent, claims, summary, dataset, Path(scratch), status)
    return summary


def _close_run(
    tracker: Tracker,
    parent: str,
    claims: dict[str, str],
    summary: RunSummary,
    dataset: Dataset,
    scratch: Path,
    status: str,
) -> None:
    """Release the jobs still claimed (interrupted: they may be claimed again) and end the
    parent run. After a failure (a full disk, a store gone) these writes may fail too: each is
    tried, and what could not be written is logged once, not raised over the first error;
    the next run on this store reaps the claims of a process that is gone."""
    failed: list[BaseException] = []

    def attempt(write: Any, *args: Any, **kwargs: Any) -> None:
        try:
            write(*args, **kwargs)
        except Exception as exc:
            failed.append(exc)

    for run_id in claims.values():
        attempt(tracker.release, run_id)
    skipped_file = scratch / "skipped_clips.txt"
    if dataset.skipped:
        attempt(skipped_file.write_text, "\n".join(dataset.skipped) + "\n")
    metrics = {
        "jobs_finished": summary.finished,
        "jobs_failed": summary.failed,
        "jobs_skipped_done": summary.skipped,
        "jobs_elsewhere": summary.elsewhere,
        "skipped_clips": len(dataset.skipped),
    }
    files = [skipped_file] if dataset.skipped and skipped_file.exists() else []
    attempt(tracker.end_parent, parent, metrics, files=files, status=status)
    if failed and status == Status.FINISHED:
        raise failed[0]
    if failed:
        first = str(getattr(failed[0], "orig", None) or failed[0]).strip().splitlines()
        log.warning(
            "could not record the end of this run (%s); the next run on this store reaps "
            "its %d unfinished job(s)",
            first[-1] if first else type(failed[0]).__name__,
            len(claims),
        )


LONG_FAMILIES = ("stacking",)
"""Families whose models fit many models each (their members, per inner fold)."""


def longest_first(jobs: list[Job], seconds: Mapping[str, float]) -> list[Job]:
    """``jobs`` in the order to start them: the longest first, so that the last job to end
    is a short one and no worker waits idle on one long job at the end (the classic
    longest-processing-time rule). ``seconds`` are the models' recorded times in this store
    (:meth:`Tracker.model_seconds`). A model without a record goes first: ensembles and
    stacks (which fit many models), then audio models, then the rest in suite order. The
    order changes when jobs run, never what they compute."""

    def rank(job: Job) -> tuple[int, float]:
        known = seconds.get(job.model)
        if known is not None:
            return (1, -known)
        static = 2 if job.family in LONG_FAMILIES else int(job.input_kind != "tabular")
        return (0, -static)

    return sorted(jobs, key=rank)  # stable: a model's folds keep their order


class _Heartbeat:
    """Renews the heartbeats of this command's claims every ``HEARTBEAT_SECONDS``."""

    def __init__(self, tracker: Tracker, claims: dict[str, str]) -> None:
        self.tracker, self.claims, self.last = tracker, claims, time.monotonic()

    def __call__(self) -> None:
        from bench.tracking import HEARTBEAT_SECONDS

        if time.monotonic() - self.last >= HEARTBEAT_SECONDS:
            self.tracker.beat(list(self.claims.values()))
            self.last = time.monotonic()


@contextlib.contextmanager
def scratch_space() -> Iterator[Path]:
    """This run's folder for job outputs, ``$BENCH_CACHE/scratch/<host>-<pid>-<random>``.

    Removed when the run ends; one left by a run that was killed (``kill -9``, a power cut) is
    removed by the next run on this host once its process is gone.
    """
    import socket

    from bench.environment import cache_home

    base = cache_home() / "scratch"
    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for stale in base.glob(f"{host}-*-*"):
        pid = stale.name[len(host) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{host}-{os.getpid()}-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _job_tags(job: Job, tags: dict[str, str]) -> dict[str, str]:
    return {
        **tags,
        Tag.MODEL: job.model,
        Tag.VARIANT: job.variant,
        Tag.FAMILY: job.family,
        Tag.FOLD: job.fold.name,
        Tag.CONFIG_HASH: job.config_hash,
    }


def _record(tracker: Tracker, run_id: str, result: JobResult) -> None:
    job = result.job
    params = {f"model.{k}": v for k, v in job.params.items()}
    params.update(n_train=len(job.fold.train), n_test=len(job.fold.test))
    if "n_test_tracks" in result.metrics:  # segments scored as tracks: n_test counts what is scored
        params.update(n_test=int(result.metrics["n_test_tracks"]), n_test_rows=len(job.fold.test))
    tracker.finish_job(
        run_id,
        status=result.status,
        params=params,
        metrics=result.metrics,
        error=result.error,
        artifacts=result.artifacts,
        history=result.history,
    )


def _execute_all(
    jobs: Iterable[Job],
    dataset: Dataset,
    suite: Suite,
    workers: int,
    scratch: Path,
    cluster: Any,
    on_poll: Callable[[], None],
    tracker: Tracker,
    claims: dict[str, str],
) -> Iterator[JobResult]:
    """Yield results as jobs end, keeping ``workers`` job processes (or the cluster) busy.

    Artifacts are written to ``scratch`` here; on a cluster, a worker sends them back with the
    result, or uploads them itself to an MLflow server's artifact proxy.
    """
    from bench.processes import Task, isolated

    def out(job: Job) -> Path:
        return scratch / f"{job.model}-{job.variant}-{job.fold.name}"

    if cluster is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        tasks = (
            Task(job, _run_job, (job, dataset, out(job), threads), suite.model_seconds)
            for job in jobs
        )
        outcomes = isolated(tasks, workers, PRELOAD, on_poll)
    else:
        from bench.cluster import WORKER_THREADS, run_tasks

        upload = tracker.uri if tracker.uri.startswith(("http://", "https://")) else None

        def remote() -> Iterator[Task]:
            for job in jobs:
                args = (job, dataset, (upload, claims[job.key]), WORKER_THREADS)
                yield Task(job, _run_remote_job, args, suite.model_seconds)

        outcomes = run_tasks(remote(), cluster, PRELOAD, on_poll)
    for outcome in outcomes:
        job = outcome.key
        if outcome.ok:
            metrics, history, *packed = outcome.value
            folder: Path | None = out(job)
            if packed and packed[0] is not None:
                _unpack(packed[0], folder)
            elif packed:  # uploaded by the worker to the MLflow server
                folder = None
            yield JobResult(
                job, Status.FINISHED, metrics=metrics, artifacts=folder, history=history
            )
        elif outcome.status == "error":
            out(job).mkdir(parents=True, exist_ok=True)
            (out(job) / "error.txt").write_text(outcome.trace)
            yield JobResult(job, Status.FAILED, error=outcome.value, artifacts=out(job))
        elif outcome.status == "timeout":
            budget = f"exceeded the time budget of {suite.model_seconds:g} s"
            yield JobResult(job, Status.FAILED, error=budget)
        else:
            yield JobResult(job, Status.FAILED, error=outcome.value)


def _run_remote_job(
    job: Job, dataset: Dataset, sink: tuple[str | None, str], threads: int
) -> tuple[dict[str, float], list[dict[str, float]], bytes | None]:
    """A job's process on a cluster worker: as :func:`_run_job`, into a folder of its own; the
    artifacts go to the MLflow server's proxy (``sink``: its URI and the job's run) or back to
    the driver as a gzipped tar."""
    upload, run_id = sink
    with tempfile.TemporaryDirectory(prefix="bench-job-") as folder:
        out = Path(folder) / "out"
        metrics, history = _run_job(job, dataset, out, threads)
        if upload is not None:
            from bench.tracking import upload_artifacts

            upload_artifacts(upload, run_id, out, metrics)
            return metrics, history, None
        return metrics, history, _pack(out)


def _pack(folder: Path) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def _unpack(packed: bytes, folder: Path) -> None:
    """A job's artifacts as its worker packed them: plain files and folders only."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as archive:
        archive.extractall(folder, filter="data")


PRELOAD = (
    "bench.runner",
    "skops.io",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "torch._dynamo",
    "tqdm",
)
"""What the job processes' forkserver imports once. Jobs fork from a clean server, never from
this process: once it has run OpenMP code (torch features for a synthetic dataset) an XGBoost
child deadlocks in libgomp, and CUDA cannot be used in a forked child of a process that touched
it. ``skops.io`` takes ~4 s to import and ``torch._dynamo`` (pulled in by torch optimisers) ~2 s:
paid per job, they dominated small ones; so did ``matplotlib.pyplot`` (~0.35 s), which every
job imports for its confusion matrix."""


def _run_job(
    job: Job, dataset: Dataset, out: Path, threads: int
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """A job's process: fit, predict, score, write the artifacts to ``out``."""
    import threading

    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    threadpool_limits(threads)
    tqdm.set_lock(threading.RLock())  # tqdm's default is a process-shared semaphore
    out.mkdir(parents=True)
    return _fit_and_score(job, dataset, out, threads)


def _fit_and_score(
    job: Job, dataset: Dataset, out: Path, threads: int
) -> tuple[dict[str, float], list[dict[str, float]]]:
    checkpoints = checkpoint_dir(job)
    accepted = inspect.signature(job.factory).parameters
    model = job.factory(**with_resources(accepted, job.params, threads, str(checkpoints)))
    score = score_fold(model, dataset, model_inputs(dataset, job.input_kind), job.fold)
    metrics, ids, y_true, proba = score.metrics, score.ids, score.y_true, score.proba
    _save_model(model, job, dataset, out / MODEL_DIR)
    if checkpoints.is_dir():
        shutil.copytree(checkpoints, out / "checkpoints")
    artifacts.write_predictions(
        out / artifacts.PREDICTIONS_FILE, ids, y_true, proba, dataset.classes
    )
    artifacts.write_confusion_png(
        out / artifacts.CONFUSION_FILE,
        y_true,
        proba.argmax(axis=1),
        dataset.classes,
        f"{job.name}  acc {metrics['accuracy']:.3f}",
    )
    final = _final_step(model)
    if hasattr(final, "resumed_from_epoch_"):
        metrics["resumed_from_epoch"] = final.resumed_from_epoch_
    if getattr(final, "meta_name_", "greedy") == "greedy":  # a stack that chose weights
        for member, weight in (getattr(final, "weights_", None) or {}).items():
            metrics[f"{ENSEMBLE_WEIGHT}{member}"] = weight
    return metrics, list(getattr(final, "history_", []))


def _save_model(model: Any, job: Job, dataset: Dataset, folder: Path) -> None:
    """The fitted model and its card, which ``bench predict`` and MLflow's loader
    (:mod:`bench.served`) read; the first test clip is the MLflow input example."""
    from bench.served import input_example

    folder.mkdir()
    artifacts.save_model(model, folder / artifacts.MODEL_FILE)
    card = {
        "model": job.model,
        "family": job.family,
        "input_kind": job.input_kind,
        "classes": list(dataset.classes),
        "outputs": [dataset.classes[int(c)] for c in model.classes_],
        "feature_columns": [str(c) for c in dataset.features.columns],
        "dataset": dataset.name,
        "fold": job.fold.name,
    }
    first = int(job.fold.test[0])
    audio = dataset.audio.get(dataset.tracks[first])
    card["input_example"] = input_example(
        card, dataset.features.iloc[first].tolist(), str(audio) if audio else None
    )
    artifacts.write_card(folder / artifacts.CARD_FILE, **card)


def checkpoint_dir(job: Job) -> Path:
    """A stable place per job, so a killed training resumes from its last checkpoint."""
    from bench.environment import cache_home

    return cache_home() / "checkpoints" / f"{job.model}-{job.fold.name}-{job.config_hash}"


def _final_step(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model
