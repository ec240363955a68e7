"""GTZAN-shaped synthetic audio, so that tests and smoke runs need no 1.2 GB download.

The ten genres differ the way real ones do, through tempo, drum pattern, harmony, timbre, noise
and dynamics, and every track varies within its genre (key, mode, tempo, progression, mix). Each
track also belongs to a synthetic artist whose tuning, brightness, tempo, mix and recording chain
stay the same across that artist's tracks: as in real GTZAN, a random split lets a model recognise
artists, and the artist-filtered split written under ``splits/`` is the honest, harder one.

Example::

    from pathlib import Path
    from bench.features.synthetic import synth_gtzan  # with bench's Kaggle features
    root = synth_gtzan(Path("/tmp/gtzan"), per_genre=8, duration=5.0)
    # root/genres_original/blues/blues.00000.wav, root/features_30_sec.csv, root/splits/...

Why one module (~560 lines): the generator is one recipe. Genres, artists, tracks and the
splits draw from one seed tree (``[seed, stream, genre, index]``), and the byte-identical
output that tests rely on depends on every part drawing in the same order.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm.auto import tqdm

from bench.data.gtzan import GENRES
from bench.errors import DataError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bump when the generated audio changes, so cached synthetic datasets are rebuilt."""

SPLITS = ("train", "valid", "test")
_SPLIT_SHARES = np.array([0.5, 0.2, 0.3])
_TABLE_SIZE = 4096  # wavetable length; a power of two so phase wraps with a bit mask
_BATCH = 16  # tracks per feature-extraction call: bounds memory for 30 s clips
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# An artist's style lies up to this far from its genre's, towards another genre: with 0.4,
# logistic regression scores ~0.85 on random folds and ~0.55 on the artist-filtered split.
_INFLUENCE = 0.4
# rng stream keys, so that a track never depends on how many tracks come after it
_LAYOUT, _ARTIST, _TRACK = 0, 1, 2


@dataclass(frozen=True)
class _Style:
    """What makes a genre: 16-step patterns are one 4/4 bar ('x' hit, 'o' soft hit, '.' rest)."""

    bpm: tuple[float, float]
    swing: float  # delay of off-beat eighths, as a fraction of a beat (1/3 is a triplet feel)
    kick: str
    snare: str
    hat: str
    hat_decay: float  # seconds: ~0.02 closed hi-hat, ~0.3 ride cymbal
    drums: float  # drum bus gain
    major: float  # probability of a major key
    shape: tuple[int, ...] | None  # fixed chord shape in semitones; None stacks diatonic thirds
    chord_size: int  # notes of a stacked-thirds chord: 3 triad, 4 seventh, 5 ninth
    progressions: tuple[tuple[int, ...], ...]  # scale degrees, one chord each
    chord_beats: int
    comp: str  # chord attacks; every chord change attacks too
    comp_decay: float
    attack: float  # seconds: bowed strings swell, plucks and stabs do not
    bass: str  # 'r' root, 'f' fifth, 'o' octave, 'w' walking scale tone, '.' rest
    bass_decay: float
    melody_steps: int  # sixteenths per melody note
    melody_rest: float  # probability that a melody note is a rest
    vibrato: float  # cents
    alpha: float  # partial amplitude roll-off k**-alpha: lower is brighter
    even: float  # gain of even partials (hollow, clarinet-like when low)
    drive: float  # tanh distortion of the chord bus
    noise: float  # hiss, relative to the music's RMS
    cutoff: float  # recording bandwidth in Hz (old blues records are dull)
    dynamics: float  # depth of slow loudness swells
    level: float  # peak level
    mix: tuple[float, float, float]  # gains of chords, bass, melody


