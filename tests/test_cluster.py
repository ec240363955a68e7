"""Beyond one process: a real Dask cluster on 127.0.0.1, an MLflow server, and several
``bench run`` commands sharing one store."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from boards import table_rows
from mlflow.tracking import MlflowClient
from support import services
from test_run import job_runs, write_suite

from bench.cli import main
from bench.cluster import LocalCluster
from bench.tracking import Tracker, resolve_uri

DRIVER = "import sys, helper_models; from bench.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """``dask scheduler`` and two ``dask worker`` processes (one thread each) on 127.0.0.1,
    dashboards included, started and stopped by PID as :class:`bench.cluster.LocalCluster`
    does; a task may kill one worker and be retried once (``allowed-failures=1``)."""
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    env = services.env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
    with LocalCluster(2, env=env, logs=logs) as running:
        yield running


def _worker_pids(cluster: LocalCluster) -> set[int]:
    """The worker processes (the nannies' children that run tasks), as Dask reports them."""
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:
        return set(client.run(os.getpid).values())


def _processes(cluster: LocalCluster) -> list[psutil.Process]:
    tops = [psutil.Process(p.pid) for p in (cluster.scheduler, *cluster.nannies)]
    return tops + [c for top in tops for c in top.children(recursive=True)]


def _driver(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *argv],
        env=services.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _keys(suite: str, uri: str | None = None) -> collections.Counter:
    client = MlflowClient(uri or resolve_uri())
    experiment = client.get_experiment_by_name(f"bench/{suite}")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    return collections.Counter((r.data.tags["bench.job_key"], r.info.status) for r in runs)


@pytest.mark.slow
def test_a_killed_worker_loses_no_job_and_records_none_twice(
    cluster: LocalCluster, tabular_gtzan: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    models = (
        f'[[models]]\nname = "napper"\nparams = {{ seconds = 4.0, marks = "{marks}" }}\n'
        '[[models]]\nname = "logreg"\n'
    )
    suite = write_suite(tmp_path / "killed.toml", models, folds=3)
    driver = _driver("run", "--suite", str(suite), "--data-dir", str(tabular_gtzan),
                     "--cluster", cluster.address, "--no-report")  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (marks.is_dir() and any(marks.iterdir())):
        time.sleep(0.2)
    first = next(marks.iterdir())
    job_process = psutil.Process(int(first.name.split("-")[0]))
    workers = _worker_pids(cluster)
    (worker,) = [p for p in job_process.parents() if p.pid in workers]  # a nanny's daemon worker
    assert job_process.parent().pid == worker.pid  # its job started by subprocess
    os.kill(worker.pid, signal.SIGKILL)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert "6 job(s) finished, 0 failed" in out
    keys = _keys("killed")
    assert len(keys) == 6 and set(keys.values()) == {1}  # each job once...
    assert {status for _, status in keys} == {"FINISHED"}  # ...and finished
    assert len(list(marks.iterdir())) >= 4  # three napper folds, the killed one again


@pytest.mark.slow
def test_a_job_that_kills_every_worker_becomes_a_failed_row(
    cluster: LocalCluster, tabular_gtzan: Path, tmp_path: Path
) -> None:
    models = '[[models]]\nname = "worker_killer"\n[[models]]\nname = "logreg"\n'
    suite = write_suite(tmp_path / "poison.toml", models, folds=2)
    driver = _driver("run", "--suite", str(suite), "--data-dir", str(tabular_gtzan),
                     "--cluster", cluster.address, "--no-report")  # fmt: skip
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err  # failed jobs
    assert "2 job(s) finished, 2 failed" in out
    failed = job_runs("poison", "FAILED")
    assert sorted(r.data.tags["bench.model"] for r in failed) == ["worker_killer"] * 2
    for run in failed:
        assert "it killed every worker it ran on" in run.data.tags["bench.error"]
    assert sorted(r.data.tags["bench.model"] for r in job_runs("poison", "FINISHED")) == [
        "logreg",
        "logreg",
    ]


def test_nothing_listens_beyond_loopback(cluster: LocalCluster) -> None:
    listening = [
        (proc.pid, conn.laddr)
        for proc in _processes(cluster)
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 5  # scheduler and its dashboard, two workers, their dashboards
    assert {laddr.ip for _, laddr in listening} == {"127.0.0.1"}, listening


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with services.mlflow_server(tmp_path) as running:
        yield running


@pytest.mark.slow
def test_workers_upload_artifacts_through_an_mlflow_server(
    cluster: LocalCluster, mlflow_server: tuple[str, Path], tabular_gtzan: Path, tmp_path: Path
) -> None:
    url, artifacts = mlflow_server
    models = (
        '[[models]]\nname = "logreg"\n[[models]]\nname = "rf"\nparams = { n_estimators = 40 }\n'
    )
    suite = write_suite(tmp_path / "served.toml", models, folds=2)
    common = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--no-report"]
    remote = _driver(*common, "--cluster", cluster.address, "--tracking-uri", url)
    out, err = remote.communicate(timeout=300)
    assert remote.returncode == 0, err
    local = _driver(*common)  # the same suite, local processes, ./mlflow.db
    assert local.communicate(timeout=300) and local.returncode == 0

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("bench/served")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    assert len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = {p.name for p in artifacts.rglob("*") if run.info.run_id in p.parts}
        assert {"predictions.csv", "confusion_matrix.png"} <= stored, stored
        model_id = run.outputs.model_outputs[0].model_id  # logged by the worker, proxied
        stored = {p.name for p in artifacts.rglob("*") if model_id in p.parts}
        assert {"MLmodel", "model.skops", "model_card.json"} <= stored, stored
    here = {r.data.tags["bench.job_key"]: r.data.metrics for r in job_runs("served")}
    there = {r.data.tags["bench.job_key"]: r.data.metrics for r in runs}
    assert set(here) == set(there)
    for key, metrics in here.items():  # the same scores, whichever executor ran them
        for name in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss"):
            assert there[key][name] == metrics[name]
    boards = {}
    for where, uri in (("cluster", url), ("local", None)):
        argv = ["report", "--suite", "served", "--reports-dir", where]
        assert main([*argv, *(["--tracking-uri", uri] if uri else [])]) == 0
        boards[where] = _ranking(Path(where, "served", "leaderboard.md").read_text())
    assert boards["cluster"] == boards["local"]  # ranked the same, to the last digit
    assert sorted(row[1] for row in boards["local"][1:]) == ["logreg", "rf"]


def _ranking(board: str) -> list[list[str]]:
    """The leaderboard's first table without what differs between two runs of the same jobs:
    times and run ids."""
    lines = board.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = table_rows("\n".join(lines[start:end]))
    keep = [i for i, name in enumerate(rows[0]) if name not in ("fit s", "predict ms/item", "runs")]
    return [[row[i] for i in keep] for row in rows]


@pytest.mark.slow
def test_a_study_runs_its_workers_on_the_cluster(
    cluster: LocalCluster, tabular_gtzan: Path, tmp_path: Path
) -> None:
    """Two trial workers as Dask tasks share one journal file: exactly N trials."""
    suite = write_suite(tmp_path / "tuned.toml", '[[models]]\nname = "logreg"\n', folds=3)
    driver = _driver("tune", "logreg", "--suite", str(suite), "--data-dir", str(tabular_gtzan),
                     "--trials", "8", "--workers", "2", "--cluster", cluster.address)  # fmt: skip
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    assert ": 8 trial(s) (" in out and "), 0 failed" in out  # complete or pruned
    parent, trials = Tracker("tuned").study_runs("tuned.stratified-kfold.logreg.accuracy")
    assert parent is not None and parent["status"] == "FINISHED"
    assert sorted(int(t["tags"]["bench.trial_number"]) for t in trials) == list(range(8))


def _two_drivers_split(
    argv: list[str], suite: str, jobs: int, uri: str | None = None
) -> list[tuple[str, str]]:
    """Start two ``bench run`` commands at once; both succeed (no traceback from MLflow's
    schema set-up), together they finish each of the suite's ``jobs`` once, and the store
    holds one FINISHED run per job key."""
    drivers = [_driver(*argv), _driver(*argv)]
    outputs = [d.communicate(timeout=300) for d in drivers]
    for driver, (_, err) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, err
        assert "Traceback" not in err
    assert sum(int(out.split(" job(s) finished")[0].split()[-1]) for out, _ in outputs) == jobs
    keys = _keys(suite, uri)
    assert len(keys) == jobs and set(keys.values()) == {1}
    assert {status for _, status in keys} == {"FINISHED"}
    return outputs


@pytest.mark.slow
def test_two_runs_on_one_fresh_store_split_the_jobs(tabular_gtzan: Path, tmp_path: Path) -> None:
    """Two commands started at once on a fresh ./mlflow.db: neither crashes in MLflow's schema
    set-up, and every job is trained and logged once, by one of them."""
    models = (
        '[[models]]\nname = "napper"\nparams = { seconds = 1.0 }\n[[models]]\nname = "logreg"\n'
    )
    suite = write_suite(tmp_path / "shared.toml", models, folds=3)
    argv = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--workers", "1",
            "--no-report"]  # fmt: skip
    _two_drivers_split(argv, "shared", 6)


@pytest.mark.slow
def test_two_runs_on_one_fresh_postgresql_store_split_the_jobs(
    postgres_url: str, tabular_gtzan: Path, tmp_path: Path
) -> None:
    """The same with MLflow's store in PostgreSQL (how machines share a store without a
    server): the schema set-up and the claims are under advisory locks."""
    from sqlalchemy import create_engine, text

    database = f"mlflow_{os.getpid()}"
    admin = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
    admin.dispose()
    uri = postgres_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    uri = f"{uri}/{database}"
    models = '[[models]]\nname = "napper"\nparams = { seconds = 1.0 }\n'
    suite = write_suite(tmp_path / "pg.toml", models, folds=4)
    argv = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--workers", "1",
            "--no-report", "--tracking-uri", uri]  # fmt: skip
    outputs = _two_drivers_split(argv, "pg", 4, uri)
    assert "bench:***@" in outputs[0][0] and "bench:bench@" not in outputs[0][0]


@pytest.mark.slow
def test_a_cnn_resumes_on_another_worker_from_the_shared_cache(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """Workers share BENCH_CACHE: a CNN whose worker is killed mid-training resumes from its
    last checkpoint wherever Dask runs it again."""
    import torch

    from bench.features.synthetic import synth_gtzan

    data = synth_gtzan(tmp_path / "syn", per_genre=4, duration=9.0, seed=0)
    models = '[[models]]\nname = "cnn"\nparams = { epochs = 40, patience = 40 }\n'
    suite = write_suite(tmp_path / "cnnmove.toml", models, folds=2, budget=300)
    driver = _driver("run", "--suite", str(suite), "--data-dir", str(data), "--no-report",
                     "--cluster", cluster.address)  # fmt: skip
    checkpoints = Path(os.environ["BENCH_CACHE"]) / "checkpoints"
    deadline, epochs = time.monotonic() + 180, {}
    while time.monotonic() < deadline and not (len(epochs) == 2 and min(epochs.values()) >= 3):
        time.sleep(0.2)
        for found in checkpoints.glob("cnn-fold*-*/last.pt"):
            try:
                epochs[found.parent.name] = torch.load(found, weights_only=True)["epoch"]
            except (RuntimeError, EOFError, OSError):
                continue  # caught between write and rename
    assert len(epochs) == 2 and min(epochs.values()) >= 3, epochs
    os.kill(min(_worker_pids(cluster)), signal.SIGKILL)  # one worker: its fold moves
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    runs = job_runs("cnnmove", "FINISHED")
    assert sorted(r.data.tags["bench.fold"] for r in runs) == ["fold0", "fold1"]
    resumed = [r.data.metrics.get("resumed_from_epoch", 0) for r in runs]
    assert max(resumed) >= 3 and all(e < 40 for e in resumed)
    assert len(_keys("cnnmove")) == 2


@pytest.mark.slow
def test_two_runs_on_one_mlflow_server_split_the_jobs(
    mlflow_server: tuple[str, Path], tabular_gtzan: Path, tmp_path: Path
) -> None:
    """The same through an MLflow server, which has no lock: a job is claimed by creating a
    registered model named after it (the server lets one command create a name), deleted
    once the job is recorded."""
    url, _ = mlflow_server
    models = '[[models]]\nname = "napper"\nparams = { seconds = 1.0 }\n'
    suite = write_suite(tmp_path / "srv.toml", models, folds=4)
    argv = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--workers", "1",
            "--no-report", "--tracking-uri", url]  # fmt: skip
    _two_drivers_split(argv, "srv", 4, url)
    assert MlflowClient(url).search_registered_models() == []  # every claim freed
