"""Tuned parameters: ``experiments/tuned/<suite>.toml``, written by ``bench tune`` and read by
``bench run --tuned``.

This module imports no Optuna: a ``--tuned`` run reads the file, checks that the parameters
were tuned on the exact development split and data the run will hold out, and adds a
``tuned`` entry beside each model that has some, and beside each ensemble with a tuned member.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.data.dataset import Dataset
from bench.data.splits import DevSplit
from bench.errors import BenchError
from bench.suites import Suite, suite_dirs

TUNED_DIR = Path("experiments") / "tuned"


def tuned_path(suite: str) -> Path:
    """Where `bench tune` writes best parameters: `./experiments/tuned/<suite>.toml`."""
    return TUNED_DIR / f"{suite}.toml"


def load_tuned(suite: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {protocol: entry}}`` from the suite's tuned file, or ``{}`` when there is none.

    Looked up in ``./experiments/tuned`` first, then beside the other suite folders.
    """
    candidates = [tuned_path(suite)] + [d / "tuned" / f"{suite}.toml" for d in suite_dirs()]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: invalid TOML ({exc})") from None


def save_tuned(suite: str, model: str, protocol: str, entry: dict[str, Any]) -> Path:
    """Record ``entry`` (best parameters and where they came from) for ``model`` x ``protocol``.

    The file is rewritten whole through a temporary file, so a reader never sees half of it.
    """
    path = tuned_path(suite)
    table = tomllib.loads(path.read_text()) if path.is_file() else {}
    table.setdefault(model, {})[protocol] = entry
    lines = [
        f"# Best parameters found by `bench tune` for suite {suite!r}; read by",
        f"# `bench run --suite {suite} --tuned`. One table per model and protocol.",
    ]
    for name in sorted(table):
        for proto in sorted(table[name]):
            lines += ["", f"[{name}.{_toml_key(proto)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table[name][proto].items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".toml.tmp")
    scratch.write_text("\n".join(lines) + "\n")
    scratch.replace(path)
    return path


def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "-_" for c in key)
    return key if bare else _toml_value(key)


def _toml_value(value: Any) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if value is None:
        raise BenchError("TOML has no null: a tuned parameter cannot be None")
    raise BenchError(f"cannot write {type(value).__name__} {value!r} to TOML")


def apply_tuned(suite: Suite, dataset: Dataset) -> tuple[Suite, DevSplit]:
    """The suite with a ``tuned`` entry beside each model that has tuned parameters, and the
    development split they were tuned on (for ``bench run --tuned``).

    Tuned parameters are only used on the exact development split and data they were tuned
    on: otherwise a leaderboard test side could hold tracks the tuner saw.
    """
    from dataclasses import replace

    from bench.data.splits import dev_split
    from bench.suites import ModelEntry

    protocol = suite.protocol.name
    tuned = load_tuned(suite.name)
    dev = dev_split(
        dataset, suite.protocol, suite.seed, suite.tuning.dev_fraction, suite.tuning.folds
    )

    def checked(model: str) -> dict[str, Any] | None:
        found = tuned.get(model, {}).get(protocol)
        if found is None:
            return None
        for key, expected, what in (
            ("dev_split", dev.signature, "development split (seed, protocol or [tuning] changed)"),
            ("data", dataset.fingerprint, "data"),
        ):
            if found.get(key) != expected:
                raise BenchError(
                    f"{tuned_path(suite.name)}: {model} was tuned on another {what}; "
                    f"re-tune with `bench tune {model} --suite {suite.name}`"
                )
        return found["params"]

    entries: list[ModelEntry] = []
    for entry in suite.models:
        entries.append(entry)
        own = checked(entry.name) or {}
        members = _tuned_members(entry, checked)
        if not own and not members:
            continue
        params = {**entry.params, **own}
        if members:
            given = params.get("estimator_params") or {}
            params["estimator_params"] = {
                m: {**given.get(m, {}), **members.get(m, {})} for m in sorted({*members, *given})
            }
        entries.append(ModelEntry(entry.name, params, variant="tuned"))
    if len(entries) == len(suite.models):
        raise BenchError(
            f"no tuned parameters for suite {suite.name!r} under protocol {protocol} in "
            f"{tuned_path(suite.name)}; run `bench tune MODEL --suite {suite.name}` first"
        )
    return replace(suite, models=tuple(entries)), dev


def _tuned_members(entry: Any, checked: Any) -> dict[str, dict[str, Any]]:
    """An ensemble's members that have tuned parameters: ``{member: params}``. As for a model
    itself, tuned values replace the suite's (its ``estimator_params``) name by name."""
    from bench import registry

    spec = registry.get(entry.name)
    names: list[str] = []
    for key in ("estimators", "tabular", "audio", "second_layer"):
        if key in spec.parameters:
            names += list(spec.value(entry.params, key) or ())
    found = {}
    for name in dict.fromkeys(names):
        params = checked(name)
        if params:
            found[name] = params
    return found