# fmt: off
_STYLES = {
    "blues": _Style(
        bpm=(65, 100), swing=1 / 3, kick="x.....x.x.......", snare="....x.......x...",
        hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, drums=0.6, major=0.75, shape=(0, 4, 7, 10),
        chord_size=4, chord_beats=4, comp="x...x...x...x...", comp_decay=0.4, attack=0.005,
        progressions=((0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), (0, 3, 0, 4)),
        bass="r...f...o...f...", bass_decay=0.3, melody_steps=2, melody_rest=0.4, vibrato=40,
        alpha=1.3, even=0.8, drive=0.8,
        noise=0.03, cutoff=5000, dynamics=0.1, level=0.7, mix=(1.0, 0.8, 0.9),
    ),
    "classical": _Style(
        bpm=(60, 100), swing=0.0, kick="................", snare="................",
        hat="................", hat_decay=0.02, drums=0.0, major=0.55, shape=None,
        chord_size=3, chord_beats=4, comp="x...............", comp_decay=3.0, attack=0.15,
        progressions=((0, 3, 4, 0), (0, 5, 3, 4), (0, 1, 4, 0), (5, 3, 0, 4)),
        bass="r...............", bass_decay=3.0, melody_steps=4, melody_rest=0.1, vibrato=25,
        alpha=2.0, even=1.0, drive=0.0,
        noise=0.004, cutoff=9000, dynamics=0.6, level=0.5, mix=(1.0, 0.6, 1.0),
    ),
    "country": _Style(
        bpm=(95, 130), swing=0.05, kick="x.......x.......", snare="....x.......x...",
        hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, drums=0.6, major=0.9, shape=None,
        chord_size=3, chord_beats=4, comp="x.x.x.x.x.x.x.x.", comp_decay=0.25, attack=0.003,
        progressions=((0, 3, 4, 0), (0, 0, 3, 4), (0, 4, 3, 0)),
        bass="r...f...r...f...", bass_decay=0.25, melody_steps=2, melody_rest=0.3, vibrato=15,
        alpha=0.9, even=0.6, drive=0.05,
        noise=0.006, cutoff=8000, dynamics=0.1, level=0.7, mix=(1.0, 0.8, 0.8),
    ),
    "disco": _Style(
        bpm=(112, 128), swing=0.0, kick="x...x...x...x...", snare="....x.......x...",
        hat="..x...x...x...x.", hat_decay=0.12, drums=0.9, major=0.4, shape=None,
        chord_size=4, chord_beats=4, comp="..x..x....x..x..", comp_decay=0.12, attack=0.003,
        progressions=((0, 3), (0, 5), (1, 4), (0, 6)),
        bass="r.o.r.o.r.o.r.o.", bass_decay=0.12, melody_steps=4, melody_rest=0.3, vibrato=10,
        alpha=1.0, even=0.9, drive=0.0,
        noise=0.003, cutoff=10000, dynamics=0.05, level=0.85, mix=(0.8, 1.1, 0.7),
    ),
    "hiphop": _Style(
        bpm=(80, 100), swing=0.15, kick="x.....x...x.....", snare="....x.......x...",
        hat="xoxoxoxoxoxoxoxo", hat_decay=0.02, drums=1.0, major=0.2, shape=None,
        chord_size=4, chord_beats=8, comp="x...............", comp_decay=1.5, attack=0.01,
        progressions=((0, 5), (0, 3, 5, 4), (0, 0, 5, 5)),
        bass="r.....r...r.....", bass_decay=0.6, melody_steps=8, melody_rest=0.5, vibrato=5,
        alpha=1.7, even=0.9, drive=0.2,
        noise=0.02, cutoff=7000, dynamics=0.05, level=0.9, mix=(0.4, 1.2, 0.3),
    ),
    "jazz": _Style(
        bpm=(110, 190), swing=1 / 3, kick="o...............", snare="......o.......o.",
        hat="x...x.x.x...x.x.", hat_decay=0.3, drums=0.35, major=0.6, shape=None,
        chord_size=5, chord_beats=4, comp="...x......x.....", comp_decay=0.5, attack=0.005,
        progressions=((1, 4, 0, 0), (5, 1, 4, 0), (0, 5, 1, 4)),
        bass="w...w...w...w...", bass_decay=0.35, melody_steps=2, melody_rest=0.25, vibrato=20,
        alpha=1.5, even=0.4, drive=0.0,
        noise=0.006, cutoff=8000, dynamics=0.2, level=0.6, mix=(0.8, 1.0, 1.0),
    ),
    "metal": _Style(
        bpm=(140, 200), swing=0.0, kick="x.x.x.x.x.x.x.x.", snare="....x.......x...",
        hat="x...x...x...x...", hat_decay=0.2, drums=0.9, major=0.1, shape=(0, 7, 12),
        chord_size=3, chord_beats=2, comp="xxxxxxxxxxxxxxxx", comp_decay=0.15, attack=0.002,
        progressions=((0, 5, 6, 0), (0, 0, 6, 5), (0, 1, 0, 6)),
        bass="rrrrrrrrrrrrrrrr", bass_decay=0.12, melody_steps=1, melody_rest=0.5, vibrato=30,
        alpha=0.7, even=0.8, drive=6.0,
        noise=0.04, cutoff=10000, dynamics=0.02, level=0.95, mix=(1.2, 0.7, 0.5),
    ),
    "pop": _Style(
        bpm=(95, 125), swing=0.0, kick="x.....x.x.......", snare="....x.......x...",
        hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, drums=0.7, major=0.8, shape=None,
        chord_size=3, chord_beats=4, comp="x..x..x...x..x..", comp_decay=0.4, attack=0.003,
        progressions=((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 4)),
        bass="r.....r.r...f...", bass_decay=0.3, melody_steps=2, melody_rest=0.15, vibrato=15,
        alpha=1.1, even=0.9, drive=0.1,
        noise=0.004, cutoff=11000, dynamics=0.05, level=0.85, mix=(0.9, 0.9, 1.1),
    ),
    "reggae": _Style(
        bpm=(65, 90), swing=0.15, kick="........x.......", snare="........x.......",
        hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, drums=0.6, major=0.6, shape=None,
        chord_size=3, chord_beats=8, comp="..x...x...x...x.", comp_decay=0.08, attack=0.002,
        progressions=((0, 3), (0, 4, 3, 0), (0, 5, 3, 4)),
        bass="r..f..o...r.f...", bass_decay=0.5, melody_steps=4, melody_rest=0.35, vibrato=10,
        alpha=1.2, even=0.9, drive=0.0,
        noise=0.01, cutoff=7000, dynamics=0.05, level=0.7, mix=(0.7, 1.3, 0.7),
    ),
    "rock": _Style(
        bpm=(105, 150), swing=0.0, kick="x.......x.x.....", snare="....x.......x...",
        hat="x.x.x.x.x.x.x.x.", hat_decay=0.03, drums=0.8, major=0.55, shape=None,
        chord_size=3, chord_beats=4, comp="x.x.x.x.x.x.x.x.", comp_decay=0.35, attack=0.003,
        progressions=((0, 3, 4, 3), (0, 6, 3, 0), (0, 4, 5, 3)),
        bass="r.r.r.r.r.r.r.r.", bass_decay=0.2, melody_steps=2, melody_rest=0.3, vibrato=25,
        alpha=0.9, even=0.8, drive=2.5,
        noise=0.02, cutoff=9000, dynamics=0.05, level=0.9, mix=(1.0, 0.9, 0.8),
    ),
}
# fmt: on


