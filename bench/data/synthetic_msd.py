"""MSD-shaped HDF5 track files with learnable genre structure, for tests and scale.

Each file has the groups, one-row ``songs`` tables (compound dtypes copied field for field
from real MSD files), arrays, dtypes, chunk shapes and gzip+shuffle filters of a real MSD
track file, in the Million Song Subset's layout ``data/<tid[2]>/<tid[3]>/<tid[4]>/<tid>.h5``.
PyTables' node attributes are not written: bench reads by name with h5py, and PyTables-based
readers (the MSD's own ``hdf5_getters.py``) may not recognise these files.

Genre shapes what the MSD's analysis measures: timbre (mean and spread of the 12 MFCC-like
coefficients), harmony (how clearly the chroma follows the key, major or minor), tempo and its
steadiness, loudness, duration, segment rate, metre. Every artist has a primary genre, a
second genre that influenced it, and a signature of its own shared by all its songs (several
per artist, as in the MSD, so artist-grouped folds are harder than random ones). Artist terms
are those of the primary genre, ranked by weight, mixed with the influence's and with terms that
name no genre (``los angeles``), which sometimes rank first; for 5% of artists an influence
term ranks first, so derived labels are as noisy as real ones. ``truth_genres.tsv``
(tagtraum-style ``track_id<TAB>genre``) names each track's primary genre.

Example::

    from pathlib import Path
    from bench.data.synthetic_msd import synth_msd
    root = synth_msd(Path("/tmp/msd"), tracks=200, seed=0)
    # root/data/A/B/C/TRABC....h5 (x200), root/truth_genres.tsv

Why one module (~500 lines): like :mod:`bench.data.synthetic`, one seeded recipe (genres,
artists, their terms and the HDF5 layout of every field :mod:`bench.data.msd` reads), whose
parts must draw in one order to write identical files for the same arguments.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.taxonomy import EXACT, GENRES, KEYWORDS
from bench.errors import DataError

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bump when the generated files change, so cached synthetic datasets are rebuilt."""

TRUTH_FILE = "truth_genres.tsv"

# The three `songs` tables of a real MSD track file, field for field.
SONGS_DTYPES = {
    "metadata": np.dtype(
        [
            ("analyzer_version", "S32"),
            ("artist_7digitalid", "<i4"),
            ("artist_familiarity", "<f8"),
            ("artist_hotttnesss", "<f8"),
            ("artist_id", "S32"),
            ("artist_latitude", "<f8"),
            ("artist_location", "S1024"),
            ("artist_longitude", "<f8"),
            ("artist_mbid", "S40"),
            ("artist_name", "S1024"),
            ("artist_playmeid", "<i4"),
            ("genre", "S1024"),
            ("idx_artist_terms", "<i4"),
            ("idx_similar_artists", "<i4"),
            ("release", "S1024"),
            ("release_7digitalid", "<i4"),
            ("song_hotttnesss", "<f8"),
            ("song_id", "S32"),
            ("title", "S1024"),
            ("track_7digitalid", "<i4"),
        ]
    ),
    "analysis": np.dtype(
        [
            ("analysis_sample_rate", "<i4"),
            ("audio_md5", "S32"),
            ("danceability", "<f8"),
            ("duration", "<f8"),
            ("end_of_fade_in", "<f8"),
            ("energy", "<f8"),
            *(
                (f"idx_{name}", "<i4")
                for name in (
                    "bars_confidence",
                    "bars_start",
                    "beats_confidence",
                    "beats_start",
                    "sections_confidence",
                    "sections_start",
                    "segments_confidence",
                    "segments_loudness_max",
                    "segments_loudness_max_time",
                    "segments_loudness_start",
                    "segments_pitches",
                    "segments_start",
                    "segments_timbre",
                    "tatums_confidence",
                    "tatums_start",
                )
            ),
            ("key", "<i4"),
            ("key_confidence", "<f8"),
            ("loudness", "<f8"),
            ("mode", "<i4"),
            ("mode_confidence", "<f8"),
            ("start_of_fade_out", "<f8"),
            ("tempo", "<f8"),
            ("time_signature", "<i4"),
            ("time_signature_confidence", "<f8"),
            ("track_id", "S32"),
        ]
    ),
    "musicbrainz": np.dtype([("idx_artist_mbtags", "<i4"), ("year", "<i4")]),
}
_TABLE_CHUNKS = {"metadata": 3, "analysis": 37, "musicbrainz": 1024}
# Arrays per group: name -> (dtype, chunk shape), as in real files.
ARRAY_SCHEMA: dict[str, dict[str, tuple[str, tuple[int, ...]]]] = {
    "metadata": {
        "artist_terms": ("S256", (32,)),
        "artist_terms_freq": ("<f8", (1024,)),
        "artist_terms_weight": ("<f8", (1024,)),
        "similar_artists": ("S20", (409,)),
    },
    "analysis": {
        **{
            name: ("<f8", (1024,))
            for name in (
                "bars_confidence",
                "bars_start",
                "beats_confidence",
                "beats_start",
                "sections_confidence",
                "sections_start",
                "segments_confidence",
                "segments_loudness_max",
                "segments_loudness_max_time",
                "segments_loudness_start",
                "segments_start",
                "tatums_confidence",
                "tatums_start",
            )
        },
        "segments_pitches": ("<f8", (85, 12)),
        "segments_timbre": ("<f8", (85, 12)),
    },
    "musicbrainz": {"artist_mbtags": ("S256", (32,)), "artist_mbtags_count": ("<i4", (2048,))},
}

