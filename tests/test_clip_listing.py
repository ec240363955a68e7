"""One listing of clips: `bench features`, the dataset index and `bench predict` skip the same
files for the same reasons, never open what is not a regular file, and read any file name."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.runs import logreg_fold0_run

from bench.cli import main
from bench.data.gtzan import index_audio, load_gtzan
from bench.features.extract import featurise_folder, find_audio

SR = 22050
NON_UTF8 = b"blues.00001.\xff.wav"  # a valid clip whose name is not UTF-8


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _odd_folder(root: Path) -> Path:
    """genres_original/blues with a good clip, a folder named x.wav, a link loop y.wav and a
    good clip whose name is not UTF-8; a rock clip beside it."""
    blues = root / "genres_original" / "blues"
    blues.mkdir(parents=True)
    sf.write(blues / "blues.00000.wav", _tone(2.0, 220), SR)
    (root / "genres_original" / "rock").mkdir()
    sf.write(root / "genres_original" / "rock" / "rock.00000.wav", _tone(2.0, 330), SR)
    (blues / "x.wav").mkdir()
    (blues / "y.wav").symlink_to("y.wav")
    with open(os.path.join(os.fsencode(blues), NON_UTF8), "wb") as f:
        f.write((blues / "blues.00000.wav").read_bytes())
    return blues


def _bench(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``bench ARGV`` in a child process, killed after ``timeout`` s: a hang fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_features_and_dataset_index_report_the_same_skips(tmp_path: Path, capsys) -> None:
    root = tmp_path / "gtzan"
    blues = _odd_folder(root)
    expected = [
        f"{blues / 'x.wav'}: is a folder, not an audio file",
        f"{blues / 'y.wav'}: is a symbolic link loop",
    ]
    audio, skipped = index_audio(root)
    assert skipped == expected
    assert sorted(audio) == ["blues.00000", "blues.00001", "rock.00000"]  # non-UTF-8 name read
    assert audio["blues.00001"] == Path(os.fsdecode(os.path.join(os.fsencode(blues), NON_UTF8)))
    files, listed_skips = find_audio(root)
    assert listed_skips == expected and len(files) == 3
    run = featurise_folder(root, workers=1)
    assert run.skipped == expected
    names = [["blues.00000.wav"], ["blues.00001.\\xff.wav"], ["rock.00000.wav"]]
    assert [clip.names for clip in run.rows] == names
    np.testing.assert_array_equal(run.rows[0].values, run.rows[1].values)  # same audio

    out = root / "features_30_sec.csv"
    assert main(["features", "--data-dir", str(root), "--out", str(out), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "3 row(s) from 3 clip(s)" in captured.out and "2 file(s) skipped" in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("skipped: ")] == [
        f"skipped: {reason}" for reason in expected
    ]
    with out.open(newline="") as f:
        assert [row[0] for row in csv.reader(f)][1:] == [n[0] for n in names]
    dataset = load_gtzan(root)  # what `bench run` indexes: the same skips, both clips
    assert dataset.skipped == expected and sorted(dataset.audio) == sorted(audio)


def test_fifo_is_refused_unopened(tmp_path: Path) -> None:
    """Reading a FIFO would block for ever: bench features lists it as skipped and goes on."""
    root = tmp_path / "gtzan"
    blues = root / "genres_original" / "blues"
    blues.mkdir(parents=True)
    sf.write(blues / "blues.00000.wav", _tone(2.0, 220), SR)
    os.mkfifo(blues / "blues.00002.wav")
    out = tmp_path / "f.csv"
    result = _bench("features", "--data-dir", str(root), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reason = f"{blues / 'blues.00002.wav'}: is a named pipe (FIFO), not an audio file"
    assert f"skipped: {reason}" in result.stderr.splitlines()
    assert "1 row(s) from 1 clip(s)" in result.stdout and "1 file(s) skipped" in result.stdout
    code = (  # in a child too: were the FIFO opened, this would hang, not fail
        "import sys\nfrom pathlib import Path\n"
        "from bench.data.gtzan import index_audio, read_clip\n"
        "print(index_audio(Path(sys.argv[1]))[1][0])\n"
        "try: read_clip(Path(sys.argv[2]))\n"
        "except Exception as exc: print(exc)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(root), str(blues / "blues.00002.wav")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.stdout.splitlines() == [reason, reason], child.stderr


@pytest.mark.slow
def test_predict_on_a_fifo_named_wav_skips_it_instead_of_hanging(
    shared_data: Path, tmp_path: Path
) -> None:
    gtzan = shared_data / "gtzan"
    run = logreg_fold0_run(gtzan)
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    clip = sorted((gtzan / "genres_original").glob("jazz/*.wav"))[0]
    odd = os.path.join(os.fsencode(tmp_path), b"jazz.\xff.wav")  # a non-UTF-8 name, printed too
    os.symlink(os.fsencode(clip), odd)
    argv = ["predict", "--run", run.info.run_id, str(fifo), str(clip), os.fsdecode(odd)]
    result = _bench(*argv, cwd=tmp_path)
    assert result.returncode == 1  # one file could not be predicted
    assert f"{fifo}: is a named pipe (FIFO), not an audio file" in result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{clip}: ")
    assert lines[1] == lines[0].replace(str(clip), f"{tmp_path}/jazz.\\xff.wav")