@dataclass(frozen=True)
class _Artist:
    """A consistent, subtle signature shared by all of one artist's tracks."""

    style: _Style  # the genre's style, pulled towards another genre that influenced the artist
    detune: float  # tuning offset in semitones
    tempo: float  # where in the genre's tempo range this artist plays, 0..1
    alpha: float  # brightness offset of every instrument
    partials: np.ndarray  # per-partial gains: the artist's instrument "voice"
    cutoff: float  # factor on the genre's recording bandwidth
    noise: float  # factor on the genre's hiss
    drive: float  # factor on the genre's distortion
    gains: np.ndarray  # factors on the chord, bass, melody and drum buses
    kick_hz: float


class FeatureTable(Protocol):
    """What writes ``features_30_sec.csv``: its feature column names, and a function from a
    ``(clips, samples)`` float tensor, the sample rate and a device to one row per clip.

    Passed in (bench's is :data:`bench.features.synthetic.KAGGLE_FEATURES`) so that data/
    stays a leaf: it reads and writes datasets, and never imports the feature code."""

    columns: Sequence[str]

    def __call__(self, clips: Any, sr: int, device: str) -> Any: ...


def synth_gtzan(
    out: Path,
    per_genre: int = 10,
    seed: int = 0,
    duration: float = 30.0,
    sr: int = 22050,
    artists_per_genre: int = 3,
    progress: bool = False,
    *,
    device: str = "cpu",
    features: FeatureTable,
) -> Path:
    """Write a GTZAN-shaped dataset under ``out`` in the Kaggle layout and return ``out``.

    ``genres_original/<genre>/<genre>.000NN.wav`` (mono, 16-bit PCM), ``features_30_sec.csv``
    (the ``features`` columns, computed from the written audio by ``features`` on ``device``;
    bench's Kaggle features through :func:`bench.features.synthetic.synth_gtzan`), the
    artist-filtered split ``splits/{train,valid,test}_filtered.txt`` (about 50/20/30 of tracks,
    artist-disjoint) and ``splits/artist_groups.txt`` (track and integer artist id). The same
    arguments give byte-identical files.
    """
    out = Path(out)
    _check_args(out, per_genre, seed, duration, sr, artists_per_genre)
    started = time.perf_counter()
    n = int(round(duration * sr))
    layout = [_artist_sizes(seed, g, per_genre, artists_per_genre) for g in range(len(GENRES))]
    rows: list[list] = []
    batch: list[np.ndarray] = []
    with tqdm(
        total=len(GENRES) * per_genre, desc="synth gtzan", unit="track", disable=not progress
    ) as bar:
        for g, genre in enumerate(GENRES):
            folder = out / "genres_original" / genre
            folder.mkdir(parents=True, exist_ok=True)
            artists = [_artist(seed, g, a) for a in range(len(layout[g]))]
            for i, a in enumerate(np.repeat(np.arange(len(layout[g])), layout[g])):
                rng = np.random.default_rng([seed, _TRACK, g, i])
                pcm = _render(artists[a], rng, n, sr)
                sf.write(folder / _name(genre, i), pcm, sr, subtype="PCM_16", format="WAV")
                rows.append([_name(genre, i), n, genre])
                batch.append(pcm.astype(np.float32) / 32768.0)  # what soundfile reads back
                if len(batch) == _BATCH:
                    _add_features(rows, batch, sr, device, features)
                bar.update()
    if batch:
        _add_features(rows, batch, sr, device, features)
    header = ["filename", "length", *features.columns, "label"]
    _write_csv(out / "features_30_sec.csv", header, rows)
    _write_splits(out / "splits", layout, artists_per_genre)
    logger.info(
        "synthesised %d tracks (%d genres x %d, %.1f s, seed %d) in %s in %.1f s",
        len(rows), len(GENRES), per_genre, duration, seed, out, time.perf_counter() - started,
    )  # fmt: skip
    return out