# Real MSD timbre: mean over tracks of each track's mean, their spread, and the typical
# within-track spread (measured on the shared 40 files).
_TIMBRE_MEAN = np.array([43.0, -4.4, 1.3, -1.8, -4.7, -5.1, -5.3, -1.2, 2.9, 2.2, -1.1, 3.7])
_TIMBRE_BETWEEN = np.array([6.8, 60.8, 35.6, 15.7, 27.5, 18.3, 15.7, 9.4, 11.8, 8.8, 6.7, 11.0])
_TIMBRE_WITHIN = np.array([5.4, 45.4, 41.8, 41.2, 29.1, 30.7, 25.1, 22.9, 20.5, 18.3, 18.4, 17.6])
_MAJOR = np.array([1.0, 0.1, 0.5, 0.1, 0.7, 0.5, 0.1, 0.9, 0.1, 0.5, 0.1, 0.4])
_MINOR = np.array([1.0, 0.1, 0.5, 0.7, 0.1, 0.5, 0.1, 0.9, 0.5, 0.1, 0.4, 0.1])
_NO_GENRE_TERMS = tuple(sorted(term for term, genre in EXACT.items() if genre is None))
_SYLLABLES = (
    "ka", "lo", "mi", "ré", "sun", "dar", "vel", "ör", "tan", "bel", "no", "zi", "fa", "qu",
    "ish", "mo", "ña", "ber", "lin", "ço",
)  # fmt: skip
_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_ALNUM = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
# An artist's style lies this far at most from its genre's, towards the influencing genre.
_INFLUENCE = 0.5
# rng stream keys, so that a track never depends on how many tracks come after it
_WORLD, _LAYOUT, _ARTIST, _TRACK = 0, 1, 2, 3
_CHUNK = 50  # tracks per task sent to a worker process
# The Echo Nest rounded its analysis: to milliseconds and dB/1000, times to 10 microseconds.
_DECIMALS = {
    **dict.fromkeys(("segments_timbre", "segments_pitches", "segments_loudness_start"), 3),
    **dict.fromkeys(("segments_loudness_max", "segments_confidence", "beats_confidence"), 3),
    **dict.fromkeys(("bars_confidence", "tatums_confidence", "sections_confidence"), 3),
    **dict.fromkeys(("segments_start", "segments_loudness_max_time", "beats_start"), 5),
    **dict.fromkeys(("bars_start", "tatums_start", "sections_start"), 5),
}


@dataclass(frozen=True)
class _Style:
    """What the analysis measures of a genre (or of one artist's take on it)."""

    timbre: np.ndarray  # mean of the 12 coefficients
    spread: np.ndarray  # within-track standard deviation of each coefficient
    clarity: float  # how strongly the chroma follows the key template, 0..1
    major: float  # probability of a major key
    tempo: float
    steadiness: float  # beat-interval jitter as a fraction of a beat
    loudness: float
    duration: float
    segment_rate: float  # segments per second
    triple: float  # probability of 3/4


@dataclass(frozen=True)
class _Artist:
    artist_id: str
    name: str
    genre: int
    style: _Style
    terms: tuple[str, ...]
    weights: np.ndarray
    freqs: np.ndarray
    similar: tuple[str, ...]
    era: float  # mean release year


