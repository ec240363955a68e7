"""MLflow as its users know it: the experiment kind, descriptions, dataset inputs, logged
models that ``mlflow.pyfunc`` loads, the registry (``bench promote``), system metrics, and
crafted models refused by both loading paths."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.data.gtzan import GENRES, load_audio
from bench.errors import BenchError
from bench.predict import model_frame
from bench.tracking import resolve_uri


def _runs(suite: str, kind: str = "job") -> list:
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name(f"bench/{suite}")
    found = client.search_runs([experiment.experiment_id], f"tags.`bench.kind` = '{kind}'")
    return [client.get_run(r.info.run_id) for r in found]  # with inputs and outputs


def _printed(capsys: pytest.CaptureFixture) -> dict[str, dict[str, float]]:
    lines = capsys.readouterr().out.strip().splitlines()
    return {row["path"]: row["proba"] for row in map(json.loads, lines)}


def _pyfunc(uri: str, monkeypatch: pytest.MonkeyPatch):
    """MLflow's own loader, on this test's store (through the environment: a process-wide
    ``mlflow.set_tracking_uri`` would outlive the test)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", resolve_uri())
    return mlflow.pyfunc.load_model(uri)


@pytest.mark.slow
def test_runs_open_as_training_runs_with_datasets_and_models_mlflow_loads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # nothing needs a file store
    assert main(["run", "--suite", "smoke", "--models", "logreg,cnn", "--folds", "2"]) == 0
    assert resolve_uri().startswith("sqlite:///")
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/smoke")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    page = f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    printed = capsys.readouterr().out
    assert f"browse: mlflow ui --backend-store-uri {resolve_uri()}, then open {page}" in printed
    assert "`bench report --suite smoke`" in experiment.tags["mlflow.note.content"]

    (parent,) = _runs("smoke", "parent")
    assert "2 model(s) x 2 fold(s) on synthetic-gtzan" in parent.data.tags["mlflow.note.content"]
    (suite_input,) = parent.inputs.dataset_inputs
    assert [(t.key, t.value) for t in suite_input.tags] == [("mlflow.data.context", "suite")]

    jobs = {(r.data.tags["bench.model"], r.data.tags["bench.fold"]): r for r in _runs("smoke")}
    assert sorted(jobs) == [(m, f) for m in ("cnn", "logreg") for f in ("fold0", "fold1")]
    for (model, fold), run in jobs.items():
        assert run.data.tags["mlflow.note.content"].startswith(f"{model} (")
        assert (
            f"on {fold} of 2-fold stratified: fitted on 100 rows"
            in (run.data.tags["mlflow.note.content"])
        )
        (data,) = run.inputs.dataset_inputs
        assert data.dataset.name == "synthetic-gtzan"
        assert data.dataset.digest == run.data.tags["bench.data_fingerprint"]
        assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "train")]
        columns = [c["name"] for c in json.loads(data.dataset.schema)["mlflow_colspec"]]
        assert len(columns) == 58 and columns[-1] == "label"  # 57 features, then the label
        assert json.loads(data.dataset.profile)["classes"] == list(GENRES)
        assert len(run.outputs.model_outputs) == 1

    cache = Path.cwd() / "cache"
    clips = [str(next(cache.glob(f"synthetic-gtzan-*/genres_original/{g}/*.wav"))) for g in GENRES]
    for model in ("logreg", "cnn"):
        run_id = jobs[(model, "fold0")].info.run_id
        capsys.readouterr()
        assert main(["predict", "--run", run_id, "--json", *clips]) == 0
        printed = _printed(capsys)
        loaded = _pyfunc(f"runs:/{run_id}/model", monkeypatch)
        names = loaded.metadata.get_input_schema().input_names()
        if model == "cnn":
            assert names == ["audio_path"]  # audio models take a path to the clip
            frame = pd.DataFrame({"audio_path": clips})
        else:
            assert len(names) == 57
            card = {"input_kind": "tabular", "feature_columns": names, "model": model}
            frame = pd.concat([model_frame(card, Path(c), load_audio(Path(c))) for c in clips])
        proba = loaded.predict(frame)
        assert sorted(proba.columns) == sorted(GENRES)
        for row, clip in zip(proba.to_dict("records"), clips, strict=True):
            assert set(row) == set(printed[clip])
            for genre, p in row.items():
                assert abs(p - printed[clip][genre]) <= 1e-6, (model, clip, genre)
        if model == "logreg":  # learnable data: one clip per genre, mostly right
            right = sum(Path(c).parent.name == max(printed[c], key=printed[c].get) for c in clips)
            assert right >= 7, right

    champion = jobs[("logreg", "fold0")].info.run_id
    assert main(["promote", champion, "--name", "genre", "--alias", "champion"]) == 0
    assert capsys.readouterr().out.strip() == "registered genre v1 @champion"
    assert main(["predict", "--model", "models:/genre@champion", "--json", *clips]) == 0
    from_registry = _printed(capsys)
    assert main(["predict", "--run", champion, "--json", *clips]) == 0
    assert from_registry == _printed(capsys)
    store = resolve_uri()
    elsewhere = Path.cwd() / "elsewhere"  # no store here: the one named must be used
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # MLflow's default is now ./mlflow.db, here
    argv = ["predict", "--model", "models:/genre@champion", "--tracking-uri", store, "--json"]
    assert main([*argv, *clips]) == 0
    assert _printed(capsys) == from_registry and not (elsewhere / "mlflow.db").exists()
    monkeypatch.chdir(elsewhere.parent)
    version = client.get_model_version_by_alias("genre", "champion")
    assert version.run_id == champion and version.tags["bench.model"] == "logreg"

    assert main(["report", "--suite", "smoke"]) == 0
    board = Path("reports/smoke/leaderboard.md").read_text()
    assert f"`genre v1 @champion` is logreg on fold0 (run `{champion[:8]}`)" in board
    assert f"`{champion[:8]}` (promoted: genre v1 @champion)" in board

    assert main(["promote", parent.info.run_id, "--name", "genre"]) == 2
    assert "is not a (model, fold) job run of bench" in capsys.readouterr().err
    assert main(["promote", champion, "--name", "bench-claim-x"]) == 2
    assert "bench's job claims" in capsys.readouterr().err