def _check_args(out, per_genre, seed, duration, sr, artists_per_genre) -> None:
    for name, value, ok, need in (
        ("per_genre", per_genre, per_genre >= 1, ">= 1"),
        ("seed", seed, seed >= 0, ">= 0"),
        ("duration", duration, duration >= 1.0, ">= 1 s"),
        ("sr", sr, sr >= 8000, ">= 8000 Hz"),
        ("artists_per_genre", artists_per_genre, artists_per_genre >= 1, ">= 1"),
    ):
        if not ok:
            raise DataError(f"{out}: cannot synthesise GTZAN with {name}={value!r}: need {need}")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")


def _name(genre: str, i: int) -> str:
    return f"{genre}.{i:05d}.wav"


def _add_features(rows, batch, sr, device, features) -> None:
    """Fill the feature columns of the last ``len(batch)`` rows, in place, and empty the batch."""
    import torch

    feats = features(torch.from_numpy(np.stack(batch)), sr, device)
    feats = np.asarray(torch.as_tensor(feats).detach().cpu(), dtype=np.float64)
    if feats.shape[0] != len(batch):
        raise RuntimeError(f"features returned {feats.shape[0]} rows for {len(batch)} clips")
    for row, values in zip(rows[-len(batch) :], feats, strict=True):
        row[2:2] = [float(v) for v in values]
    batch.clear()


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    if any(len(row) != len(header) for row in rows):
        raise RuntimeError(f"{path}: feature count does not match the {len(header)} columns")
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


# ---------------------------------------------------------------- artists and splits


def _artist_sizes(seed: int, g: int, per_genre: int, artists_per_genre: int) -> np.ndarray:
    """Tracks per artist, unequal as in real GTZAN; every artist has at least one track."""
    k = min(artists_per_genre, per_genre)
    rng = np.random.default_rng([seed, _LAYOUT, g])
    return 1 + rng.multinomial(per_genre - k, rng.dirichlet(np.full(k, 2.0)))


