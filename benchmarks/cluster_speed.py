"""The same suite with the local executor and on a Dask cluster on this machine.

    python benchmarks/cluster_speed.py [--data-dir ../shared/data/gtzan] [--repeats 3]

Runs `bench run` (a fresh MLflow store each time) with the local executor (2 processes), then
with `--cluster` on a scheduler with 1 and with 2 workers of one thread each (started as the
README starts them, on 127.0.0.1), and `bench tune mlp --trials 50` locally and on the
2-worker cluster. Prints wall-time medians and ratios, the per-job overhead of the cluster
against the local executor, and the cluster's resident memory; writes reports/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
SUITE = """name = "dist"
seed = 0
[dataset]
kind = "gtzan"
[protocol]
name = "stratified-kfold"
folds = 5
[budget]
model_seconds = 600
[[models]]
name = "mlp"
[[models]]
name = "rf"
[[models]]
name = "hist_gb"
"""
JOBS = 15


def bench(*argv: str, cwd: Path) -> float:
    """Wall seconds of one `bench` command in ``cwd`` (a fresh store and cache there)."""
    env = {**os.environ, "BENCH_CACHE": str(cwd / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv], cwd=cwd, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def jobs_span(cwd: Path) -> float:
    """Seconds from the first job's claim to the last job's record, read from the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench/dist")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    assert len(runs) == JOBS and all(r.info.status == "FINISHED" for r in runs)
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def timed(argv: list[str], repeats: int, spans: list[float] | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-dist-") as home:
            (Path(home) / "dist.toml").write_text(SUITE)
            times.append(bench(*argv, cwd=Path(home)))
            if spans is not None:
                spans.append(jobs_span(Path(home)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data/gtzan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "distributed.md")
    args = parser.parse_args()
    data = str(args.data_dir.resolve())
    run = ["run", "--suite", "dist.toml", "--data-dir", data, "--no-report"]
    tune = ["tune", "mlp", "--trials", str(args.trials), "--suite", "gtzan", "--data-dir", data]

    results: dict[str, list[float]] = {}
    spans: dict[str, list[float]] = {}
    memory: dict[int, int] = {}
    key = "local, 2 processes"
    spans[key] = []
    results[key] = timed([*run, "--workers", "2"], args.repeats, spans[key])
    print(key, results[key], spans[key], flush=True)
    for workers in (1, 2):
        with LocalCluster(workers) as cluster:
            memory[workers] = cluster.memory()
            key = f"Dask, {workers} worker(s)"
            spans[key] = []
            timed([*run, "--cluster", cluster.address], 1)  # warm: workers start their forkserver
            results[key] = timed([*run, "--cluster", cluster.address], args.repeats, spans[key])
            print(key, results[key], spans[key], flush=True)
            if workers == 2:
                tune_cluster = timed([*tune, "--workers", "2", "--cluster", cluster.address], 1)
    tune_local = timed([*tune, "--workers", "2"], 1)

    def median(table: dict[str, list[float]], key: str) -> float:
        return statistics.median(table[key])

    local, one, two = (
        median(results, k) for k in ("local, 2 processes", "Dask, 1 worker(s)", "Dask, 2 worker(s)")
    )
    jobs_local, jobs_one, jobs_two = (
        median(spans, k) for k in ("local, 2 processes", "Dask, 1 worker(s)", "Dask, 2 worker(s)")
    )
    lines = [
        "# A suite on a Dask cluster against the local executor",
        "",
        f"Written by `python benchmarks/cluster_speed.py` on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}). Suite: `mlp`, `rf`, "
        f"`hist_gb` x 5 folds ({JOBS} jobs of 1-6 s) on the 1000 tracks of the real Kaggle "
        "GTZAN features; each run starts from an empty MLflow store and cache. *command*: the "
        "whole `bench run` (start-up, data, a fresh store, jobs, records); *jobs*: from the "
        "first job's claim to the last job's record, read from the store. Medians of "
        f"{args.repeats} runs; each cluster ran the suite once before, so that its workers had "
        "started their job forkservers (the local executor starts its own in every run). Dask "
        "workers: one thread each (one core per job, as the local executor's 2 processes), "
        "started as the README does, on 127.0.0.1; the driver shares the 2 cores with them.",
        "",
        "| executor | command s (median) | runs | jobs s (median) | runs |",
        "|---|---:|---|---:|---|",
    ]
    for name, times in results.items():
        runs = ", ".join(f"{t:.1f}" for t in times)
        job_runs = ", ".join(f"{t:.1f}" for t in spans[name])
        lines.append(
            f"| {name} | {median(results, name):.1f} | {runs} | {median(spans, name):.1f} "
            f"| {job_runs} |"
        )
    lines += [
        "",
        f"- 2 Dask workers against 1: **{one / two:.2f}x** the speed for the command, "
        f"**{jobs_one / jobs_two:.2f}x** for the jobs.",
        f"- 2 Dask workers against the local executor (2 processes): **{two / local:.3f}** of "
        f"its command wall time ({(two - local) / JOBS:+.2f} s per job), "
        f"**{jobs_two / jobs_local:.3f}** of its jobs time.",
        f"- Resident memory of the cluster (scheduler, workers, their children) at start: "
        f"{memory[1] / 2**20:.0f} MiB with 1 worker, {memory[2] / 2**20:.0f} MiB with 2.",
        "",
        f"`bench tune mlp --trials {args.trials} --suite gtzan --workers 2` (one run each): "
        f"local {tune_local[0]:.1f} s, on the 2-worker cluster {tune_cluster[0]:.1f} s "
        f"({tune_cluster[0] / tune_local[0]:.2f} of the local wall time).",
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
