"""Data problems are one-line errors before any job; audio is read one way everywhere; a run
leaves no scratch behind."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.cli import main


def _one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("bench: error: ")
    return err[0]


def _run(root: Path, *extra: str) -> int:
    argv = ["run", "--suite", "gtzan", "--data-dir", str(root), "--folds", "2", *extra]
    return main([*argv, "--no-report"])


def test_a_duplicated_filename_is_named(tabular_gtzan: Path, capsys, tmp_path: Path) -> None:
    csv = tabular_gtzan / "features_30_sec.csv"
    table = pd.read_csv(csv)
    pd.concat([table, table.iloc[[3]]]).to_csv(csv, index=False)
    assert _run(tabular_gtzan, "--models", "logreg") == 2
    assert _one_line_error(capsys) == (
        f"bench: error: {csv}: 1 filename(s) listed more than once: blues.00003.wav"
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_a_track_under_two_names_is_named(tabular_gtzan: Path, capsys) -> None:
    csv = tabular_gtzan / "features_30_sec.csv"
    table = pd.read_csv(csv)
    twin = table.iloc[[5]].assign(filename="blues_00005.wav")
    pd.concat([table, twin]).to_csv(csv, index=False)
    assert _run(tabular_gtzan, "--models", "logreg") == 2
    line = _one_line_error(capsys)
    assert line.endswith("1 track(s) listed more than once under different file names: blues.00005")


def test_segment_rows_may_share_their_track(tabular_gtzan: Path) -> None:
    from bench.data.gtzan import load_gtzan

    csv = tabular_gtzan / "features_30_sec.csv"
    table = pd.read_csv(csv)
    segments = pd.concat(
        [table.assign(filename=table.filename.str.replace(".wav", f".{k}.wav")) for k in range(3)]
    )
    segments.to_csv(tabular_gtzan / "features_3_sec.csv", index=False)
    dataset = load_gtzan(tabular_gtzan, "features_3_sec.csv")
    assert len(dataset) == 3 * len(table) and dataset.n_tracks == len(table)


def test_one_class_is_an_error_before_any_job(tabular_gtzan: Path, capsys, tmp_path) -> None:
    csv = tabular_gtzan / "features_30_sec.csv"
    pd.read_csv(csv).assign(label="rock").to_csv(csv, index=False)
    assert _run(tabular_gtzan, "--models", "logreg,rf") == 2
    line = _one_line_error(capsys)
    assert line == (
        f"bench: error: {tabular_gtzan}: gtzan has 1 class (rock) in 120 row(s); "
        "classification needs at least 2"
    )
    assert not (tmp_path / "mlflow.db").exists()


def _clip(path: Path, genre_tone: float, seconds: float = 2.0, sr: int = 22050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * genre_tone * t) + 0.01 * np.random.default_rng(0).normal(
        size=t.size
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr, subtype="FLOAT")
    return path


def test_audio_models_read_repaired_samples_like_bench_features(tmp_path: Path) -> None:
    """A clip with NaN samples (and a stereo one at another rate) trains cnn_ref."""
    from bench.data.gtzan import load_audio, read_clip
    from bench.registry import create

    paths = [_clip(tmp_path / f"{name}.wav", tone) for name, tone in (("a", 220), ("b", 880))]
    broken = _clip(tmp_path / "nan.wav", 220)
    samples, sr = sf.read(broken, dtype="float32")
    samples[1000:3000] = np.nan
    samples[5000] = np.inf
    sf.write(broken, samples, sr, subtype="FLOAT")
    stereo = tmp_path / "stereo.wav"
    mono, _ = sf.read(_clip(tmp_path / "m.wav", 880, sr=44100), dtype="float32")
    sf.write(stereo, np.stack([mono, mono], axis=1), 44100, subtype="FLOAT")

    wave, notes = read_clip(broken)
    assert np.isfinite(wave).all()
    assert notes == ["2001 non-finite sample(s) replaced by 0"]
    _, notes = read_clip(stereo)
    assert notes == ["2 channels mixed to mono", "resampled from 44100 Hz to 22050 Hz"]
    np.testing.assert_array_equal(load_audio(broken), wave)

    X = np.array([str(p) for p in [*paths, broken, stereo]], dtype=object)
    y = np.array([0, 1, 0, 1])
    model = create("cnn_ref", epochs=2, device="cpu", cache_dir=str(tmp_path / "cache"))
    proba = model.fit(X, y).predict_proba(X)
    assert proba.shape == (4, 2) and np.isfinite(proba).all()


def test_predict_skips_a_truncated_clip_with_a_warning(
    shared_data: Path, tmp_path: Path, capsys, caplog
) -> None:
    from mlflow.tracking import MlflowClient

    from bench.tracking import resolve_uri

    gtzan = shared_data / "gtzan"
    assert _run(gtzan, "--models", "logreg") == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    run = client.search_runs([experiment.experiment_id], "tags.`bench.fold` = 'fold0'")[0]
    good = sorted((gtzan / "genres_original" / "blues").glob("*.wav"))[0]
    cut = tmp_path / "blues.cut.wav"
    cut.write_bytes(good.read_bytes()[:200_000])
    capsys.readouterr()
    assert main(["predict", "--run", run.info.run_id, str(good), str(cut)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: ")
    assert str(cut) not in captured.out
    assert f"skipping {cut}: truncated (header declares" in caplog.text


def test_predict_in_an_empty_folder_creates_no_store(tmp_path: Path, capsys) -> None:
    assert main(["predict", "--run", "0" * 32, "x.wav"]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"bench: error: no MLflow store at {tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_run_leaves_no_scratch_and_clears_a_killed_runs(tabular_gtzan: Path) -> None:
    scratch = Path(os.environ["BENCH_CACHE"]) / "scratch"
    host = socket.gethostname()
    dead = scratch / f"{host}-{2**22 + 12345}-abc"  # above any pid this host hands out
    alive = scratch / f"{host}-{os.getpid()}-def"  # a run still going (this process)
    for folder in (dead, alive):
        (folder / "job").mkdir(parents=True)
        (folder / "job" / "model.skops").write_bytes(b"x" * 1000)
    assert _run(tabular_gtzan, "--models", "logreg") == 0
    assert not dead.exists()
    assert alive.exists()
    assert sorted(p.name for p in scratch.iterdir()) == [alive.name]
    shutil.rmtree(alive)


@pytest.mark.slow
def test_checkpoints_of_a_logged_job_are_removed_on_the_next_run(tabular_gtzan: Path) -> None:
    """The rule: checkpoints stay while their job is unfinished (a re-run resumes from them)
    and go once it is logged FINISHED, even if the run was killed in between."""
    from mlflow.tracking import MlflowClient

    from bench.tracking import resolve_uri

    argv = ["--models", "mlp"]
    assert _run(tabular_gtzan, *argv) == 0
    checkpoints = Path(os.environ["BENCH_CACHE"]) / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    run = client.search_runs([experiment.experiment_id], "tags.`bench.fold` = 'fold0'")[0]
    leftover = checkpoints / f"mlp-fold0-{run.data.tags['bench.config_hash']}"
    leftover.mkdir(parents=True)
    (leftover / "last.pt").write_bytes(b"x")
    unrelated = checkpoints / "mlp-fold0-000000000000"  # an unfinished job: kept to resume
    unrelated.mkdir()
    assert _run(tabular_gtzan, *argv) == 0
    assert not leftover.exists()
    assert unrelated.exists()