def _assign_splits(sizes: np.ndarray) -> np.ndarray:
    """Split index of each artist: largest artists first, each to the split furthest below its
    share, keeping one artist for every split still empty while artists remain."""
    target = _SPLIT_SHARES * sizes.sum()
    have = np.zeros(len(SPLITS))
    count = np.zeros(len(SPLITS), dtype=int)
    split = np.empty(len(sizes), dtype=int)
    order = np.argsort(-sizes, kind="stable")
    for left, a in zip(range(len(sizes), 0, -1), order, strict=True):
        empty = count == 0
        allowed = empty if left <= empty.sum() else np.ones(len(SPLITS), dtype=bool)
        s = int(np.argmax(np.where(allowed, target - have, -np.inf)))
        split[a] = s
        have[s] += sizes[a]
        count[s] += 1
    return split


def _write_splits(folder: Path, layout: list[np.ndarray], artists_per_genre: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    groups = []
    for g, genre in enumerate(GENRES):
        sizes = layout[g]
        split = _assign_splits(sizes)
        for i, a in enumerate(np.repeat(np.arange(len(sizes)), sizes)):
            track = f"{genre}/{_name(genre, i)}"
            lists[SPLITS[split[a]]].append(track)
            groups.append(f"{track}\t{g * artists_per_genre + a}")
    for name, tracks in lists.items():
        (folder / f"{name}_filtered.txt").write_text("".join(t + "\n" for t in tracks))
    (folder / "artist_groups.txt").write_text("".join(line + "\n" for line in groups))


def _artist(seed: int, g: int, a: int) -> _Artist:
    rng = np.random.default_rng([seed, _ARTIST, g, a])
    influence = GENRES[(g + rng.integers(1, len(GENRES))) % len(GENRES)]
    weight = min(rng.uniform(0.0, _INFLUENCE), 0.9)
    return _Artist(
        style=_blend(_STYLES[GENRES[g]], _STYLES[influence], weight, rng),
        detune=rng.normal(0.0, 0.2),
        tempo=rng.uniform(0.0, 1.0),
        alpha=rng.normal(0.0, 0.2),
        partials=rng.lognormal(0.0, 0.35, 32),
        cutoff=rng.lognormal(0.0, 0.25),
        noise=rng.lognormal(0.0, 0.4),
        drive=rng.lognormal(0.0, 0.3),
        gains=rng.lognormal(0.0, 0.25, 4),
        kick_hz=rng.uniform(45.0, 70.0),
    )


_BORROWED = (  # choices an artist takes whole from its influence, or not at all
    ("kick", "snare", "hat", "swing"),
    ("shape", "chord_size", "progressions", "chord_beats"),
    ("comp", "bass", "melody_steps"),
)


def _blend(own: _Style, other: _Style, weight: float, rng: np.random.Generator) -> _Style:
    """Numbers move ``weight`` of the way towards ``other``; each group of choices in
    ``_BORROWED`` is taken from ``other`` with probability ``weight``."""
    changes = {}
    for group in _BORROWED:
        if rng.random() < weight:
            changes.update({name: getattr(other, name) for name in group})
    for f in fields(_Style):
        if any(f.name in group for group in _BORROWED):
            continue
        a, b = np.asarray(getattr(own, f.name)), np.asarray(getattr(other, f.name))
        mixed = (1 - weight) * a + weight * b
        changes[f.name] = tuple(mixed.tolist()) if mixed.ndim else float(mixed)
    return replace(own, **changes)


# ---------------------------------------------------------------- synthesis


def _render(artist: _Artist, rng: np.random.Generator, n: int, sr: int):
    """One track as int16 PCM: drums + chords + bass + melody + hiss through a recording chain."""
    style = artist.style
    lo, hi = style.bpm
    bpm = lo + (hi - lo) * np.clip(artist.tempo + rng.normal(0.0, 0.12), 0, 1)
    grid = _grid(rng, n, sr, 60.0 / bpm, style.swing)
    step = grid["step"]
    mode = _MAJOR if rng.random() < style.major else _MINOR
    scale = (mode + 12 * np.arange(4)[:, None]).ravel()  # four octaves, indexed by degree
    key = 48 + int(rng.integers(12)) + artist.detune
    progression = style.progressions[rng.integers(len(style.progressions))]
    per_chord = style.chord_beats * 4
    degree = np.asarray(progression)[(step // per_chord) % len(progression)]
    alpha = style.alpha + artist.alpha + rng.normal(0.0, 0.15)
    gains = np.array([*style.mix, style.drums]) * artist.gains
    gains *= rng.lognormal(0.0, 0.2, 4)

    t = np.arange(n) / sr
    buses = [
        _chords(style, artist, rng, grid, scale, key, degree, alpha, sr),
        _bass(style, artist, rng, grid, scale, key, degree, alpha, sr),
        _melody(style, artist, rng, grid, scale, key, alpha, t, sr),
        _drums(style, artist, rng, grid, n, sr),
    ]
    music = sum(g * _unit_rms(b) for g, b in zip(gains, buses, strict=True))
    music *= 1.0 + style.dynamics * np.sin(2 * np.pi * t / rng.uniform(6, 15) + rng.uniform(0, 6.3))
    hiss = signal.lfilter([1.0], [1.0, -rng.uniform(0.0, 0.9)], rng.standard_normal(n))
    music += style.noise * artist.noise * _rms(music) * _unit_rms(hiss)
    cutoff = min(style.cutoff * artist.cutoff * rng.lognormal(0.0, 0.1), 0.45 * sr)
    music = signal.sosfilt(signal.butter(2, cutoff, fs=sr, output="sos"), music)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * sr))
    peak = np.abs(music).max() or 1.0
    music *= fade * style.level * rng.uniform(0.8, 1.0) / peak
    return np.clip(np.round(music * 32767), -32768, 32767).astype(np.int16)


def _grid(rng: np.random.Generator, n: int, sr: int, beat: float, swing: float) -> dict:
    """Sixteenth-note grid (global step index, onset sample), swung, humanised and starting at
    a random point of the bar, since a clip is an excerpt."""
    sixteenth = beat / 4
    start = int(rng.integers(16))
    step = np.arange(start, start + int(np.ceil(n / sr / sixteenth)) + 1)
    shift = np.select([step % 4 == 2, step % 2 == 1], [swing / 2, swing / 4], 0.0) * beat
    seconds = (step - start) * sixteenth + shift + rng.normal(0.0, 0.003, len(step))
    onset = np.clip(np.round(seconds * sr).astype(np.int64), 0, n - 1)
    onset[0] = 0
    onset = np.maximum.accumulate(onset)
    keep = np.r_[True, np.diff(onset) > 0]
    return {"step": step[keep], "onset": onset[keep], "n": n, "beat": beat}


def _pattern(pattern: str, step: np.ndarray) -> np.ndarray:
    values = np.array([{"x": 1.0, "o": 0.5}.get(c, 0.0) for c in pattern])
    return values[step % len(pattern)]


def _envelope(grid: dict, hits: np.ndarray, velocity: np.ndarray, attack, decay, sr) -> tuple:
    """Per-sample envelope of notes starting at grid steps ``hits`` (which must include step 0,
    silent when its velocity is 0), and per sample the index into ``hits`` of the note sounding."""
    onset = grid["onset"][hits]
    note = np.repeat(np.arange(len(hits)), np.diff(np.append(onset, grid["n"])))
    since = (np.arange(grid["n"]) - onset[note]) / sr
    env = (1.0 - np.exp(-since / attack)) * np.exp(-since / decay) * velocity[hits][note]
    return env, note


def _hits(velocity: np.ndarray) -> np.ndarray:
    """Grid steps that start a note, always with step 0 so that every sample has a note."""
    return np.flatnonzero((velocity > 0) | (np.arange(len(velocity)) == 0))


def _chords(style, artist, rng, grid, scale, key, degree, alpha, sr) -> np.ndarray:
    step = grid["step"]
    per_chord = style.chord_beats * 4
    change = np.r_[True, np.diff(degree) != 0] | (step % per_chord == 0)
    velocity = np.maximum(_pattern(style.comp, step), change.astype(float))
    velocity *= rng.uniform(0.8, 1.0, len(step))
    hits = _hits(velocity)
    env, note = _envelope(grid, hits, velocity, style.attack, style.comp_decay, sr)
    table = _wavetable(rng, artist, 24, alpha, style.even)
    root = key + scale[degree[hits]]
    wave = np.zeros(grid["n"])
    voices = len(style.shape) if style.shape else style.chord_size
    for v in range(voices):
        pitch = root + style.shape[v] if style.shape else key + scale[degree[hits] + 2 * v]
        cents = rng.normal(0.0, 4.0)  # chorus: voices beat slightly against each other
        wave += _oscillate(table, _hz(pitch + cents / 100)[note], sr)
    wave *= env
    drive = style.drive * artist.drive
    if drive > 0:
        wave = np.tanh(drive * wave / (np.abs(wave).max() or 1.0)) / np.tanh(drive)
    return wave


def _bass(style, artist, rng, grid, scale, key, degree, alpha, sr) -> np.ndarray:
    step = grid["step"]
    kinds = np.array(list(style.bass))[step % len(style.bass)]
    velocity = (kinds != ".") * rng.uniform(0.8, 1.0, len(step))
    hits = _hits(velocity)
    env, note = _envelope(grid, hits, velocity, 0.005, style.bass_decay, sr)
    walk = scale[degree[hits] + rng.choice([0, 1, 2, 4, 5], len(hits))] - scale[degree[hits]]
    offset = np.select(
        [kinds[hits] == "f", kinds[hits] == "o", kinds[hits] == "w"], [7, 12, walk], 0
    )
    pitch = key - 12 + scale[degree[hits]] + offset
    table = _wavetable(rng, artist, 12, alpha + 0.8, 1.0)
    return env * _oscillate(table, _hz(pitch)[note], sr)


def _melody(style, artist, rng, grid, scale, key, alpha, t, sr) -> np.ndarray:
    step = grid["step"]
    starts = np.flatnonzero((step % style.melody_steps == 0) | (np.arange(len(step)) == 0))
    moves = rng.choice([-2, -1, -1, 0, 1, 1, 2], len(starts))
    degree = 7 + np.abs((np.cumsum(moves) + 6) % 24 - 12)  # a random walk, folded into 7..19
    velocity = np.zeros(len(step))
    velocity[starts] = rng.uniform(0.7, 1.0, len(starts))
    velocity[starts] *= rng.random(len(starts)) >= style.melody_rest
    decay = style.melody_steps * grid["beat"] / 4 * 1.5
    env, note = _envelope(grid, starts, velocity, max(style.attack, 0.02), decay, sr)
    depth = style.vibrato * np.log(2) / 1200  # cents, linearised: fine below a semitone
    vibrato = 1.0 + depth * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t)
    table = _wavetable(rng, artist, 10, alpha + 0.3, style.even)
    return env * _oscillate(table, _hz(key + scale[degree])[note] * vibrato, sr)


