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
import multiprocessing as mp
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench import artifacts, registry
from bench.data.dataset import Dataset
from bench.data.splits import DevSplit, Fold, make_folds
from bench.environment import (
    exit_with_owner,
    pid_alive,
    resolve_device,
    run_tags,
)
from bench.evaluate import model_inputs, score_fold, servable_folds, with_resources
from bench.redact import mask
from bench.suites import Suite
from bench.tracking import Tracker

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
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifacts: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class RunSummary:
    parent_run_id: str
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_models: dict[str, str] = field(default_factory=dict)


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
) -> RunSummary:
    """Run every job not yet FINISHED; ``on_job(result, total)`` is called as each ends.

    ``dev``: the development split tuned parameters came from (``bench run --tuned``).
    """
    device = resolve_device(device)
    jobs, skipped_models = plan_jobs(suite, dataset, device, dev)
    reaped = tracker.reap_stale_runs()
    if reaped:
        log.info("marked %d run(s) left RUNNING by a killed process as KILLED", reaped)
    done = tracker.finished_job_keys()
    pending = [j for j in jobs if j.key not in done]
    for job in jobs:  # logged, but killed before its checkpoints were removed
        if job.key in done:
            shutil.rmtree(checkpoint_dir(job), ignore_errors=True)
    protocol, description = suite.protocol.name, suite.protocol.describe()
    if dev is not None and dev.held_out:
        protocol = f"{protocol}:dev-{dev.signature}"
        description = f"{description}, tuning split held out: {dev.description}"
    tags = {
        "bench.suite": suite.name,
        "bench.protocol": protocol,
        "bench.protocol_description": description,
        "bench.dataset": dataset.name,
        "bench.data_fingerprint": dataset.fingerprint,
        "bench.seed": str(suite.seed),
        "bench.device": device,
        "bench.command": command,
        **run_tags(),
    }
    parent = tracker.start_parent(
        f"{suite.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        params={
            "models": ",".join(sorted({m.name for m in suite.models})),
            "folds": len({j.fold.name for j in jobs}),
            "n_rows": len(dataset),
            "n_tracks": dataset.n_tracks,
            "workers": workers,
        },
        tags={
            **tags,
            "bench.skipped_clips": str(len(dataset.skipped)),
            **({"bench.dropped": json.dumps(dataset.dropped)} if dataset.dropped else {}),
        },
    )
    summary = RunSummary(parent, skipped=len(jobs) - len(pending), skipped_models=skipped_models)
    for name, reason in skipped_models.items():
        log.warning("skipping %s: %s", name, reason)
        family = registry.get(name).family
        tracker.log_skip(parent, name, reason, {**tags, "bench.family": family})
    if on_job:
        on_job(None, len(pending))
    status = "FAILED"
    with scratch_space() as scratch:
        try:
            for result in _execute_all(pending, dataset, suite, workers, device, Path(scratch)):
                _record(tracker, parent, result, tags)
                if result.status == "FINISHED":
                    summary.finished += 1
                else:
                    summary.failed += 1
                if result.artifacts:
                    shutil.rmtree(result.artifacts, ignore_errors=True)
                if result.status == "FINISHED":
                    shutil.rmtree(checkpoint_dir(result.job), ignore_errors=True)
                if on_job:
                    on_job(result, len(pending))
            status = "FINISHED"
        finally:
            skipped_file = Path(scratch) / "skipped_clips.txt"
            if dataset.skipped:
                skipped_file.write_text("\n".join(dataset.skipped) + "\n")
            tracker.end_parent(
                parent,
                {
                    "jobs_finished": summary.finished,
                    "jobs_failed": summary.failed,
                    "jobs_skipped_done": summary.skipped,
                    "skipped_clips": len(dataset.skipped),
                },
                files=[skipped_file] if dataset.skipped else [],
                status=status,
            )
    return summary


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


def _record(tracker: Tracker, parent: str, result: JobResult, tags: dict[str, str]) -> None:
    job = result.job
    job_tags = {
        **tags,
        "bench.model": job.model,
        "bench.variant": job.variant,
        "bench.family": job.family,
        "bench.fold": job.fold.name,
        "bench.config_hash": job.config_hash,
        "bench.job_key": job.key,
    }
    if result.error:
        job_tags["bench.error"] = result.error[:5000]
    params = {f"model.{k}": v for k, v in job.params.items()}
    params.update(n_train=len(job.fold.train), n_test=len(job.fold.test))
    if "n_test_tracks" in result.metrics:  # segments scored as tracks: n_test counts what is scored
        params.update(n_test=int(result.metrics["n_test_tracks"]), n_test_rows=len(job.fold.test))
    tracker.log_job(
        parent,
        job.name,
        status=result.status,
        params=params,
        metrics=result.metrics,
        tags=job_tags,
        artifacts=result.artifacts,
        history=result.history,
    )


