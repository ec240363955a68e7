"""bench run end to end: MLflow rows, artifacts, failures, budgets, resume, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import helper_models  # noqa: F401  (registers boom and sleepy)
import numpy as np
import pandas as pd
import pytest
from boards import table_rows
from mlflow.tracking import MlflowClient

from bench.artifacts import load_model
from bench.cli import main
from bench.data.gtzan import load_gtzan
from bench.tracking import resolve_uri

TESTS = Path(__file__).resolve().parent


def write_suite(path: Path, models: str, folds: int = 3, budget: float = 120) -> Path:
    path.write_text(
        f"""name = "{path.stem}"
seed = 0
[dataset]
kind = "gtzan"
[protocol]
name = "stratified-kfold"
folds = {folds}
[budget]
model_seconds = {budget}
{models}
"""
    )
    return path


def job_runs(suite: str, status: str | None = None) -> list:
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name(f"bench/{suite}")
    runs = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'job'", max_results=1000)
    return [r for r in runs if status is None or r.info.status == status]


def _download_model(model_id: str, dst: Path) -> str:
    import mlflow

    uri = resolve_uri()
    return mlflow.artifacts.download_artifacts(
        f"models:/{model_id}", dst_path=str(dst), tracking_uri=uri, registry_uri=uri
    )


LOGREG_RF = """
[[models]]
name = "logreg"
[[models]]
name = "rf"
params = { n_estimators = 40 }
"""


def test_run_logs_every_model_and_fold(tabular_gtzan: Path, tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path / "mini.toml", LOGREG_RF)
    assert main(["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan)]) == 0
    runs = job_runs("mini", "FINISHED")
    assert sorted((r.data.tags["bench.model"], r.data.tags["bench.fold"]) for r in runs) == [
        (m, f"fold{k}") for m in ("logreg", "rf") for k in range(3)
    ]
    ds = load_gtzan(tabular_gtzan)
    client = MlflowClient(resolve_uri())
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        assert m["accuracy"] > 0.5  # chance is 0.1
        assert {
            "balanced_accuracy",
            "f1_macro",
            "log_loss",
            "fit_seconds",
            "predict_seconds_per_item",
        } <= set(m)
        assert tags["bench.protocol"] == "stratified-kfold" and tags["bench.seed"] == "0"
        assert tags["bench.data_fingerprint"] == ds.fingerprint and tags["bench.device"] == "cpu"
        assert tags["bench.version.scikit-learn"] and tags["bench.git_commit"]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert names == {"predictions.csv", "confusion_matrix.png"}
        assert len(run.outputs.model_outputs) == 1  # the fitted model: an MLflow model
    run = runs[0]
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
    model_id = run.outputs.model_outputs[0].model_id
    local_model = Path(_download_model(model_id, tmp_path / "dl-model")) / "data" / "model"
    preds = pd.read_csv(local / "predictions.csv", index_col=0)
    assert len(preds) == int(run.data.params["n_test"]) == 40
    assert (preds["truth"] == preds["predicted"]).mean() == pytest.approx(
        run.data.metrics["accuracy"]
    )
    model = load_model(local_model / "model.skops")
    proba = model.predict_proba(ds.features.loc[preds.index].to_numpy())
    np.testing.assert_allclose(proba, preds.filter(like="proba_").to_numpy(), atol=1e-5)
    assert (local / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    card = json.loads((local_model / "model_card.json").read_text())
    assert card["classes"] == list(ds.classes) and card["input_kind"] == "tabular"
    assert card["feature_columns"] == list(ds.features.columns)
    board = Path("reports/mini/leaderboard.md").read_text()
    assert any(row[0] == "1" for row in table_rows(board))
    assert "5-fold" not in board and "3-fold stratified" in board


@pytest.mark.slow
def test_jobs_start_longest_first_by_the_times_the_store_recorded(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    models = LOGREG_RF.split('[[models]]\nname = "rf"')[0]
    models += '[[models]]\nname = "sleepy"\nparams = { seconds = 2.0 }\n'
    suite = write_suite(tmp_path / "order.toml", models, folds=3)
    args = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--workers", "1"]

    def started(seed: str) -> list[str]:
        runs = [r for r in job_runs("order", "FINISHED") if r.data.tags["bench.seed"] == seed]
        runs.sort(key=lambda r: r.info.start_time)
        return [f"{r.data.tags['bench.model']}/{r.data.tags['bench.fold']}" for r in runs]

    logreg, sleepy = ([f"{m}/fold{k}" for k in range(3)] for m in ("logreg", "sleepy"))
    assert main([*args, "--no-report"]) == 0  # a fresh store: the suite's order
    assert started("0") == logreg + sleepy
    # new jobs (another seed): sleepy's recorded median (the first job also starts the
    # job processes' server, so a mean could rank logreg first) puts it first
    assert main([*args, "--no-report", "--seed", "1"]) == 0
    assert started("1") == sleepy + logreg


def test_without_records_ensembles_then_audio_models_start_first() -> None:
    from bench.data.splits import Fold
    from bench.runner import Job, longest_first

    fold = Fold("fold0", np.arange(2), np.arange(2, 4))

    def job(model: str, family: str = "baseline", kind: str = "tabular") -> Job:
        return Job(model, family, dict, {}, fold, "h", kind)

    jobs = [job("logreg"), job("cnn", "cnn", "audio"), job("ensemble", "stacking"), job("rf")]
    assert [j.model for j in longest_first(jobs, {})] == ["ensemble", "cnn", "logreg", "rf"]
    recorded = {"logreg": 1.0, "rf": 9.0, "ensemble": 5.0}  # cnn unknown: it goes first
    assert [j.model for j in longest_first(jobs, recorded)] == ["cnn", "rf", "ensemble", "logreg"]


@pytest.mark.slow
def test_failure_and_budget_are_runs_not_crashes(tabular_gtzan: Path, tmp_path: Path) -> None:
    models = (
        LOGREG_RF.split('[[models]]\nname = "rf"')[0]
        + """
