"""Suite -> jobs (model x fold), each in its own process, every outcome logged.

A job runs in a child process so that a time budget can be enforced by killing it and a crash
(even a segfault or out-of-memory kill) becomes a FAILED run instead of ending the suite. Only
this parent process talks to the tracker. Re-running the same suite skips jobs whose
(model, fold, config hash) already FINISHED and retries the rest.
"""

from __future__ import annotations

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
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench import artifacts, registry
from bench.data.dataset import Dataset
from bench.data.splits import Fold, make_folds
from bench.environment import resolve_device, run_tags
from bench.metrics import align_proba, classification_metrics
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

    @property
    def key(self) -> str:
        return f"{self.model}|{self.fold.name}|{self.config_hash}"

    @property
    def name(self) -> str:
        return f"{self.model}/{self.fold.name}"


@dataclass
class JobResult:
    job: Job
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    artifacts: Path | None = None


@dataclass
class RunSummary:
    parent_run_id: str
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    results: list[JobResult] = field(default_factory=list)


def plan_jobs(suite: Suite, dataset: Dataset, device: str) -> list[Job]:
    """Every (model, fold) of the suite, with the exact parameters each model gets."""
    folds = make_folds(dataset, suite.protocol, suite.seed)
    jobs = []
    for entry in suite.models:
        spec = registry.get(entry.name)
        params = _complete_params(spec.factory, entry.params, suite.seed, device)
        config = {
            "model": entry.name,
            "params": params,
            "protocol": suite.protocol.__dict__,
            "seed": suite.seed,
            "data": dataset.fingerprint,
        }
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
        config_hash = digest.hexdigest()[:12]
        jobs.extend(
            Job(entry.name, spec.family, spec.factory, params, f, config_hash) for f in folds
        )
    return jobs


def run_suite(
    suite: Suite,
    dataset: Dataset,
    tracker: Tracker,
    *,
    workers: int = 1,
    device: str = "auto",
    on_job: Callable[[JobResult | None, int], None] | None = None,
    command: str = "",
) -> RunSummary:
    """Run every job not yet FINISHED; ``on_job(result, total)`` is called as each ends."""
    device = resolve_device(device)
    jobs = plan_jobs(suite, dataset, device)
    reaped = tracker.reap_stale_runs()
    if reaped:
        log.info("marked %d run(s) left RUNNING by a killed process as KILLED", reaped)
    done = tracker.finished_job_keys()
    pending = [j for j in jobs if j.key not in done]
    tags = {
        "bench.suite": suite.name,
        "bench.protocol": suite.protocol.name,
        "bench.protocol_description": suite.protocol.describe(),
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
            "models": ",".join(m.name for m in suite.models),
            "folds": len({j.fold.name for j in jobs}),
            "n_rows": len(dataset),
            "n_tracks": dataset.n_tracks,
            "workers": workers,
        },
        tags={**tags, "bench.skipped_clips": str(len(dataset.skipped))},
    )
    summary = RunSummary(parent, skipped=len(jobs) - len(pending))
    if on_job:
        on_job(None, len(pending))
    status = "FAILED"
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as scratch:
        try:
            for result in _execute_all(pending, dataset, suite, workers, device, Path(scratch)):
                _record(tracker, parent, result, tags)
                summary.results.append(result)
                if result.status == "FINISHED":
                    summary.finished += 1
                else:
                    summary.failed += 1
                if result.artifacts:
                    shutil.rmtree(result.artifacts, ignore_errors=True)
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