def synth_msd(
    out: Path,
    tracks: int = 2000,
    seed: int = 0,
    songs_per_artist: float = 4.0,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Write ``tracks`` MSD-schema track files under ``out/data`` and return ``out``.

    Artists have ``songs_per_artist`` songs on average (at least one each). The same
    arguments give byte-identical files. ``workers`` processes write them (default: one per
    core for more than 500 tracks).
    """
    from tqdm.auto import tqdm

    from bench.processes import mapped, one_thread

    out = Path(out)
    if tracks < 2 or seed < 0 or songs_per_artist < 1:
        raise DataError(
            f"{out}: cannot synthesise MSD with tracks={tracks}, seed={seed}, "
            f"songs_per_artist={songs_per_artist}: need tracks >= 2, seed >= 0, "
            "songs_per_artist >= 1"
        )
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    started = time.perf_counter()
    owners, ids = _layout(seed, tracks, songs_per_artist)
    tasks = [
        (str(out), seed, ids[i : i + _CHUNK], owners[i : i + _CHUNK], i)
        for i in range(0, tracks, _CHUNK)
    ]
    if workers is None:
        workers = min(os.cpu_count() or 1, max(1, tracks // 500))
    truth: list[str] = []
    with tqdm(total=tracks, desc="synth msd", unit="file", disable=not progress) as bar:
        for lines in mapped(_write_chunk, tasks, workers, one_thread):
            truth.extend(lines)
            bar.update(len(lines))
    (out / TRUTH_FILE).write_text("\n".join(truth) + "\n")
    log.info(
        "synthesised %d MSD track files (%d artists, seed %d) in %s in %.1f s",
        tracks, len(set(owners)), seed, out, time.perf_counter() - started,
    )  # fmt: skip
    return out


def _layout(seed: int, tracks: int, songs_per_artist: float) -> tuple[list[int], list[str]]:
    """The artist of every track (unequal song counts, as in the MSD) and unique track ids."""
    rng = np.random.default_rng([seed, _LAYOUT])
    artists = max(2, int(round(tracks / songs_per_artist)))
    artists = min(artists, tracks)
    sizes = 1 + rng.multinomial(tracks - artists, rng.dirichlet(np.full(artists, 2.0)))
    owners = np.repeat(np.arange(artists), sizes)
    rng.shuffle(owners)
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < tracks:
        tid = "TRA" + "".join(rng.choice(_LETTERS, 4)) + "".join(rng.choice(_ALNUM, 11))
        if tid not in seen:
            seen.add(tid)
            ids.append(tid)
    return owners.tolist(), ids


def _world(seed: int) -> list[_Style]:
    """Each genre's style: drawn once per seed, so every artist of a genre shares it."""
    styles = []
    for g in range(len(GENRES)):
        rng = np.random.default_rng([seed, _WORLD, g])
        styles.append(
            _Style(
                timbre=_TIMBRE_MEAN + rng.normal(0.0, 0.15, 12) * _TIMBRE_BETWEEN,
                spread=_TIMBRE_WITHIN * rng.lognormal(0.0, 0.12, 12),
                clarity=rng.uniform(0.2, 0.8),
                major=rng.uniform(0.3, 0.9),
                tempo=rng.uniform(75.0, 170.0),
                steadiness=rng.uniform(0.005, 0.08),
                loudness=rng.uniform(-16.0, -5.0),
                duration=rng.uniform(170.0, 300.0),
                segment_rate=rng.uniform(3.0, 5.0),
                triple=rng.uniform(0.0, 0.3),
            )
        )
    return styles


def _artist(seed: int, index: int, styles: list[_Style]) -> _Artist:
    rng = np.random.default_rng([seed, _ARTIST, index])
    genre = int(rng.integers(len(GENRES)))
    influence = int((genre + rng.integers(1, len(GENRES))) % len(GENRES))
    own, other = styles[genre], styles[influence]
    u = rng.uniform(0.0, _INFLUENCE)

    def mix(a, b):
        return (1.0 - u) * a + u * b

    style = _Style(
        timbre=mix(own.timbre, other.timbre) + rng.normal(0.0, 0.35, 12) * _TIMBRE_BETWEEN,
        spread=mix(own.spread, other.spread) * rng.lognormal(0.0, 0.15, 12),
        clarity=float(np.clip(mix(own.clarity, other.clarity) + rng.normal(0, 0.12), 0.05, 0.95)),
        major=float(np.clip(mix(own.major, other.major) + rng.normal(0, 0.1), 0.05, 0.95)),
        tempo=mix(own.tempo, other.tempo) * rng.lognormal(0.0, 0.15),
        steadiness=mix(own.steadiness, other.steadiness) * rng.lognormal(0.0, 0.4),
        loudness=mix(own.loudness, other.loudness) + rng.normal(0.0, 3.0),
        duration=mix(own.duration, other.duration) * rng.lognormal(0.0, 0.1),
        segment_rate=mix(own.segment_rate, other.segment_rate) * rng.lognormal(0.0, 0.12),
        triple=mix(own.triple, other.triple),
    )
    top = influence if rng.random() < 0.05 else genre
    terms, weights = _terms(rng, top, genre if top != genre else influence)
    return _Artist(
        artist_id=_code(rng, "AR"),
        name=_words(rng, 1, 3).title(),
        genre=genre,
        style=style,
        terms=terms,
        weights=weights,
        freqs=np.clip(weights * rng.uniform(0.7, 1.1, len(weights)), 0.0, 1.0),
        similar=tuple(_code(rng, "AR") for _ in range(int(rng.integers(0, 101)))),
        era=rng.uniform(1965.0, 2008.0),
    )


def _terms(rng: np.random.Generator, top: int, second: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Weight-ranked terms: ``top``'s first (unless a genre-less term outranks them), then
    ``second``'s, with genre-less terms in between; the first weight is 1, as in the MSD."""
    own = list(rng.choice(KEYWORDS[GENRES[top]], size=int(rng.integers(2, 7))))
    other = list(rng.choice(KEYWORDS[GENRES[second]], size=int(rng.integers(1, 5))))
    vague = list(rng.choice(_NO_GENRE_TERMS, size=int(rng.integers(0, 4))))
    ranked = list(dict.fromkeys(own + other))  # unique, own genre first
    for term in vague:
        if term not in ranked:
            position = 0 if rng.random() < 0.3 else int(rng.integers(0, len(ranked) + 1))
            ranked.insert(position, term)
    weights = np.sort(rng.uniform(0.3, 1.0, len(ranked)))[::-1]
    weights[0] = 1.0
    return tuple(ranked), weights


def _write_chunk(task: tuple[str, int, list[str], list[int], int]) -> list[str]:
    """Write the files of one chunk of tracks; returns their ``track_id<TAB>genre`` lines."""
    import h5py

    out, seed, ids, owners, first = task
    styles = _world(seed)
    artists: dict[int, _Artist] = {}
    lines = []
    for offset, (tid, owner) in enumerate(zip(ids, owners, strict=True)):
        if owner not in artists:
            artists[owner] = _artist(seed, owner, styles)
        artist = artists[owner]
        rng = np.random.default_rng([seed, _TRACK, first + offset])
        path = Path(out) / "data" / tid[2] / tid[3] / tid[4] / f"{tid}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        tables, arrays = _track(rng, tid, artist)
        with h5py.File(path, "w", libver="earliest", track_order=False) as f:
            for group in ("metadata", "analysis", "musicbrainz"):
                g = f.create_group(group)
                _dataset(g, "songs", tables[group], (_TABLE_CHUNKS[group],))
                for name, (dtype, chunks) in ARRAY_SCHEMA[group].items():
                    _dataset(g, name, np.asarray(arrays[name], dtype=dtype), chunks)
        lines.append(f"{tid}\t{GENRES[artist.genre]}")
    return lines


def _dataset(group, name: str, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    """An extendable, gzip(1)+shuffle dataset, as PyTables writes them in MSD files."""
    group.create_dataset(
        name,
        data=data,
        maxshape=(None, *data.shape[1:]),
        chunks=chunks,
        compression="gzip",
        compression_opts=1,
        shuffle=True,
        track_times=False,
    )


def _track(rng: np.random.Generator, tid: str, artist: _Artist) -> tuple[dict, dict]:
    """The three table rows and every array of one track."""
    s = artist.style
    duration = float(np.clip(rng.normal(s.duration, 45.0), 30.0, 900.0))
    fade_in = float(rng.exponential(0.8))
    fade_out = float(duration - rng.exponential(6.0))
    tempo = float(np.clip(s.tempo * rng.lognormal(0.0, 0.05), 40.0, 250.0))
    metre = 3 if rng.random() < s.triple else 4
    mode = int(rng.random() < s.major)
    key = int(rng.integers(12))
    n = max(1, int(duration * s.segment_rate * rng.lognormal(0.0, 0.05)))

    centre = s.timbre + rng.normal(0.0, 0.3, 12) * _TIMBRE_BETWEEN
    timbre = centre + rng.standard_normal((n, 12)) * s.spread
    template = np.roll(_MAJOR if mode else _MINOR, key)
    pitches = s.clarity * template + (1.0 - s.clarity) * rng.random((n, 12))
    pitches /= pitches.max(axis=1, keepdims=True)

    starts = np.sort(rng.uniform(0.0, duration, n))
    starts[0] = 0.0
    loudness = s.loudness + rng.normal(0.0, 1.0)
    loud_start = loudness - 12.0 + rng.normal(0.0, 5.0, n)
    loud_max = loudness + rng.normal(0.0, 4.0, n)
    beat = 60.0 / tempo
    count = max(2, int((fade_out - fade_in) / beat))
    jitter = rng.normal(0.0, s.steadiness * beat, count)
    beats = fade_in + np.arange(count) * beat + jitter
    beats = np.maximum.accumulate(beats)
    bars = beats[::metre]
    tatums = np.sort(np.concatenate([beats, beats[:-1] + np.diff(beats) / 2]))
    sections = np.concatenate([[0.0], np.cumsum(rng.uniform(15.0, 45.0, 40))])
    sections = sections[sections < duration]

    song_id = _code(rng, "SO")
    year = int(np.clip(rng.normal(artist.era, 3.0), 1922, 2010)) if rng.random() < 0.5 else 0
    meta = np.zeros(1, SONGS_DTYPES["metadata"])
    meta[0] = (
        b"", int(rng.integers(1, 10**6)), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.7),
        artist.artist_id.encode(), np.nan, b"", np.nan, _mbid(artist.artist_id),
        artist.name.encode(), -1, b"", 0, 0, _words(rng, 1, 3).title().encode(),
        int(rng.integers(1, 10**6)), rng.uniform(0.0, 1.0), song_id.encode(),
        _words(rng, 1, 4).capitalize().encode(), int(rng.integers(1, 10**7)),
    )  # fmt: skip
    analysis = np.zeros(1, SONGS_DTYPES["analysis"])
    for field, value in {
        "analysis_sample_rate": 22050,
        "audio_md5": hashlib.md5(tid.encode()).hexdigest().encode(),
        "duration": duration,
        "end_of_fade_in": fade_in,
        "key": key,
        "key_confidence": rng.uniform(0.0, 1.0),
        "loudness": loudness,
        "mode": mode,
        "mode_confidence": rng.uniform(0.0, 1.0),
        "start_of_fade_out": fade_out,
        "tempo": tempo,
        "time_signature": metre,
        "time_signature_confidence": rng.uniform(0.0, 1.0),
        "track_id": tid.encode(),
    }.items():
        analysis[field] = round(value, 5) if isinstance(value, float) else value
    brainz = np.zeros(1, SONGS_DTYPES["musicbrainz"])
    brainz["year"] = year
    tags = [t for t in artist.terms[:2] if rng.random() < 0.5]
    arrays = {
        "artist_terms": [t.encode() for t in artist.terms],
        "artist_terms_freq": artist.freqs,
        "artist_terms_weight": artist.weights,
        "similar_artists": [a.encode() for a in artist.similar],
        "segments_timbre": timbre,
        "segments_pitches": pitches,
        "segments_start": starts,
        "segments_confidence": rng.random(n),
        "segments_loudness_start": loud_start,
        "segments_loudness_max": loud_max,
        "segments_loudness_max_time": rng.uniform(0.0, 0.3, n),
        "beats_start": beats,
        "beats_confidence": rng.random(count),
        "bars_start": bars,
        "bars_confidence": rng.random(len(bars)),
        "tatums_start": tatums,
        "tatums_confidence": rng.random(len(tatums)),
        "sections_start": sections,
        "sections_confidence": rng.random(len(sections)),
        "artist_mbtags": [t.encode() for t in tags],
        "artist_mbtags_count": np.ones(len(tags), dtype=np.int32),
    }
    for name, places in _DECIMALS.items():
        arrays[name] = np.round(arrays[name], places)
    return {"metadata": meta, "analysis": analysis, "musicbrainz": brainz}, arrays


def _code(rng: np.random.Generator, prefix: str) -> str:
    """An MSD-style id: two letters and 16 capitals or digits (``SOJTVHW12A8C142F98``)."""
    return prefix + "".join(rng.choice(_ALNUM, 16))


def _mbid(artist_id: str) -> bytes:
    h = hashlib.md5(artist_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}".encode()


def _words(rng: np.random.Generator, low: int, high: int) -> str:
    """A few invented words, some with non-ASCII letters, so UTF-8 decoding is exercised."""
    words = [
        "".join(rng.choice(_SYLLABLES, int(rng.integers(1, 4))))
        for _ in range(int(rng.integers(low, high + 1)))
    ]
    return " ".join(words)
