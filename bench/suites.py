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

from bench.data.protocols import Protocol
from bench.errors import BenchError

DATASET_KINDS = ("gtzan", "synthetic-gtzan", "msd", "msd-table", "synthetic-msd")
_DEFAULT_FEATURES = {"msd-table": "music.csv"}
"""The table a kind reads when ``[dataset] features`` does not say (GTZAN's otherwise)."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    variant: str = "default"
    """``default`` (the suite's parameters) or ``tuned`` (from the suite's tuned file)."""


@dataclass(frozen=True)
class TuningSpec:
    """``[tuning]`` of a suite: the development split tuning sees, and what it maximises."""

    dev_fraction: float = 0.4
    folds: int = 3
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if not 0 < self.dev_fraction < 1:
            raise BenchError(f"dev_fraction must be between 0 and 1, got {self.dev_fraction}")
        if self.folds < 2:
            raise BenchError(f"folds must be at least 2, got {self.folds}")


@dataclass(frozen=True)
class DatasetSpec:
    kind: str
    path: str | None = None
    features: str = "features_30_sec.csv"
    options: dict[str, Any] = field(default_factory=dict)
    segment: float | None = None
    """Seconds per row of features bench computes from the audio (``features`` is then unused)."""
    vote: str = "track"
    """With ``segment``: ``track`` scores each track by its segments' mean probability."""


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
    tuning: TuningSpec = TuningSpec()

    def with_overrides(
        self,
        models: list[str] | None = None,
        protocol: str | None = None,
        folds: int | None = None,
        seed: int | None = None,
        labels: Path | None = None,
    ) -> Suite:
        """The suite as the command line narrows it (``--models``, ``--protocol``, ``--folds``,
        ``--seed``, ``--labels``: an MSD suite's genre label file)."""
        if folds is not None and folds < 2:
            raise BenchError(f"--folds must be at least 2, got {folds}")
        suite = self
        if labels is not None:
            if not self.dataset.kind.startswith(("msd", "synthetic-msd")):
                raise BenchError(
                    f"--labels applies to MSD suites; {self.name} reads {self.dataset.kind}"
                )
            if not Path(labels).is_file():
                raise BenchError(f"{labels}: label file not found")
            options = {**self.dataset.options, "labels": str(Path(labels).resolve())}
            suite = replace(suite, dataset=replace(self.dataset, options=options))
        if models:
            entries = {m.name: m for m in self.models}
            suite = replace(suite, models=tuple(entries.get(n, ModelEntry(n)) for n in models))
        if protocol or folds is not None:
            suite = replace(
                suite,
                protocol=replace(
                    self.protocol,
                    name=protocol or self.protocol.name,
                    folds=self.protocol.folds if folds is None else folds,
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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        raise BenchError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "suite files are TOML, which is UTF-8"
        ) from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the suite file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: invalid TOML ({exc})") from None
    return _parse(raw, path)


_NUMBER = (int, float)
_TOP = {
    "name": str,
    "description": str,
    "seed": int,
    "dataset": dict,
    "protocol": dict,
    "budget": dict,
    "tuning": dict,
    "models": list,
}
_PROTOCOL = {"name": str, "folds": int, "split_lists": str, "groups": str}
_BUDGET = {"model_seconds": _NUMBER}
_TUNING = {"dev_fraction": _NUMBER, "folds": int, "metric": str}
_MODEL = {"name": str, "params": dict}
_DATASET = {"kind": str, "path": str, "features": str, "segment": _NUMBER, "vote": str}
_MSD = {"labels": str, "covariance": bool, "min_class_artists": int}
DATASET_OPTIONS: dict[str, dict[str, Any]] = {
    "gtzan": {},
    "synthetic-gtzan": {
        "per_genre": int,
        "seed": int,
        "duration": _NUMBER,
        "artists_per_genre": int,
    },
    "msd": _MSD,
    "msd-table": {"labels": str, "min_class_artists": int},
    "synthetic-msd": {**_MSD, "tracks": int, "seed": int, "songs_per_artist": _NUMBER},
}
"""``[dataset]`` keys each kind takes beyond ``kind``, ``path``, ``features``, ``segment`` and
``vote``, with their types: the options of its loader (or of its generator)."""


def _checked(table: Any, schema: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """``table`` when it is a table with known keys of the right types, else a one-line error
    naming the file, the table and the key (with the closest valid key for a misspelling)."""
    import difflib

    if not isinstance(table, dict):
        raise BenchError(f"{path}: {where} must be a table, got {_type_name(table)}")
    for key, value in table.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(schema) or "none"
            raise BenchError(f"{path}: {where}: unknown key {key!r}{hint} (valid keys: {valid})")
        expected = schema[key]
        wrong_bool = isinstance(value, bool) and expected is not bool
        if wrong_bool or not isinstance(value, expected):
            raise BenchError(
                f"{path}: {where}: {key} must be {_type_name(expected, article=True)}, "
                f"got {_type_name(value)} {value!r}"
            )
    return dict(table)


_EXPECTED = {str: "a string", int: "an integer", bool: "a boolean", dict: "a table"}
_EXPECTED.update({list: "an array", _NUMBER: "a number"})
_TOML_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "table"}


def _type_name(value: Any, article: bool = False) -> str:
    """``a number`` for an expected type (``article``), ``string`` for a value's type."""
    if article:
        return _EXPECTED[value]
    return _TOML_TYPES.get(type(value), "array" if isinstance(value, list) else "value")


def _parse(raw: dict[str, Any], path: Path) -> Suite:
    raw = _checked(raw, _TOP, path, "top level")
    if "dataset" not in raw:
        raise BenchError(f"{path}: missing table [dataset]")
    data = _checked(raw["dataset"], {**_DATASET, **_all_options()}, path, "[dataset]")
    kind = data.pop("kind", None)
    if kind is None:
        raise BenchError(f"{path}: [dataset]: missing key 'kind'")
    if kind not in DATASET_KINDS:
        raise BenchError(f"{path}: dataset kind {kind!r} is not one of {', '.join(DATASET_KINDS)}")
    options = {k: v for k, v in data.items() if k not in _DATASET}
    _checked(options, DATASET_OPTIONS[kind], path, f"[dataset] of kind {kind!r}")
    computed = {k: data[k] for k in ("segment", "vote") if k in data}
    dataset = DatasetSpec(
        kind=kind,
        path=data.get("path"),
        features=data.get("features", _DEFAULT_FEATURES.get(kind, "features_30_sec.csv")),
        options=options,
        **computed,
    )
    protocol_table = _checked(raw.get("protocol", {}), _PROTOCOL, path, "[protocol]")
    try:
        protocol = Protocol(**protocol_table)
    except BenchError as exc:
        raise BenchError(f"{path}: [protocol]: {exc}") from None
    if not isinstance(raw.get("models", []), list):
        raise BenchError(f"{path}: models must be an array of tables ([[models]])")
    entries = []
    for number, item in enumerate(raw.get("models", []), 1):
        where = f"[[models]] #{number}"
        item = _checked(item, _MODEL, path, where)
        if "name" not in item:
            raise BenchError(f"{path}: {where}: missing key 'name'")
        entries.append(ModelEntry(item["name"], dict(item.get("params", {}))))
    models = tuple(entries)
    if not models:
        raise BenchError(f"{path}: a suite needs at least one [[models]] entry")
    budget = _checked(raw.get("budget", {}), _BUDGET, path, "[budget]")
    seconds = float(budget.get("model_seconds", 900.0))
    if seconds <= 0:
        raise BenchError(f"{path}: [budget]: model_seconds must be positive, got {seconds:g}")
    tuning_table = _checked(raw.get("tuning", {}), _TUNING, path, "[tuning]")
    try:
        tuning = TuningSpec(**tuning_table)
    except BenchError as exc:
        raise BenchError(f"{path}: [tuning]: {exc}") from None
    return Suite(
        name=raw.get("name", path.stem),
        dataset=dataset,
        protocol=protocol,
        models=models,
        seed=raw.get("seed", 0),
        model_seconds=seconds,
        description=raw.get("description", ""),
        path=path,
        tuning=tuning,
    )


def _all_options() -> dict[str, Any]:
    """Every kind's options (checked against the suite's own kind once the kind is known)."""
    merged: dict[str, Any] = {}
    for options in DATASET_OPTIONS.values():
        merged.update(options)
    return merged
