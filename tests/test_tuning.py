"""`bench tune`: development split, exact trial counts, resumption, MLflow rows, tuned runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import helper_models  # noqa: F401  (registers flaky, boom_tunable, hollow)
import numpy as np
import optuna
import pytest
from boards import table_rows
from conftest import write_tabular_gtzan
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from support.suites import TUNE_SUITE

from bench.cli import main
from bench.data.gtzan import load_gtzan
from bench.data.splits import Protocol, dev_split, make_folds, read_groups
from bench.tracking import Tracker, resolve_uri

TESTS = Path(__file__).resolve().parent
SUITE = (
    TUNE_SUITE
    + """[[models]]
name = "mlp"
params = { epochs = 30, patience = 8, hidden = 32 }
"""
)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    data = write_tabular_gtzan(tmp_path / "gtzan", per_genre=15)
    suite = tmp_path / "tune.toml"
    suite.write_text(SUITE)
    return data, suite


def _study(name: str, storage: str = "optuna.journal") -> optuna.Study:
    from bench.tuning.storage import open_storage, parse_storage

    return optuna.load_study(study_name=name, storage=open_storage(parse_storage(storage)))


def _counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {s: states.count(s) for s in set(states)}


def _tune_cmd(data: Path, suite: Path, *extra: str) -> list[str]:
    code = "import sys, helper_models; from bench.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "tune", *extra, "--suite", str(suite), "--data-dir",
            str(data)]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(TESTS)}


# --- the development split ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["stratified-kfold", "artist-kfold"])
def test_tuned_folds_never_test_on_development_tracks(tmp_path: Path, protocol: str) -> None:
    root = write_tabular_gtzan(tmp_path / "g", per_genre=15, artists=5)
    dataset = load_gtzan(root)
    proto = Protocol(protocol, folds=3, groups="splits/artist_groups.txt")
    dev = dev_split(dataset, proto, seed=0, fraction=0.4, folds=3)
    dev_rows = set(np.flatnonzero(np.isin(dataset.tracks, dev.tracks)))
    inner_test = np.concatenate([f.test for f in dev.folds])
    assert sorted(inner_test) == sorted(dev_rows)  # inner folds partition the dev tracks
    assert all(set(f.train) | set(f.test) <= dev_rows for f in dev.folds)
    folds = make_folds(dataset, proto, 0, dev)
    tested = np.concatenate([f.test for f in folds])
    assert not dev_rows & set(tested)
    assert sorted(set(tested) | dev_rows) == list(range(len(dataset)))  # nothing else lost
    for fold in folds:
        assert dev_rows <= set(fold.train)  # dev tracks train every tuned fold
        assert not set(fold.train) & set(fold.test)
    if protocol == "artist-kfold":
        group_of = read_groups(root / "splits/artist_groups.txt")
        dev_groups = {group_of[t] for t in dev.tracks}
        test_groups = {group_of[t] for t in dataset.tracks[tested]}
        assert not dev_groups & test_groups
    if protocol == "stratified-kfold":
        assert len(dev.tracks) == 60  # 40% of 150, stratified: 6 per genre
        assert np.bincount(dataset.labels[sorted(dev_rows)]).tolist() == [6] * 10


def test_fault_filtered_tunes_on_train_to_valid_and_never_sees_test(tmp_path: Path) -> None:
    dataset = load_gtzan(write_tabular_gtzan(tmp_path / "g", per_genre=15))
    proto = Protocol("fault-filtered")
    dev = dev_split(dataset, proto, seed=0)
    (fold,) = dev.folds
    lists = {
        side: (tmp_path / "g/splits" / f"{side}_filtered.txt").read_text().split()
        for side in ("train", "valid", "test")
    }
    names = [f"{t.split('.')[0]}/{t}.wav" for t in dataset.tracks]
    assert sorted(names[i] for i in fold.train) == sorted(lists["train"])
    assert sorted(names[i] for i in fold.test) == sorted(lists["valid"])
    assert not dev.held_out
    (test_fold,) = make_folds(dataset, proto, 0, dev)
    assert sorted(names[i] for i in test_fold.test) == sorted(lists["test"])


def test_a_stack_whose_inner_cv_cannot_split_stops_before_any_trial(tmp_path: Path) -> None:
    from bench import registry
    from bench.errors import BenchError
    from bench.tuning.objective import model_folds as _model_folds

    dataset = load_gtzan(write_tabular_gtzan(tmp_path / "g", per_genre=30))
    dev = dev_split(dataset, Protocol("stratified-kfold"), seed=0, fraction=0.4, folds=3)
    stack = registry.get("stack")
    largest = max(int(np.bincount(dataset.labels[f.train]).max()) for f in dev.folds)
    assert _model_folds(stack, dataset, dev, {}) == dev.folds  # the default cv=5 fits
    with pytest.raises(BenchError, match=f"inner {largest + 1}-fold CV needs a class with at"):
        _model_folds(stack, dataset, dev, {"cv": largest + 1})


# --- bench tune end to end ---------------------------------------------------------------------


def test_tune_logs_every_trial_writes_best_and_continues(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    data, suite = setup
    args = ["tune", "logreg", "--trials", "6", "--suite", str(suite), "--data-dir", str(data)]
    assert main([*args, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    study = _study("tune.stratified-kfold.logreg.accuracy")
    assert _counts(study).get("COMPLETE", 0) + _counts(study).get("PRUNED", 0) == 6
    baseline = study.user_attrs["bench.baseline_value"]
    best = study.best_value
    assert f"untuned logreg         dev CV accuracy {baseline:.4f}" in out
    assert f"tuned   logreg         dev CV accuracy {best:.4f}" in out
    assert best > 0.3  # 10 classes: chance is 0.1

    tuned = tomllib.loads(Path("experiments/tuned/tune.toml").read_text())
    entry = tuned["logreg"]["stratified-kfold"]
    assert entry["value"] == pytest.approx(best)
    assert entry["params"]["C"] == pytest.approx(study.best_params["C"])
    assert entry["trials"] == 6

    parent, trials = Tracker("tune").study_runs("tune.stratified-kfold.logreg.accuracy")
    assert sorted(int(t["tags"]["bench.trial_number"]) for t in trials) == list(range(6))
    by_number = {int(t["tags"]["bench.trial_number"]): t for t in trials}
    for trial in study.get_trials():
        run = by_number[trial.number]
        assert run["tags"]["bench.trial_state"] == trial.state.name
        assert float(run["params"]["C"]) == pytest.approx(trial.params["C"])
        if trial.state == TrialState.COMPLETE:
            assert run["metrics"]["dev_accuracy"] == pytest.approx(trial.value)
    assert parent["metrics"]["best_dev_accuracy"] == pytest.approx(best)
    assert parent["status"] == "FINISHED"

    assert main(["studies"]) == 0
    listed = capsys.readouterr().out
    assert "tune.stratified-kfold.logreg.accuracy  model logreg  6 trials  " in listed
    assert f"best accuracy {best:.4f} (untuned {baseline:.4f})" in listed

    # The same command with a larger target continues the study under the same parent run.
    assert main([*args[:2], "--trials", "9", *args[4:], "--workers", "1"]) == 0
    study = _study("tune.stratified-kfold.logreg.accuracy")
    assert _counts(study).get("COMPLETE", 0) + _counts(study).get("PRUNED", 0) == 9
    parent2, trials = Tracker("tune").study_runs("tune.stratified-kfold.logreg.accuracy")
    assert parent2["run_id"] == parent["run_id"]
    assert len(trials) == 9


@pytest.mark.slow
def test_two_local_workers_share_one_journal_exactly(setup: tuple[Path, Path]) -> None:
    data, suite = setup
    args = ["tune", "mlp", "--trials", "10", "--workers", "2", "--suite", str(suite)]
    assert main([*args, "--data-dir", str(data)]) == 0
    study = _study("tune.stratified-kfold.mlp.accuracy")
    counts = _counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 10
    assert set(counts) <= {"COMPLETE", "PRUNED"}
    owners = {t.user_attrs["bench.owner"] for t in study.trials}
    assert len(owners) == 2  # both worker processes ran trials
    epochs = [t for t in study.trials if len(t.intermediate_values) > 3]
    assert epochs, "the MLP reports every epoch to the pruner"
    _, runs = Tracker("tune").study_runs("tune.stratified-kfold.mlp.accuracy")
    assert sorted(int(r["tags"]["bench.trial_number"]) for r in runs) == list(range(10))
    for run in runs:  # the pruned step is recorded on exactly the pruned trials
        pruned = run["tags"]["bench.trial_state"] == "PRUNED"
        assert ("bench.pruned_step" in run["tags"]) == pruned
        assert ("dev_accuracy" in run["metrics"]) == (not pruned)


def test_failing_trials_are_recorded_and_the_study_goes_on(setup: tuple[Path, Path]) -> None:
    data, suite = setup
    args = ["tune", "flaky", "--trials", "6", "--workers", "1", "--sampler", "random"]
    assert main([*args, "--suite", str(suite), "--data-dir", str(data)]) == 0
    study = _study("tune.stratified-kfold.flaky.accuracy")
    counts = _counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 6
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "half of flaky's space raises; with this seed some trials must have failed"
    assert all(t.params["C"] > 1 for t in failed)
    assert all("flaky: C=" in t.user_attrs["bench.error"] for t in failed)
    _, runs = Tracker("tune").study_runs("tune.stratified-kfold.flaky.accuracy")
    failed_runs = [r for r in runs if r["status"] == "FAILED"]
    assert len(failed_runs) == len(failed)
    assert all("flaky: C=" in r["tags"]["bench.error"] for r in failed_runs)


def test_a_model_that_always_fails_stops_with_one_error(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    data, suite = setup
    args = ["tune", "boom_tunable", "--trials", "20", "--workers", "1"]
    assert main([*args, "--suite", str(suite), "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert "bench: error: 5 trials in a row failed; last: RuntimeError: boom" in err
    assert _counts(_study("tune.stratified-kfold.boom_tunable.accuracy")) == {"FAIL": 5}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["nosuchmodel"], "unknown model 'nosuchmodel'"),
        (["hollow"], "search space of 'hollow' is empty"),
        (["boom"], "model 'boom' declares no search space"),
        (["logreg", "--trials", "0"], "--trials must be at least 1, got 0"),
        (["logreg", "--trials", "-3"], "--trials must be at least 1, got -3"),
        (["logreg", "--metric", "auc"], "unknown metric 'auc'"),
        (
            ["logreg", "--storage", "postgresql://bench:pw@127.0.0.1:1/optuna"],
            "cannot use Optuna storage postgresql://bench:***@127.0.0.1:1/optuna:",
        ),
        (["logreg", "--storage", "redis://localhost"], "--storage redis://localhost: unsupported"),
        (
            ["logreg", "--storage", "sqlite:///o.db", "--workers", "2"],
            "SQLite storage is for one worker",
        ),
    ],
)
def test_bad_input_is_one_line(setup: tuple[Path, Path], extra: list[str], message: str) -> None:
    data, suite = setup
    result = subprocess.run(
        [*_tune_cmd(data, suite, *extra)], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), result.stderr
    assert message in lines[0]
    assert "pw@" not in result.stderr


@pytest.mark.slow
def test_kill_9_then_the_same_command_ends_with_all_trials(setup: tuple[Path, Path]) -> None:
    data, suite = setup
    cmd = _tune_cmd(data, suite, "mlp", "--trials", "12", "--workers", "1")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    name = "tune.stratified-kfold.mlp.accuracy"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 4:
        time.sleep(0.3)
        if Path("optuna.journal").exists():
            try:
                counts = _counts(_study(name))
            except KeyError:  # the study is not created yet
                continue
            done = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _counts(_study(name))
    assert 4 <= before.get("COMPLETE", 0) + before.get("PRUNED", 0) < 12, before
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    after = _counts(_study(name))
    assert after.get("COMPLETE", 0) + after.get("PRUNED", 0) == 12
    assert after.get("RUNNING", 0) == 0
    assert after.get("FAIL", 0) == before.get("RUNNING", 0)  # the killed trial, failed
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/tune")
    parents = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'study'")
    assert [p.info.status for p in parents] == ["FINISHED"]


@pytest.mark.slow
def test_run_tuned_scores_tuned_beside_default_outside_the_dev_split(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    data, suite = setup
    common = ["--suite", str(suite), "--data-dir", str(data)]
    run = ["run", *common, "--models", "logreg", "--workers", "1", "--tuned"]
    assert main(run) == 2
    assert "no tuned parameters for suite 'tune'" in capsys.readouterr().err
    assert main(["tune", "logreg", "--trials", "4", "--workers", "1", *common]) == 0
    assert main(run) == 0
    runs = Tracker("tune").job_records()
    variants = sorted({(r.variant, r.fold) for r in runs})
    assert variants == [(v, f"fold{k}") for v in ("default", "tuned") for k in range(3)]
    tuned = tomllib.loads(Path("experiments/tuned/tune.toml").read_text())["logreg"]
    for run_ in runs:
        assert run_.protocol == f"stratified-kfold:dev-{tuned['stratified-kfold']['dev_split']}"
        assert int(run_.params["n_test"]) == 30  # (150 - 60 development tracks) / 3 folds
        if run_.variant == "tuned":
            C = tuned["stratified-kfold"]["params"]["C"]
            assert float(run_.params["model.C"]) == pytest.approx(C)
    board = Path("reports/tune/leaderboard.md").read_text()
    rows = [row[1:4] for row in table_rows(board)]
    assert ["logreg", "tuned", "baseline"] in rows
    assert ["logreg", "default", "baseline"] in rows
    assert "tuned by 3-fold CV on 60 development tracks" in board

    # Another seed means another development split: the tuned parameters are refused.
    assert main([*run, "--seed", "1"]) == 2
    assert "logreg was tuned on another development split" in capsys.readouterr().err

    # An ensemble whose members were tuned gets a tuned entry with them: tuned values replace
    # the suite's for that member, its other members keep the suite's.
    from dataclasses import replace

    from bench.suites import ModelEntry, load_suite
    from bench.tuned import apply_tuned

    stack = ModelEntry(
        "stack",
        {
            "estimators": ["logreg", "svm"],
            "estimator_params": {"logreg": {"C": 123.0, "max_iter": 500}, "svm": {"C": 3.0}},
        },
    )
    plain = replace(load_suite(str(suite)), models=(stack,))
    fed, _ = apply_tuned(plain, load_gtzan(data))
    assert [(e.name, e.variant) for e in fed.models] == [("stack", "default"), ("stack", "tuned")]
    C = tuned["stratified-kfold"]["params"]["C"]
    assert fed.models[1].params["estimator_params"] == {
        "logreg": {"C": C, "max_iter": 500},
        "svm": {"C": 3.0},
    }


@pytest.mark.slow
def test_two_machines_share_one_postgresql_study_exactly(
    setup: tuple[Path, Path], postgres_url: str
) -> None:
    data, suite = setup
    cmd = _tune_cmd(
        data, suite, "mlp", "--trials", "20", "--workers", "1", "--storage", postgres_url
    )
    machines = [Path(f"machine{k}") for k in range(2)]  # each its own MLflow store and files
    workers = []
    for home in machines:
        home.mkdir()
        workers.append(
            subprocess.Popen(
                cmd, cwd=home, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    study = _study("tune.stratified-kfold.mlp.accuracy", postgres_url)
    trials = study.get_trials(deepcopy=False)
    counts = _counts(study)
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 20, counts
    assert not {"RUNNING", "WAITING"} & set(counts)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # none duplicated
    assert len({t.user_attrs["bench.owner"] for t in trials}) == 2  # both workers took trials
    for home in machines:  # each machine's MLflow holds every trial of the study, once
        tracker = Tracker("tune", f"sqlite:///{home.resolve()}/mlflow.db", create=False)
        _, runs = tracker.study_runs("tune.stratified-kfold.mlp.accuracy")
        logged = sorted(int(r["tags"]["bench.trial_number"]) for r in runs)
        assert logged == [t.number for t in trials]
        tuned = tomllib.loads((home / "experiments/tuned/tune.toml").read_text())
        assert tuned["mlp"]["stratified-kfold"]["value"] == pytest.approx(study.best_value)


def test_the_one_private_optuna_attribute_is_the_storage_trial_id(tmp_path: Path) -> None:
    """bench.tuning.storage.storage_trial_id reads ``Trial._trial_id``: pinned here, so an Optuna
    upgrade that changes it fails this test instead of silently dropping heartbeats."""
    import sqlite3
    import warnings

    import optuna
    from optuna.storages import RDBStorage

    from bench.tuning.storage import heartbeat, storage_trial_id

    url = f"sqlite:///{tmp_path / 'o.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(url, heartbeat_interval=60, grace_period=120)
    study = optuna.create_study(storage=storage, study_name="pin")
    study.ask()  # trial 0, so that trial ids and numbers could differ
    other = optuna.create_study(storage=storage, study_name="other")
    trial = other.ask()
    trial_id = storage_trial_id(trial)
    assert storage.get_trial(trial_id).number == trial.number == 0
    assert trial_id != trial.number
    with heartbeat(storage, trial):
        pass
    with sqlite3.connect(tmp_path / "o.db") as db:
        beats = db.execute("SELECT trial_id FROM trial_heartbeats").fetchall()
    assert beats == [(trial_id,)]
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))
    )
    with heartbeat(journal, optuna.create_study(storage=journal).ask()):
        pass  # no heartbeats there, and no error
