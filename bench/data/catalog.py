"""Turn a suite's dataset spec and the user's ``--data-dir`` into a loaded :class:`Dataset`.

Real datasets are never replaced by synthetic ones: when a real dataset is missing, the error
says how to get it. Synthetic data is used only when the suite's dataset kind says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from bench.data.dataset import Dataset
from bench.data.gtzan import load_gtzan
from bench.errors import DataError
from bench.suites import DatasetSpec

log = logging.getLogger(__name__)


def data_home() -> Path:
    """``$BENCH_DATA`` when set, else ``./data``."""
    return Path(os.environ.get("BENCH_DATA", "data"))


def cache_home() -> Path:
    """``$BENCH_CACHE`` when set, else ``./.cache/bench``."""
    return Path(os.environ.get("BENCH_CACHE", Path(".cache") / "bench"))


def open_dataset(
    spec: DatasetSpec, data_dir: Path | None = None, progress: bool = False
) -> Dataset:
    if spec.segment is not None:
        return _computed(spec, data_dir, progress)
    if spec.kind == "synthetic-gtzan":
        root = Path(data_dir) if data_dir else _synthetic_root(spec, progress)
        return load_gtzan(root, spec.features, name="synthetic-gtzan")
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"{root}: data directory does not exist")
    else:
        root = data_home() / (spec.path or spec.kind)
        if not root.is_dir():
            raise DataError(
                f"{spec.kind} data not found at {root}; download it with "
                f"`bench data fetch {spec.kind} --url URL --sha256 HASH --out {root}`, "
                f"set $BENCH_DATA, or pass --data-dir"
            )
    return load_gtzan(root, spec.features, name=spec.kind)


def _synthetic_root(spec: DatasetSpec, progress: bool) -> Path:
    """Generate (once) and cache the synthetic dataset the spec's options describe."""
    from bench.data.synthetic import GENERATOR_VERSION, synth_gtzan

    recipe = {**spec.options, "generator": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_home() / f"synthetic-gtzan-{key}"
    done = root / ".complete"
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
    if data_dir is not None:
        root = Path(data_dir)
    elif spec.kind == "synthetic-gtzan":
        root = _synthetic_root(spec, progress)
    else:
        root = data_home() / (spec.path or spec.kind)
    if not root.is_dir():
        raise DataError(f"{root}: data directory does not exist; pass --data-dir")
    return computed_dataset(root, spec.segment, spec.kind, spec.vote, progress=progress)
