"""GTZAN indexing, audio reading and bad-input handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.data.gtzan import (
    load_audio,
    load_gtzan,
    read_features_csv,
    segment,
    track_id,
    wav_problem,
)
from bench.errors import DataError


@pytest.mark.parametrize(
    "name",
    [
        "blues.00012.wav",
        "blues/blues.00012.wav",
        "./blues_00012.wav",
        "blues.00012.3.wav",
        "x/genres_original/blues/blues.00012.au",
    ],
)
def test_track_id_normalises_every_spelling(name: str) -> None:
    assert track_id(name) == "blues.00012"


def test_track_id_rejects_foreign_names() -> None:
    with pytest.raises(DataError, match="not a GTZAN track name"):
        track_id("song.mp3")


def test_real_gtzan_index(shared_data: Path) -> None:
    ds = load_gtzan(shared_data / "gtzan")
    assert len(ds) == 1000 and ds.n_tracks == 1000
    assert ds.features.shape == (1000, 57)
    assert ds.classes[0] == "blues" and len(ds.classes) == 10
    assert np.bincount(ds.labels).tolist() == [100] * 10
    assert sorted(ds.audio) == sorted(
        p.name[:-4] for p in (shared_data / "gtzan" / "genres_original").glob("*/*.wav")
    )
    assert len(ds.audio) == 20 and ds.skipped == []


def test_real_clip_reads_at_22050(shared_data: Path) -> None:
    wave = load_audio(shared_data / "gtzan" / "genres_original" / "jazz" / "jazz.00054.wav")
    assert wave.dtype == np.float32 and abs(len(wave) - 30 * 22050) < 22050


def test_stereo_44k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, left], axis=1), 44100, subtype="PCM_16")
    wave = load_audio(tmp_path / "s.wav")
    assert len(wave) == 22050
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 22050 / len(wave) - 440) < 2


def test_truncated_wav_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    sf.write(path, np.zeros(22050, dtype=np.float32), 22050, subtype="PCM_16")
    assert wav_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in wav_problem(path)
    path.write_bytes(data[:30])
    assert "unreadable" in wav_problem(path)


def test_corrupt_clip_is_skipped_and_named(tabular_gtzan: Path, caplog) -> None:
    folder = tabular_gtzan / "genres_original" / "blues"
    folder.mkdir(parents=True)
    for i in range(2):
        sf.write(folder / f"blues.{i:05d}.wav", np.zeros(2205, np.float32), 22050, subtype="PCM_16")
    bad = folder / "blues.00001.wav"
    bad.write_bytes(bad.read_bytes()[:1000])
    ds = load_gtzan(tabular_gtzan)
    assert list(ds.audio) == ["blues.00000"]
    assert len(ds.skipped) == 1 and "blues.00001.wav" in ds.skipped[0]
    assert "blues.00001.wav" in caplog.text


def test_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "features_30_sec.csv").write_text("")
    with pytest.raises(DataError, match="features_30_sec.csv: the CSV is empty"):
        read_features_csv(tmp_path / "features_30_sec.csv")


def test_csv_without_label(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("filename,length,a\nblues.00000.wav,1,0.5\n")
    with pytest.raises(DataError, match="f.csv: no 'label' column"):
        read_features_csv(tmp_path / "f.csv")


def test_csv_with_text_feature(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("filename,a,label\nblues.00000.wav,x,blues\n")
    with pytest.raises(DataError, match="non-numeric feature column"):
        read_features_csv(tmp_path / "f.csv")


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_gtzan(tmp_path / "nope")


def test_segment_pads_short_and_cuts_long() -> None:
    assert segment(np.ones(100, np.float32), 10, 3.0).shape == (3, 30)
    short = segment(np.ones(10, np.float32), 10, 3.0)
    assert short.shape == (1, 30) and short.sum() == 10
