"""Suites are data: ``experiments/<name>.toml`` names a dataset, a protocol and the models.

Example ``experiments/gtzan.toml``::

    name = "gtzan"
    seed = 0
    [dataset]
    kind = "gtzan"
    path = "gtzan"
    [protocol]
    name = "stratified-kfold"
    folds = 5
    [budget]
    model_seconds = 900
    [[models]]
    name = "xgboost"
    params = { n_estimators = 500, max_depth = 4, learning_rate = 0.05 }
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.data.splits import Protocol
from bench.errors import BenchError

DATASET_KINDS = ("gtzan", "synthetic-gtzan")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    kind: str
    path: str | None = None
    features: str = "features_30_sec.csv"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: DatasetSpec
    protocol: Protocol
    models: tuple[ModelEntry, ...]
    seed: int = 0
    model_seconds: float = 900.0
    description: str = ""
    path: Path | None = None

    def with_overrides(
        self,
        models: list[str] | None = None,
        protocol: str | None = None,
        folds: int | None = None,
        seed: int | None = None,
    ) -> Suite:
        """The suite as the command line narrows it (``--models``, ``--protocol`` ...)."""
        suite = self
        if models:
            entries = {m.name: m for m in self.models}
            suite = replace(suite, models=tuple(entries.get(n, ModelEntry(n)) for n in models))
        if protocol or folds:
            suite = replace(
                suite,
                protocol=replace(
                    self.protocol,
                    name=protocol or self.protocol.name,
                    folds=folds or self.protocol.folds,
                ),
            )
        if seed is not None:
            suite = replace(suite, seed=seed)
        return suite


def suite_dirs() -> list[Path]:
    """Where suites are looked up: ``$BENCH_SUITES``, ``./experiments``, the source checkout's."""
    dirs = [Path(p) for p in os.environ.get("BENCH_SUITES", "").split(os.pathsep) if p]
    dirs += [Path("experiments"), Path(__file__).resolve().parents[1] / "experiments"]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def list_suites() -> list[Suite]:
    seen: dict[str, Suite] = {}
    for d in suite_dirs():
        for path in sorted(d.glob("*.toml")):
            seen.setdefault(path.stem, load_suite(str(path)))
    return list(seen.values())


def load_suite(name: str) -> Suite:
    """A suite by name (``gtzan``) or by path to its TOML file."""
    path = Path(name)
    if path.suffix != ".toml":
        candidates = [d / f"{name}.toml" for d in suite_dirs()]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            known = sorted({p.stem for d in suite_dirs() for p in d.glob("*.toml")})
            raise BenchError(f"unknown suite {name!r}; known suites: {', '.join(known) or 'none'}")
    if not path.is_file():
        raise BenchError(f"{path}: suite file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: invalid TOML ({exc})") from None
    return _parse(raw, path)


def _parse(raw: dict[str, Any], path: Path) -> Suite:
    try:
        data = dict(raw["dataset"])
        kind = data.pop("kind")
        if kind not in DATASET_KINDS:
            raise BenchError(f"{path}: dataset kind {kind!r} is not one of {DATASET_KINDS}")
        dataset = DatasetSpec(
            kind=kind,
            path=data.pop("path", None),
            features=data.pop("features", "features_30_sec.csv"),
            options=data,
        )
        protocol = Protocol(**raw.get("protocol", {}))
        models = tuple(
            ModelEntry(m["name"], dict(m.get("params", {}))) for m in raw.get("models", [])
        )
    except KeyError as exc:
        raise BenchError(f"{path}: missing key {exc.args[0]!r}") from None
    except TypeError as exc:
        raise BenchError(f"{path}: {exc}") from None
    if not models:
        raise BenchError(f"{path}: a suite needs at least one [[models]] entry")
    budget = raw.get("budget", {})
    return Suite(
        name=raw.get("name", path.stem),
        dataset=dataset,
        protocol=protocol,
        models=models,
        seed=int(raw.get("seed", 0)),
        model_seconds=float(budget.get("model_seconds", 900.0)),
        description=raw.get("description", ""),
        path=path,
    )
