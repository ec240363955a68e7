"""Turn a suite's dataset spec and the user's ``--data-dir`` into a loaded :class:`Dataset`.

Real datasets are never replaced by synthetic ones: when a real dataset is missing, the error
says how to get it. Synthetic data is used only when the suite's dataset kind says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from bench.data.dataset import Dataset
from bench.data.gtzan import load_gtzan
from bench.environment import cache_home, data_home
from bench.errors import DataError
from bench.locks import file_lock
from bench.suites import DatasetSpec
from bench.tracking import DataRef

log = logging.getLogger(__name__)


MSD_OPTIONS = ("labels", "covariance", "min_class_artists")
"""``[dataset]`` options of the MSD kinds that shape the loaded dataset (``msd-table``: not
``covariance``); ``synthetic-msd`` also takes :func:`bench.data.synthetic_msd.synth_msd`'s."""
_SYNTH_MSD_OPTIONS = ("tracks", "seed", "songs_per_artist")
_HOW_TO_GET = {
    "gtzan": "download it with `bench data fetch gtzan --url URL --sha256 HASH --out {root}`",
    "msd": "put Million Song Dataset track files there (the subset's data/A/B/C/TR*.h5)",
    "msd-table": "put the CORGIS music.csv there",
}


def open_dataset(
    spec: DatasetSpec, data_dir: Path | None = None, progress: bool = False
) -> Dataset:
    if spec.segment is not None:
        return _computed(spec, data_dir, progress)
    if spec.kind == "synthetic-gtzan":
        root = Path(data_dir) if data_dir else _synthetic_root(spec, progress)
        return load_gtzan(root, spec.features, name="synthetic-gtzan")
    if spec.kind == "synthetic-msd":
        from bench.data.msd_dataset import load_msd

        options = _msd_options(spec, MSD_OPTIONS + _SYNTH_MSD_OPTIONS)
        generate = {k: options.pop(k) for k in _SYNTH_MSD_OPTIONS if k in options}
        root = Path(data_dir) if data_dir else _synthetic_msd_root(generate, progress)
        cache = cache_home() / "msd"
        return load_msd(root, name=spec.kind, cache=cache, progress=progress, **options)
    root = data_root(spec, data_dir)
    if spec.kind == "msd":
        from bench.data.msd_dataset import load_msd

        options = _msd_options(spec, MSD_OPTIONS)
        cache = cache_home() / "msd"
        return load_msd(root, name=spec.kind, cache=cache, progress=progress, **options)
    if spec.kind == "msd-table":
        from bench.data.msd_dataset import load_msd_table

        options = _msd_options(spec, ("labels", "min_class_artists"))
        return load_msd_table(root, spec.features, name=spec.kind, **options)
    return load_gtzan(root, spec.features, name=spec.kind)


def data_root(spec: DatasetSpec, data_dir: Path | None = None) -> Path | None:
    """The folder a real dataset is read from, or a one-line error when it is missing; None
    for a synthetic kind without ``data_dir`` (generated on first use).

    Cheap, so a command can check it before it creates anything (``bench tune``'s storage).
    """
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"{root}: data directory does not exist")
        return root
    if spec.kind.startswith("synthetic-"):
        return None
    root = data_home() / (spec.path or spec.kind)
    if not root.is_dir():
        how = _HOW_TO_GET[spec.kind].format(root=root)
        raise DataError(
            f"{spec.kind} data not found at {root}; {how}, set $BENCH_DATA, or pass --data-dir"
        )
    return root


def _msd_options(spec: DatasetSpec, known: tuple[str, ...]) -> dict:
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        raise DataError(
            f"[dataset] option(s) {', '.join(unknown)} unknown for kind {spec.kind!r}; "
            f"it takes {', '.join(known)}"
        )
    return dict(spec.options)


def _synthetic_msd_root(options: dict, progress: bool) -> Path:
    """Generate (once) and cache the synthetic MSD folder ``options`` describe."""
    from bench.data.synthetic_msd import GENERATOR_VERSION, synth_msd

    recipe = {**options, "generator": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_home() / f"synthetic-msd-{key}"
    done = root / ".complete"
    with file_lock(root):  # two commands starting together generate it once
        if not done.is_file():
            log.info("generating synthetic MSD %s into %s", options, root)
            synth_msd(root, progress=progress, **options)
            done.write_text(json.dumps(options, sort_keys=True))
    return root


def _synthetic_root(spec: DatasetSpec, progress: bool) -> Path:
    """Generate (once) and cache the synthetic dataset the spec's options describe."""
    from bench.features.synthetic import GENERATOR_VERSION, synth_gtzan

    recipe = {**spec.options, "generator": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_home() / f"synthetic-gtzan-{key}"
    done = root / ".complete"
    with file_lock(root):  # two commands starting together generate it once
        if not done.is_file():
            log.info("generating synthetic GTZAN %s into %s", spec.options, root)
            synth_gtzan(root, progress=progress, **spec.options)
            done.write_text(json.dumps(spec.options, sort_keys=True))
    return root


def _computed(spec: DatasetSpec, data_dir: Path | None, progress: bool) -> Dataset:
    """A GTZAN suite on features bench computes from the audio (``[dataset] segment``)."""
    from bench.features.extract import computed_dataset

    if spec.kind not in ("gtzan", "synthetic-gtzan"):
        raise DataError(f"[dataset] segment applies to GTZAN kinds, not {spec.kind!r}")
    root = data_root(spec, data_dir) or _synthetic_root(spec, progress)
    return computed_dataset(root, spec.segment, spec.kind, spec.vote, progress=progress)


def data_ref(dataset: Dataset) -> DataRef:
    """What MLflow records of ``dataset`` as a run's input."""
    return DataRef(
        name=dataset.name,
        digest=dataset.fingerprint,
        source=str(dataset.root),
        columns=tuple(str(c) for c in dataset.features.columns),
        classes=tuple(dataset.classes),
        rows=len(dataset),
        tracks=dataset.n_tracks,
    )