def _execute_all(
    jobs: list[Job], dataset: Dataset, suite: Suite, workers: int, device: str, scratch: Path
):
    """Yield results as jobs end, keeping up to ``workers`` child processes busy."""
    context = _job_context()
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    queue = list(jobs)
    running: dict[Connection, tuple[Job, Any, float]] = {}
    while queue or running:
        while queue and len(running) < max(1, workers):
            job = queue.pop(0)
            receiver, sender = context.Pipe(duplex=False)
            out = scratch / f"{job.model}-{job.variant}-{job.fold.name}"
            # Not a daemon: joblib (random forests' n_jobs) refuses to parallelise in daemons.
            process = context.Process(
                target=_job_main, args=(job, dataset, out, threads, sender, os.getpid())
            )
            process.start()
            sender.close()
            running[receiver] = (job, process, time.monotonic() + suite.model_seconds)
        ready = wait(list(running), timeout=1.0)
        for conn in ready:
            job, process, _ = running.pop(conn)
            try:
                status, payload = conn.recv()
            except EOFError:
                _reap(process)
                yield JobResult(job, "FAILED", error=f"worker died (exit code {process.exitcode})")
                continue
            _reap(process)
            if status == "ok":
                metrics, history, out = payload
                yield JobResult(
                    job, "FINISHED", metrics=metrics, artifacts=Path(out), history=history
                )
            else:
                yield JobResult(job, "FAILED", error=payload[0], artifacts=Path(payload[1]))
        now = time.monotonic()
        for conn, (job, process, deadline) in list(running.items()):
            if now > deadline:
                process.kill()
                _reap(process)
                running.pop(conn)
                yield JobResult(
                    job, "FAILED", error=f"exceeded the time budget of {suite.model_seconds:g} s"
                )


PRELOAD = ("bench.runner", "skops.io", "sklearn.metrics", "matplotlib", "torch._dynamo", "tqdm")


def _job_context() -> mp.context.BaseContext:
    """Jobs fork from a clean server process that has imported what every job needs.

    Forking this process instead is unsafe: once it has run OpenMP code (torch features for a
    synthetic dataset), an XGBoost child deadlocks in libgomp; and CUDA cannot be used in a
    forked child of a process that touched it. Preloading matters too: ``skops.io`` takes ~4 s
    to import and ``torch._dynamo`` (pulled in by torch optimisers) ~2 s; paid per job, they
    dominated small ones.
    """
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


def _reap(process: Any, grace: float = 30.0) -> None:
    """Join a job process that has reported; kill it if it lingers past ``grace`` seconds."""
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join()


def _job_main(
    job: Job, dataset: Dataset, out: Path, threads: int, conn: Connection, owner: int
) -> None:
    """Child process: fit, predict, score, write artifacts, send a summary."""
    exit_with_owner(owner)
    try:
        import threading

        from threadpoolctl import threadpool_limits
        from tqdm import tqdm

        threadpool_limits(threads)
        tqdm.set_lock(threading.RLock())  # tqdm's default is a process-shared semaphore
        out.mkdir(parents=True)
        metrics, history = _fit_and_score(job, dataset, out, threads)
        conn.send(("ok", (metrics, history, str(out))))
    except BaseException as exc:  # the parent turns any failure into a FAILED run
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(mask(traceback.format_exc()))
        message = mask(f"{type(exc).__name__}: {exc}".splitlines()[0])
        conn.send(("error", (message, str(out))))
    finally:
        conn.close()
        _stop_worker_pools()
        os._exit(0)  # nothing left to wait for: the result is sent, artifacts are on disk


def _stop_worker_pools() -> None:
    """Shut joblib's reusable loky pool (bagging, forests with n_jobs) so it leaks nothing."""
    import sys

    if "joblib" in sys.modules:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def _fit_and_score(
    job: Job, dataset: Dataset, out: Path, threads: int
) -> tuple[dict[str, float], list[dict[str, float]]]:
    checkpoints = checkpoint_dir(job)
    accepted = inspect.signature(job.factory).parameters
    model = job.factory(**with_resources(accepted, job.params, threads, str(checkpoints)))
    score = score_fold(model, dataset, model_inputs(dataset, job.input_kind), job.fold)
    metrics, ids, y_true, proba = score.metrics, score.ids, score.y_true, score.proba
    artifacts.save_model(model, out / artifacts.MODEL_FILE)
    artifacts.write_card(
        out / artifacts.CARD_FILE,
        model=job.model,
        family=job.family,
        input_kind=job.input_kind,
        classes=list(dataset.classes),
        feature_columns=list(dataset.features.columns),
        dataset=dataset.name,
        fold=job.fold.name,
    )
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
    return metrics, list(getattr(final, "history_", []))


def checkpoint_dir(job: Job) -> Path:
    """A stable place per job, so a killed training resumes from its last checkpoint."""
    from bench.environment import cache_home

    return cache_home() / "checkpoints" / f"{job.model}-{job.fold.name}-{job.config_hash}"


def _final_step(model: Any) -> Any:
    return model.steps[-1][1] if hasattr(model, "steps") else model