def _record(tracker: Tracker, parent: str, result: JobResult, tags: dict[str, str]) -> None:
    job = result.job
    job_tags = {
        **tags,
        "bench.model": job.model,
        "bench.family": job.family,
        "bench.fold": job.fold.name,
        "bench.config_hash": job.config_hash,
        "bench.job_key": job.key,
    }
    if result.error:
        job_tags["bench.error"] = result.error[:5000]
    params = {f"model.{k}": v for k, v in job.params.items()}
    params.update(n_train=len(job.fold.train), n_test=len(job.fold.test))
    tracker.log_job(
        parent,
        job.name,
        status=result.status,
        params=params,
        metrics=result.metrics,
        tags=job_tags,
        artifacts=result.artifacts,
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
            out = scratch / f"{job.model}-{job.fold.name}"
            # Not a daemon: joblib (random forests' n_jobs) refuses to parallelise in daemons.
            process = context.Process(target=_job_main, args=(job, dataset, out, threads, sender))
            process.start()
            sender.close()
            running[receiver] = (job, process, time.monotonic() + suite.model_seconds)
        ready = wait(list(running), timeout=1.0)
        for conn in ready:
            job, process, _ = running.pop(conn)
            try:
                status, payload = conn.recv()
            except EOFError:
                process.join()
                yield JobResult(job, "FAILED", error=f"worker died (exit code {process.exitcode})")
                continue
            process.join()
            if status == "ok":
                metrics, out = payload
                yield JobResult(job, "FINISHED", metrics=metrics, artifacts=Path(out))
            else:
                yield JobResult(job, "FAILED", error=payload[0], artifacts=Path(payload[1]))
        now = time.monotonic()
        for conn, (job, process, deadline) in list(running.items()):
            if now > deadline:
                process.kill()
                process.join()
                running.pop(conn)
                yield JobResult(
                    job, "FAILED", error=f"exceeded the time budget of {suite.model_seconds:g} s"
                )


PRELOAD = ("bench.runner", "skops.io", "sklearn.metrics", "matplotlib")


def _job_context() -> mp.context.BaseContext:
    """Jobs fork from a clean server process that has imported what every job needs.

    Forking this process instead is unsafe: once it has run OpenMP code (torch features for a
    synthetic dataset), an XGBoost child deadlocks in libgomp; and CUDA cannot be used in a
    forked child of a process that touched it. Preloading matters too: ``skops.io`` alone
    takes ~4 s to import, which paid per job dominated small ones.
    """
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


def _job_main(job: Job, dataset: Dataset, out: Path, threads: int, conn: Connection) -> None:
    """Child process: fit, predict, score, write artifacts, send a summary, exit hard."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        out.mkdir(parents=True)
        conn.send(("ok", (_fit_and_score(job, dataset, out, threads), str(out))))
    except BaseException as exc:  # the parent turns any failure into a FAILED run
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        conn.send(("error", (message, str(out))))
    finally:
        conn.close()
        os._exit(0)  # skip atexit handlers inherited from the parent (MLflow's among them)


def _fit_and_score(job: Job, dataset: Dataset, out: Path, threads: int) -> dict[str, float]:
    fold = job.fold
    features = dataset.features.to_numpy()
    params = dict(job.params)
    if "n_jobs" in inspect.signature(job.factory).parameters and params.get("n_jobs") is None:
        params["n_jobs"] = threads  # a resource setting, kept out of the config hash
    model = job.factory(**params)
    start = time.perf_counter()
    model.fit(features[fold.train], dataset.labels[fold.train])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    raw = model.predict_proba(features[fold.test])
    predict_seconds = time.perf_counter() - start
    proba = align_proba(raw, model.classes_, len(dataset.classes))
    y_true = dataset.labels[fold.test]
    metrics = classification_metrics(y_true, proba)
    metrics.update(
        fit_seconds=fit_seconds,
        predict_seconds_per_item=predict_seconds / max(1, len(fold.test)),
    )
    artifacts.save_model(model, out / artifacts.MODEL_FILE)
    ids = dataset.features.index[fold.test]
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
    return metrics


def _complete_params(factory, params: dict[str, Any], seed: int, device: str) -> dict[str, Any]:
    """Suite parameters plus the seed and device for factories that take them."""
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        from bench.errors import BenchError

        raise BenchError(
            f"model {factory.__name__!r} has no parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(accepted)}"
        )
    full = dict(params)
    if "random_state" in accepted:
        full.setdefault("random_state", seed)
    if "device" in accepted:
        full.setdefault("device", device)
    return {k: full[k] for k in sorted(full)}