def _crafted_skops(folder: Path, marker: Path) -> Path:
    """A logged model's data folder whose model.skops calls ``eval`` when built."""
    from test_trust import _payloads, _skops_file

    data = folder / "data" / "model"
    data.mkdir(parents=True)
    _skops_file(data / "model.skops", _payloads(marker)["builtins.eval"])
    return folder


class _Pickled(mlflow.pyfunc.PythonModel):
    """A python_model whose pickle touches a file when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))

    def predict(self, context, model_input, params=None):  # pragma: no cover
        return model_input


def test_crafted_models_are_refused_by_both_loading_paths(
    tabular_gtzan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--models", "logreg"]
    assert main([*argv, "--folds", "2", "--no-report"]) == 0
    client = MlflowClient(resolve_uri())
    runs = {r.data.tags["bench.fold"]: r for r in _runs("gtzan")}
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")

    # 1. The model's skops file replaced: bench's loader refuses it under either path.
    run_id = runs["fold0"].info.run_id
    model_id = runs["fold0"].outputs.model_outputs[0].model_id
    marker = tmp_path / "skops-payload-ran"
    client.log_model_artifacts(model_id, str(_crafted_skops(tmp_path / "evil", marker)))
    with pytest.raises(BenchError, match="refusing to load untrusted type\\(s\\) builtins.eval"):
        _pyfunc(f"runs:/{run_id}/model", monkeypatch)
    capsys.readouterr()
    assert main(["predict", "--model", f"runs:/{run_id}/model", str(wav)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to load untrusted type(s) builtins.eval" in err[0]
    assert not marker.exists()

    # 2. The MLmodel replaced by a pickled python_model: bench refuses it before reading it.
    run_id = runs["fold1"].info.run_id
    model_id = runs["fold1"].outputs.model_outputs[0].model_id
    marker = tmp_path / "pickle-payload-ran"
    evil = tmp_path / "pickled"
    mlflow.pyfunc.save_model(str(evil), python_model=_Pickled(marker), pip_requirements=[])
    client.log_model_artifacts(model_id, str(evil))
    for ref in (f"runs:/{run_id}/model", run_id):
        assert main(["predict", "--model" if ":" in ref else "--run", ref, str(wav)]) == 2
        err = capsys.readouterr().err.strip()
        assert "refusing a model with files bench does not log (python_model.pkl)" in err
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017  MLflow's own loader unpickles it: a real attack
        _pyfunc(f"runs:/{run_id}/model", monkeypatch)
    assert marker.exists()


@pytest.mark.slow
def test_system_metrics_are_recorded_on_jobs_and_studies(tabular_gtzan: Path) -> None:
    common = ["--suite", "gtzan", "--data-dir", str(tabular_gtzan)]
    assert main(["run", *common, "--models", "rf", "--folds", "2", "--no-report"]) == 0
    assert main(["run", *common, "--models", "logreg", "--folds", "2", "--system-metrics"]) == 0
    for run in _runs("gtzan"):
        system = {k: v for k, v in run.data.metrics.items() if k.startswith("system/")}
        if run.data.tags["bench.model"] == "rf":
            assert system == {}  # only when asked
            continue
        assert system["system/system_memory_usage_megabytes"] > 0
        assert 0 <= system["system/cpu_utilization_percentage"] <= 100
        assert {"system/disk_usage_megabytes", "system/network_receive_megabytes"} <= set(system)

    tune = ["tune", "logreg", *common, "--trials", "2", "--workers", "1", "--system-metrics"]
    assert main(tune) == 0
    (study,) = _runs("gtzan", "study")
    assert study.data.metrics["system/system_memory_usage_megabytes"] > 0
    (data,) = study.inputs.dataset_inputs
    assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "tuning")]
    assert np.isfinite(study.data.metrics["system/cpu_utilization_percentage"])


def test_system_metrics_on_a_cluster_are_refused_before_anything_runs(
    tabular_gtzan: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They would measure the driver, not the workers: refused before connecting or loading."""
    common = ["--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--system-metrics"]
    monkeypatch.setenv("BENCH_CLUSTER", "tcp://127.0.0.1:9")  # nothing listens there
    assert main(["run", *common, "--models", "logreg"]) == 2
    assert main(["tune", "logreg", *common, "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("on a cluster it would measure this machine" in e for e in err)
    assert not Path("mlflow.db").exists()


def test_a_dataset_logged_by_two_commands_at_once_links_on_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow inserts an experiment's dataset row by get-then-insert; the command that loses
    the race sees the unique key fail (as an MLflow server reported it in CI) and must link
    the row the winner wrote. Any other error still stops the run."""
    from mlflow.exceptions import MlflowException, RestException

    from bench.tracking import DataRef, Tracker

    tracker = Tracker("race", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = DataRef("gtzan", "49ddbd60d3a30502", str(tmp_path), ("f0",), ("blues", "rock"), 4, 4)
    run = tracker.client.create_run(tracker.experiment_id).info.run_id
    real = tracker.client.log_inputs
    calls: list[int] = []

    def loses_the_race_once(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            real(tracker.client.create_run(tracker.experiment_id).info.run_id, *args[1:], **kwargs)
            raise RestException(
                {
                    "error_code": "BAD_REQUEST",
                    "message": "(sqlite3.IntegrityError) UNIQUE constraint failed: "
                    "datasets.experiment_id, datasets.name, datasets.digest",
                }
            )
        real(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_inputs", loses_the_race_once)
    tracker.log_dataset(run, data, "suite")
    assert len(calls) == 2
    [linked] = tracker.client.get_run(run).inputs.dataset_inputs
    assert (linked.dataset.name, linked.dataset.digest) == ("gtzan", "49ddbd60d3a30502")

    def fails(*args: object, **kwargs: object) -> None:
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: no such run")

    monkeypatch.setattr(tracker.client, "log_inputs", fails)
    with pytest.raises(MlflowException, match="no such run"):
        tracker.log_dataset(run, data, "suite")


@pytest.mark.slow
def test_a_model_carrying_code_is_refused_by_promote_and_predict(
    tabular_gtzan: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The attack: a finished job's logged model gains ``code/bench/served.py`` (a side effect
    at import) and ``flavors.python_function.code: code``; ``mlflow.pyfunc.load_model`` would
    put it first on ``sys.path`` and import it. bench promotes and predicts only the exact
    file set it logs."""
    import yaml

    argv = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--models", "logreg"]
    assert main([*argv, "--folds", "2", "--no-report"]) == 0
    client = MlflowClient(resolve_uri())
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    marker = tmp_path / "planted-code-ran"
    for run, with_files in zip(_runs("gtzan"), (True, False), strict=True):
        run_id, model_id = run.info.run_id, run.outputs.model_outputs[0].model_id
        model = Path(mlflow.artifacts.download_artifacts(
            client.get_logged_model(model_id).artifact_location, dst_path=str(tmp_path / run_id),
            tracking_uri=resolve_uri(),
        ))  # fmt: skip
        mlmodel = yaml.safe_load((model / "MLmodel").read_text())
        mlmodel["flavors"]["python_function"]["code"] = "code"
        (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))
        if with_files:
            (model / "code" / "bench").mkdir(parents=True)
            (model / "code" / "bench" / "__init__.py").write_text("")
            (model / "code" / "bench" / "served.py").write_text(
                f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
            )
        client.log_model_artifacts(model_id, str(model))
        capsys.readouterr()

        assert main(["promote", run_id, "--name", "genre", "--alias", "champion"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        expected = "code/bench/__init__.py" if with_files else "refusing a model with code ('code')"
        assert len(err) == 1 and expected in err[0], err
        assert main(["predict", "--model", f"runs:/{run_id}/model", str(wav)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert client.search_registered_models("name = 'genre'") == []
    assert not marker.exists()
