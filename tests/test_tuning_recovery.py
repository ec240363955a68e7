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

from bench.tracking import Tracker

TESTS = Path(__file__).resolve().parent
SUITE = """
name = "tune"
seed = 0
[dataset]
kind = "gtzan"
[protocol]
name = "stratified-kfold"
folds = 3
[tuning]
dev_fraction = 0.4
folds = 3
[[models]]
name = "logreg"
"""
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
