"""The GTZAN index reads every format `bench features` reads, whatever the CSV's extension says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.data.gtzan import AUDIO_DIR, FEATURES_CSV, load_gtzan, read_clip
from bench.errors import BenchError
from bench.evaluate import model_inputs
from bench.features.extract import audio_files

SR = 22050
# One clip per supported suffix, each in its own genre: (genre folder, file name).
CLIPS = {
    "blues.00000": ("blues", "blues.00000.flac"),
    "classical.00000": ("classical", "classical.00000.ogg"),
    "country.00000": ("country", "country.00000.aiff"),
    "disco.00000": ("disco", "disco.00000.aif"),
    "hiphop.00000": ("hiphop", "hiphop.00000.wav"),
    "jazz.00000": ("jazz", "jazz.00000.au"),
    "pop.00000": ("pop", "pop.00000.FLAC"),
}


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


def write_csv(root: Path, tracks: list[str]) -> None:
    """A features CSV naming every track ``<track>.wav``, as Kaggle's table does."""
    pd.DataFrame(
        {
            "filename": [f"{t}.wav" for t in tracks],
            "length": 661794,
            "f1": np.arange(len(tracks), dtype=float),
            "label": [t.split(".")[0] for t in tracks],
        }
    ).to_csv(root / FEATURES_CSV, index=False)


def write_clip(root: Path, genre: str, name: str, samples: np.ndarray) -> Path:
    path = root / AUDIO_DIR / genre / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # soundfile infers the format from the suffix, but does not know ".aif"
    sf.write(path, samples, SR, format="AIFF" if path.suffix == ".aif" else None)
    return path


def test_index_finds_every_supported_format_by_its_track(tmp_path: Path) -> None:
    expected = {
        track: write_clip(tmp_path, genre, name, tone(220 + 50 * k))
        for k, (track, (genre, name)) in enumerate(CLIPS.items())
    }
    mp3 = tmp_path / AUDIO_DIR / "metal" / "metal.00000.mp3"
    mp3.parent.mkdir()
    mp3.write_bytes(b"ID3 not decodable here")
    write_csv(tmp_path, [*CLIPS, "metal.00000", "rock.00000"])

    ds = load_gtzan(tmp_path)

    assert ds.audio == expected
    assert ds.skipped == []
    rows = dict(zip(ds.features.index, model_inputs(ds, "audio"), strict=True))
    assert rows == {
        **{f"{track}.wav": str(path) for track, path in expected.items()},
        "metal.00000.wav": "",
        "rock.00000.wav": "",
    }
    labels = {ds.tracks[i]: ds.classes[code] for i, code in enumerate(ds.labels)}
    assert {t: labels[t] for t in expected} == {t: genre for t, (genre, _) in CLIPS.items()}
    assert sorted(path for path, _ in audio_files(tmp_path)) == sorted(expected.values())


@pytest.mark.parametrize("other", ["blues.00000.ogg", "blues.00000.wav", "blues_00000.aiff"])
def test_two_files_of_one_clip_are_an_error_naming_both(tmp_path: Path, other: str) -> None:
    flac = write_clip(tmp_path, "blues", "blues.00000.flac", tone(220))
    twin = write_clip(tmp_path, "blues", other, tone(330))
    write_clip(tmp_path, "rock", "rock.00000.wav", tone(440))
    write_csv(tmp_path, ["blues.00000", "rock.00000"])

    with pytest.raises(BenchError) as caught:
        load_gtzan(tmp_path)
    assert str(flac) in str(caught.value) and str(twin) in str(caught.value)


def test_bench_features_refuses_two_files_of_one_clip(tmp_path: Path) -> None:
    wav = write_clip(tmp_path, "blues", "blues.00000.wav", tone(220))
    flac = write_clip(tmp_path, "blues", "blues.00000.flac", tone(220))

    with pytest.raises(BenchError) as caught:
        audio_files(tmp_path)
    assert str(wav) in str(caught.value) and str(flac) in str(caught.value)


def test_real_clips_reencoded_decode_as_their_wav(shared_data: Path, tmp_path: Path) -> None:
    """FLAC and AIFF (16-bit) are lossless; Vorbis is close. The real CSV rows still match."""
    source = shared_data / "gtzan"
    encodings = {"blues.00013": ".flac", "classical.00013": ".ogg", "country.00019": ".aiff"}
    originals = {}
    for track, suffix in encodings.items():
        genre = track.split(".")[0]
        wav = source / AUDIO_DIR / genre / f"{track}.wav"
        samples, sr = sf.read(wav, dtype="int16", frames=5 * SR)
        assert sr == SR
        write_clip(tmp_path, genre, f"{track}{suffix}", samples)
        originals[track] = samples.astype(np.float32) / 32768
    table = pd.read_csv(source / FEATURES_CSV)
    table[table["filename"].str[:-4].isin(encodings)].to_csv(tmp_path / FEATURES_CSV, index=False)

    ds = load_gtzan(tmp_path)

    assert {t: p.suffix for t, p in ds.audio.items()} == encodings
    assert sorted(ds.features.index) == sorted(f"{t}.wav" for t in encodings)
    assert [ds.classes[code] for code in ds.labels] == [t.split(".")[0] for t in ds.tracks]
    for track, reference in originals.items():
        wave, notes = read_clip(ds.audio[track])
        assert notes == [] and wave.shape == reference.shape
        if encodings[track] == ".ogg":
            noise = np.sum((wave - reference) ** 2)
            assert 10 * np.log10(np.sum(reference**2) / noise) > 20
        else:
            np.testing.assert_array_equal(wave, reference)