[[models]]
name = "boom"
[[models]]
name = "sleepy"
params = { seconds = 30 }
"""
    )
    # 10 s: a job that imports torch itself (a forkserver started without the runner's
    # preloads, when another test started it first) takes several seconds before it fits
    suite = write_suite(tmp_path / "faulty.toml", models, folds=2, budget=10)
    assert (
        main(["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--workers", "2"])
        == 1
    )
    finished = job_runs("faulty", "FINISHED")
    failed = job_runs("faulty", "FAILED")
    assert {r.data.tags["bench.model"] for r in finished} == {"logreg"} and len(finished) == 2
    errors = {r.data.tags["bench.model"]: r.data.tags["bench.error"] for r in failed}
    assert len(failed) == 4
    assert errors["boom"] == "RuntimeError: boom: this model always fails"
    assert errors["sleepy"] == "exceeded the time budget of 10 s"
    board = Path("reports/faulty/leaderboard.md").read_text()
    rows = table_rows(board)
    assert ["boom", "default", "fold0", "RuntimeError: boom: this model always fails"] in rows
    assert ["—", "sleepy", "default", "test"] in [row[:4] for row in rows]


@pytest.mark.slow
def test_rerun_skips_finished_and_retries_failed(
    tabular_gtzan: Path, tmp_path: Path, capsys
) -> None:
    models = LOGREG_RF.split('[[models]]\nname = "rf"')[0] + '[[models]]\nname = "boom"\n'
    suite = write_suite(tmp_path / "again.toml", models, folds=2)
    args = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan)]
    main(args)
    main(args)
    out = capsys.readouterr().out
    assert "0 job(s) finished, 2 failed, 2 already done" in out
    assert len(job_runs("again", "FINISHED")) == 2
    assert len(job_runs("again", "FAILED")) == 4


@pytest.mark.slow
def test_kill_9_then_rerun_completes_without_duplicates(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    models = (
        '[[models]]\nname = "sleepy"\nparams = { seconds = 0.6 }\n[[models]]\nname = "logreg"\n'
    )
    suite = write_suite(tmp_path / "killed.toml", models, folds=5)
    code = "import sys, helper_models; from bench.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [
        sys.executable,
        "-c",
        code,
        "run",
        "--suite",
        str(suite),
        "--data-dir",
        str(tabular_gtzan),
    ]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout.readline().startswith("suite killed")  # MLflow's tables exist by now
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(_finished_quietly("killed")) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_finished_quietly("killed"))
    assert 2 <= done_before < 10, "the kill must land mid-suite"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (
        f"{10 - done_before} job(s) finished, 0 failed, {done_before} already done" in result.stdout
    )
    keys = [
        (r.data.tags["bench.model"], r.data.tags["bench.fold"])
        for r in job_runs("killed", "FINISHED")
    ]
    assert sorted(keys) == sorted({(m, f"fold{k}") for m in ("sleepy", "logreg") for k in range(5)})
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name("bench/killed")
    parents = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'parent'")
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]


def _finished_quietly(suite: str) -> list:
    try:
        return job_runs(suite, "FINISHED")
    except Exception:  # the database may not have its tables yet
        return []


@pytest.mark.slow
def test_cnn_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    import torch

    from bench.features.synthetic import synth_gtzan

    data = synth_gtzan(tmp_path / "syn", per_genre=4, duration=9.0, seed=0)
    models = '[[models]]\nname = "cnn"\nparams = { epochs = 40, patience = 40 }\n'
    suite = write_suite(tmp_path / "cnnkill.toml", models, folds=2, budget=300)
    cmd = [
        sys.executable,
        "-u",
        "-m",
        "bench.cli",
        "run",
        "--suite",
        str(suite),
        "--data-dir",
        str(data),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = Path("cache/checkpoints")
    deadline = time.monotonic() + 120
    epoch = 0
    while time.monotonic() < deadline and epoch < 3:
        time.sleep(0.2)
        found = sorted(checkpoints.glob("cnn-fold0-*/last.pt"))
        if found:
            try:
                epoch = torch.load(found[0], weights_only=True)["epoch"]
            except (RuntimeError, EOFError, OSError):
                continue  # caught between write and rename
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)  # the orphaned job notices its owner is gone within 0.5 s
    (last,) = checkpoints.glob("cnn-fold0-*/last.pt")
    epoch = torch.load(last, weights_only=True)["epoch"]
    time.sleep(1.0)
    assert torch.load(last, weights_only=True)["epoch"] == epoch, "the orphan kept training"
    assert 3 <= epoch < 40

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = job_runs("cnnkill", "FINISHED")
    assert sorted(r.data.tags["bench.fold"] for r in runs) == ["fold0", "fold1"]
    fold0 = next(r for r in runs if r.data.tags["bench.fold"] == "fold0")
    assert fold0.data.metrics["resumed_from_epoch"] == epoch
    history = MlflowClient(resolve_uri()).get_metric_history(fold0.info.run_id, "epoch_train_loss")
    assert sorted(m.step for m in history) == list(range(1, 41))
    assert not list(checkpoints.glob("cnn-fold0-*"))  # cleaned once logged