def _drums(style, artist, rng, grid, n, sr) -> np.ndarray:
    """Kick, snare and hi-hat one-shots overlap-added at the grid hits of their patterns."""
    if style.drums == 0:
        return np.zeros(n)
    t = np.arange(int(0.3 * sr)) / sr
    kick_hz = artist.kick_hz * (1.0 + 2.0 * np.exp(-t / 0.02))
    kick = np.sin(2 * np.pi * np.cumsum(kick_hz) / sr) * np.exp(-t / 0.12)
    rattle = np.diff(rng.standard_normal(len(t) + 1)) * 0.5
    snare = (rattle + np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.05)
    hat = np.diff(rng.standard_normal(len(t) + 2), 2) * np.exp(-t / style.hat_decay) * 0.25
    index, weight = [], []
    for pattern, shot in ((style.kick, kick), (style.snare, snare), (style.hat, hat)):
        velocity = _pattern(pattern, grid["step"]) * rng.uniform(0.75, 1.0, len(grid["step"]))
        hit = velocity > 0
        index.append((grid["onset"][hit][:, None] + np.arange(len(t))).ravel())
        weight.append((velocity[hit][:, None] * shot).ravel())
    return np.bincount(np.concatenate(index), np.concatenate(weight), n + len(t))[:n]


def _wavetable(rng, artist: _Artist, partials: int, alpha: float, even: float) -> np.ndarray:
    """One period of a harmonic tone: the genre sets the roll-off, the artist the fine shape."""
    k = np.arange(1, partials + 1)
    amp = k ** -max(alpha, 0.3) * np.where(k % 2 == 0, even, 1.0) * artist.partials[:partials]
    amp *= rng.lognormal(0.0, 0.1, partials)
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spectrum[k] = amp * np.exp(1j * rng.uniform(0.0, 2 * np.pi, partials))
    table = np.fft.irfft(spectrum, _TABLE_SIZE)
    return table / np.abs(table).max()


def _oscillate(table: np.ndarray, hz: np.ndarray, sr: int) -> np.ndarray:
    phase = np.cumsum(hz * (_TABLE_SIZE / sr))
    return table[phase.astype(np.int64) & (_TABLE_SIZE - 1)]


def _hz(midi) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = _rms(x)
    return x / r if r > 0 else x
