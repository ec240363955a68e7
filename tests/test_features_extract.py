"""bench features: the Kaggle CSV layout, 3 s segments, bad input, the cache, fidelity, perf."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.cli import main
from bench.features.cache import FeatureCache
from bench.features.extract import (
    TableParams,
    audio_files,
    featurise_folder,
    read_clip,
    segment_samples,
)
from bench.features.handcrafted import FEATURE_COLUMNS, gtzan_features

SR = 22050
SEGMENT = 66149  # rows of Kaggle's features_3_sec.csv have length 66149


def tone(seconds: float, hz: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    beat = (np.sin(2 * np.pi * 2.0 * t) > 0.95) * rng.standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * beat).astype(np.float32)


def write_clip(root: Path, name: str, wave: np.ndarray, sr: int = SR, **kwargs) -> Path:
    genre = name.split(".")[0]
    path = root / "genres_original" / genre / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr, **kwargs)
    return path


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_segment_length_is_kaggles():
    assert segment_samples(3.0) == SEGMENT


def test_cli_writes_the_kaggle_layout_in_3_s_segments(tmp_path):
    root = tmp_path / "gtzan"
    write_clip(root, "blues.00000.wav", tone(10.0, 220))  # 3 segments + a remainder
    write_clip(root, "rock.00007.wav", tone(6.2, 440, seed=1))  # 2 segments
    out = tmp_path / "f3.csv"
    assert main(["features", "--data-dir", str(root), "--segment", "3", "--out", str(out)]) == 0
    header, rows = read_csv(out)
    assert header == ["filename", "length", *FEATURE_COLUMNS, "label"]
    assert [r[0] for r in rows] == [
        "blues.00000.0.wav",
        "blues.00000.1.wav",
        "blues.00000.2.wav",
        "rock.00007.0.wav",
        "rock.00007.1.wav",
    ]
    assert {r[1] for r in rows} == {str(SEGMENT)}
    assert [r[-1] for r in rows] == ["blues"] * 3 + ["rock"] * 2
    # each row is exactly the features of its slice of the (16-bit) audio
    wave = sf.read(root / "genres_original/blues/blues.00000.wav", dtype="float32")[0]
    expected = gtzan_features([wave[k * SEGMENT : (k + 1) * SEGMENT] for k in range(3)])
    got = np.array([[float(v) for v in r[2:-1]] for r in rows[:3]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_whole_clips_match_direct_computation_in_threads_and_processes(tmp_path):
    root = tmp_path / "gtzan"
    for i in range(3):
        write_clip(root, f"jazz.0000{i}.wav", tone(2.0 + i, 300 + 100 * i, seed=i))
    waves = [sf.read(p, dtype="float32")[0] for p, _ in audio_files(root)]
    expected = gtzan_features(waves)
    for workers, parallel in ((1, "auto"), (2, "threads"), (2, "processes")):
        run = featurise_folder(root, workers=workers, parallel=parallel)
        assert [r.names for r in run.rows] == [[f"jazz.0000{i}.wav"] for i in range(3)]
        assert [r.length for r in run.rows] == [len(w) for w in waves]
        np.testing.assert_array_equal(np.concatenate([r.values for r in run.rows]), expected)


def test_device_batches_equal_worker_threads(tmp_path):
    """The GPU path (threads only read, one big batch per device call), run on the CPU."""
    from bench.features.extract import featurise_files

    root = tmp_path / "gtzan"
    for i in range(4):
        write_clip(root, f"disco.0000{i}.wav", tone(3.5 + i, 250 + 60 * i, seed=i))
    corrupt = root / "genres_original" / "disco" / "disco.00009.wav"
    corrupt.write_bytes(b"not audio")
    files = [*audio_files(root), (corrupt, "disco")]  # the listing skips it; read it anyway
    threads = list(featurise_files(files, 3.0, workers=2))
    batched = list(featurise_files(files, 3.0, workers=2, batched=True))
    assert [type(b) for b in batched] == [type(t) for t in threads]
    assert isinstance(batched[-1], str) and "disco.00009.wav" in batched[-1]
    for t, b in zip(threads[:-1], batched[:-1], strict=True):
        assert t.names == b.names
        np.testing.assert_allclose(b.values, t.values, rtol=1e-5, atol=1e-9)


def test_bad_input_is_fixed_or_skipped_never_nan(tmp_path, caplog):
    root = tmp_path / "gtzan"
    write_clip(root, "blues.00000.wav", np.zeros(4 * SR, np.float32))  # silent
    write_clip(root, "blues.00001.wav", tone(1.0, 220))  # shorter than one segment
    dirty = tone(4.0, 330)
    dirty[::500] = np.nan
    dirty[7] = np.inf
    dirty[8] = -np.inf
    write_clip(root, "blues.00002.wav", dirty, subtype="FLOAT")
    stereo = np.stack([tone(4.0, 440, sr=44100), tone(4.0, 550, sr=44100, seed=3)], axis=1)
    write_clip(root, "blues.00003.wav", stereo, sr=44100)
    corrupt = root / "genres_original" / "blues" / "blues.00004.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    out = tmp_path / "f.csv"
    with caplog.at_level(logging.WARNING):
        code = main(["features", "--data-dir", str(root), "--segment", "3", "--out", str(out)])
    assert code == 0
    _, rows = read_csv(out)
    names = [r[0] for r in rows]
    assert names == [
        "blues.00000.0.wav",
        "blues.00001.0.wav",  # zero-padded to one segment
        "blues.00002.0.wav",
        "blues.00003.0.wav",  # 44.1 kHz stereo: resampled, mixed down
    ]
    values = np.array([[float(v) for v in r[2:-1]] for r in rows])
    assert np.isfinite(values).all()
    assert values[0, FEATURE_COLUMNS.index("tempo")] == 0.0  # silence has no beat
    run = featurise_folder(root, segment=3.0)
    assert len(run.skipped) == 1 and "blues.00004.wav" in run.skipped[0]
    fixes = "\n".join(run.fixed)
    assert "blues.00001.wav: 1.00 s, shorter than one 3 s segment: zero-padded" in fixes
    assert f"blues.00002.wav: {(~np.isfinite(dirty)).sum()} non-finite sample(s) replaced" in fixes
    assert "blues.00003.wav: 2 channels mixed to mono" in fixes
    assert "blues.00003.wav: resampled from 44100 Hz to 22050 Hz" in fixes
    assert "blues.00004.wav" in caplog.text
    # the cleaned clip gives the features of its finite version
    written = sf.read(root / "genres_original/blues/blues.00002.wav", dtype="float32")[0]
    cleaned = np.nan_to_num(written, nan=0.0, posinf=0.0, neginf=0.0)
    np.testing.assert_allclose(values[2], gtzan_features([cleaned[:SEGMENT]])[0], rtol=1e-6)


def test_read_clip_resamples_to_22050(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(2.0, 440, sr=44100), 44100)
    wave, notes = read_clip(path)
    assert len(wave) == 2 * SR and notes == ["resampled from 44100 Hz to 22050 Hz"]


def test_cli_without_out_or_audio_is_a_one_line_error(tmp_path, capsys):
    assert main(["features", "--data-dir", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["features", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_cache_holds_feature_rows_computed_once(tmp_path, monkeypatch):
    root = tmp_path / "gtzan"
    paths = [
        write_clip(root, f"pop.0000{i}.wav", tone(6.5, 200 + 50 * i, seed=i)) for i in range(3)
    ]
    params = TableParams(segment=3.0)
    cache = FeatureCache(tmp_path / "features")
    first = cache.get(paths, params)
    assert [v.shape for v in first] == [(2, 57)] * 3
    run = featurise_folder(root, segment=3.0)
    for got, clip in zip(first, run.rows, strict=True):
        np.testing.assert_array_equal(got, clip.values)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached clip")

    monkeypatch.setattr(TableParams, "compute", fail)
    again = FeatureCache(tmp_path / "features").get(paths[::-1], params)
    np.testing.assert_array_equal(again[0], first[2])
    assert TableParams(segment=3).key() == params.key() != TableParams().key()


@pytest.fixture
def five_real_clips(shared_data: Path, tmp_path: Path) -> Path:
    """A GTZAN folder with five of the real clips and the real features table."""
    gtzan = shared_data / "gtzan"
    root = tmp_path / "real"
    for path in sorted((gtzan / "genres_original").glob("*/*.wav"))[::4]:
        target = root / "genres_original" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
    shutil.copy(gtzan / "features_30_sec.csv", root / "features_30_sec.csv")
    return root


def test_fidelity_report_on_real_clips(five_real_clips: Path, tmp_path: Path):
    out = tmp_path / "reports" / "features_fidelity.md"
    from bench.features.fidelity import write_fidelity_report

    written, result = write_fidelity_report(five_real_clips, out, with_librosa=False)
    assert written == out and len(result.files) == 5
    table = result.table()
    assert (table["bench r"] >= 0.95).all(), table["bench r"].idxmin()
    strict = [c for c in FEATURE_COLUMNS if c not in ("harmony_mean", "perceptr_mean")]
    assert (table.loc[strict, "bench rel err"] < 1e-4).all()
    text = out.read_text()
    assert "**met** (52 of 52 columns" in text
    assert sum(line.startswith("| mfcc") for line in text.splitlines()) == 40


def test_perf_report_ratios():
    from bench.perf import PerfResult, Timing, render

    result = PerfResult(Path("d"), clips=20, audio_seconds=600, device="cpu", workers=2, repeats=3)
    result.timings = {
        "io": Timing("io", [0.02, 0.03, 0.04]),
        "bench": Timing("bench", [1.0, 1.1, 0.9]),
        "bench_threads": Timing("bench threads", [1.2, 1.25, 1.3]),
        "bench_1": Timing("bench one", [1.8, 1.9, 2.0]),
        "librosa": Timing("librosa", [25.0, 24.0, 26.0]),
    }
    result.startup = {
        "bench --help": Timing("bench --help", [0.2, 0.25, 0.3]),
        "python -c pass": Timing("python -c pass", [0.02, 0.02, 0.02]),
    }
    text = render(result)
    assert "**bench vs librosa clip by clip: 25.0x**" in text
    assert "bench on one core vs librosa (one process" in text and ": 13.2x." in text
    assert "with 2 threads instead of processes: 20.0x" in text
    assert "2 workers vs 1: 1.90x (processes), 1.52x (threads)." in text
    assert "reading the WAVs is 3.0% of bench's" in text
    assert "`bench --help`: median 250 ms over 3 fresh processes" in text
