"""`bench tune` after a kill: MLflow's trial runs agree with Optuna's trials, a dead writer's
lock is free at once; and the storage URL's query and the worker count are what they should be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import write_tabular_gtzan
from optuna.trial import TrialState
from support.suites import TUNE_SUITE as SUITE

from bench.tracking import Tracker

TESTS = Path(__file__).resolve().parent
STUDY = "tune.stratified-kfold.logreg.accuracy"

# `bench tune` whose process group is SIGKILLed the moment MLflow holds the run of trial 1,
# before anything is logged to it: the worst moment of Tracker.log_trial.
KILLED_WHILE_LOGGING = """
import os, signal, sys
from mlflow.tracking import MlflowClient
from bench.cli import main

create_run = MlflowClient.create_run

def create_then_die(self, *args, **kwargs):
    run = create_run(self, *args, **kwargs)
    if run.data.tags.get("bench.trial_number") == "1":
        os.killpg(0, signal.SIGKILL)
    return run

MlflowClient.create_run = create_then_die
sys.exit(main(sys.argv[1:]))
"""


def _storage(path: str = "optuna.journal") -> object:
    from bench.tuning.storage import open_storage, parse_storage

    return open_storage(parse_storage(path))


@pytest.mark.slow
@pytest.mark.parametrize("reaped", [False, True], ids=["left-running", "reaped-killed"])
def test_kill_9_while_a_trial_is_logged_then_mlflow_agrees_with_optuna(
    tmp_path: Path, reaped: bool
) -> None:
    """The rerun logs the half-logged trial again, once; ``reaped``: `bench run` on the same
    store marked it KILLED first (Tracker.reap_stale_runs)."""
    data = write_tabular_gtzan(tmp_path / "gtzan", per_genre=15)
    (tmp_path / "tune.toml").write_text(SUITE)
    args = ["tune", "logreg", "--trials", "4", "--workers", "1", "--suite", "tune.toml",
            "--data-dir", str(data)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_LOGGING, *args], env=env, capture_output=True,
        start_new_session=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    _, runs = Tracker("tune").study_runs(STUDY)
    left = {r["tags"]["bench.trial_number"]: r for r in runs}
    assert left["1"]["status"] == "RUNNING" and not left["1"]["params"]  # as the issue found
    if reaped:
        assert Tracker("tune").reap_stale_runs() == 2  # the study's run and trial 1's

    rerun = subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    study = optuna.load_study(study_name=STUDY, storage=_storage())
    finished = [t for t in study.get_trials() if t.state.is_finished()]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in finished) == 4
    _, runs = Tracker("tune").study_runs(STUDY)
    numbers = sorted(int(r["tags"]["bench.trial_number"]) for r in runs)
    assert numbers == [t.number for t in finished]  # each trial once, none missing
    status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
    by_number = {int(r["tags"]["bench.trial_number"]): r for r in runs}
    for trial in finished:
        run = by_number[trial.number]
        assert run["tags"]["bench.trial_state"] == trial.state.name
        assert run["status"] == status[trial.state.name]
        assert {k: float(v) for k, v in run["params"].items()} == pytest.approx(trial.params)
        if trial.state == TrialState.COMPLETE:
            assert run["metrics"]["dev_accuracy"] == pytest.approx(trial.value)


# A writer SIGKILLed while it appends to the journal, holding the journal's lock.
KILLED_WHILE_APPENDING = """
import os, signal, sys
import optuna
from bench.tuning.storage import open_storage, parse_storage

def die(fd):
    os.kill(os.getpid(), signal.SIGKILL)

os.fsync = die  # Optuna's append: lock, write, fsync, unlock
optuna.create_study(study_name="first", storage=open_storage(parse_storage(sys.argv[1])))
"""


def test_the_journal_lock_of_a_killed_writer_is_taken_over_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "optuna.journal"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_APPENDING, str(journal)], capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert journal.read_text().count("\n") == 1  # it died between its write and the unlock

    import optuna.storages.journal._file as journal_file

    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s for the journal lock of a dead writer")

    with monkeypatch.context() as patch:
        patch.setattr(journal_file.time, "sleep", no_waiting)  # Optuna's locks sleep to wait
        storage = _storage(str(journal))
        study = optuna.create_study(study_name="second", storage=storage)
        study.tell(study.ask(), 1.0)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["first", "second"]

    # The lock is the kernel's: held while its holder lives, free once it is gone.
    from bench.tuning.storage import journal_lock

    lock = journal_lock(journal)
    assert lock.acquire(blocking=False)
    held = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from bench.tuning.storage import "
         f"journal_lock; print(journal_lock(Path({str(journal)!r})).acquire(blocking=False))"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert held.stdout.strip() == "False", held.stderr
    lock.release()
    assert journal_lock(journal).acquire(blocking=False)


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLAlchemy: pysqlite ignores it
def test_a_sqlite_url_query_stays_out_of_the_lock_file_name(tmp_path: Path) -> None:
    from bench.tuning.storage import StudyLock, open_storage, parse_storage

    spec = parse_storage("sqlite:///opt.db?password=PASS")
    assert spec.path == tmp_path / "opt.db"
    assert spec.url.endswith("/opt.db?password=PASS")  # the driver still gets the query
    open_storage(spec)
    with StudyLock(spec, "study")():
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opt.db", "opt.db.bench-lock"]


def _options(data: Path, trials: int, workers: int, cluster: str | None = None) -> object:
    from bench.tuning.options import TuneOptions

    (data.parent / "tune.toml").write_text(SUITE)
    return TuneOptions("logreg", str(data.parent / "tune.toml"), trials, data, workers=workers,
                       cluster=cluster)  # fmt: skip


def test_trials_2_workers_12_starts_2_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bench import processes
    from bench.cli import main

    monkeypatch.setattr("bench.tuning.options.local_cores", lambda: 16)
    started = []
    isolated = processes.isolated

    def counted(tasks: list, workers: int, *args: object, **kwargs: object) -> object:
        started.append((len(tasks), workers))
        return isolated(tasks, workers, *args, **kwargs)

    monkeypatch.setattr(processes, "isolated", counted)
    data = write_tabular_gtzan(tmp_path / "gtzan", per_genre=15)
    (tmp_path / "tune.toml").write_text(SUITE)
    args = ["tune", "logreg", "--trials", "2", "--workers", "12", "--suite", "tune.toml"]
    assert main([*args, "--data-dir", str(data)]) == 0
    assert started == [(2, 2)]  # two worker processes, not twelve
    assert "--workers 12: starting 2 worker(s), as many as 2 trial(s)" in caplog.text


def test_local_workers_are_capped_at_the_cores_and_cluster_workers_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bench.tuning.session import plan

    data = write_tabular_gtzan(tmp_path / "gtzan", per_genre=15)
    monkeypatch.setattr("bench.tuning.options.local_cores", lambda: 3)
    assert plan(_options(data, trials=10, workers=12)).workers == 3
    assert "--workers 12: starting 3 worker(s), as many as 3 core(s) here" in caplog.text
    assert plan(_options(data, trials=10, workers=2)).workers == 2
    on_cluster = _options(data, trials=10, workers=12, cluster="tcp://127.0.0.1:8786")
    assert plan(on_cluster).workers == 10  # a cluster's workers: capped at the trials only
