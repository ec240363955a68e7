"""Models registered by name.

A :class:`ModelSpec` says what a model is (family, input kind) and how to build it; the runner,
the tuner and ``bench models`` only ever go through this table. A model is registered either as
a factory function (:func:`register`) or as an estimator class named by its import path
(:func:`register_class`), whose constructor is then the model's signature. Factories import
their heavy libraries lazily and classes are imported on first use, so listing the registry
stays instant.

Example::

    >>> from bench.registry import create, get, list_models
    >>> [m.name for m in list_models(family="boosting")]
    ['catboost', 'hist_gb', 'lightgbm', 'lightgbm_xt', 'xgboost']
    >>> create("logreg", C=0.5).get_params()["logisticregression__C"]
    0.5
    >>> get("xgboost").parameters[:3]
    ('n_estimators', 'max_depth', 'learning_rate')
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

SearchSpace = Callable[[Any], dict[str, Any]]
"""Define-by-run search space: takes an Optuna trial, returns constructor parameters."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``target`` is what builds it: a factory function, or the import path of an estimator class
    (``"package.module:Class"``), imported only when :attr:`factory` is first asked for (by
    :meth:`create`, :attr:`parameters`, :meth:`check`, :meth:`complete` ...).
    """

    name: str
    family: str
    input_kind: str
    target: Callable[..., Any] | str
    search_space: SearchSpace | None = None
    description: str = ""

    @property
    def factory(self) -> Callable[..., Any]:
        """The callable that builds the model: the factory, or the class (imported now)."""
        if isinstance(self.target, str):
            return _import(self.name, self.target)
        return self.target

    def create(self, **params: Any) -> Any:
        return self.factory(**params)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The factory's parameter names (a class's ``__init__`` parameters, without ``self``)."""
        return tuple(inspect.signature(self.factory).parameters)

    def value(self, params: dict[str, Any], name: str) -> Any:
        """The parameter ``name`` as the factory will see it: from ``params``, else its default
        (None when the factory has no such parameter or no default)."""
        if name in params:
            return params[name]
        parameter = inspect.signature(self.factory).parameters.get(name)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            return None
        return parameter.default

    def type_hints(self) -> dict[str, Any]:
        """The factory's parameter annotations, resolved (a class's come from its ``__init__``:
        ``typing.get_type_hints`` of the class itself gives its attribute annotations)."""
        import typing

        factory = self.factory
        return typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)

    def check(self, params: dict[str, Any]) -> None:
        """``params`` against the factory's signature, as a one-line error: every name known
        (the closest one suggested), every value of an annotated type, and member models of
        ensembles (``estimators``, ``base``, ``estimator_params`` ...) checked in turn."""
        accepted = self.parameters
        for name in params:
            if name not in accepted:
                close = difflib.get_close_matches(name, accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise BenchError(
                    f"model {self.name!r} has no parameter {name!r}{hint}; "
                    f"it takes {', '.join(accepted)}"
                )
        hints = self.type_hints()
        for name, value in params.items():
            expected = hints.get(name, Any)
            if not _accepts(value, expected):
                raise BenchError(
                    f"model {self.name!r}: {name} must be {_describe(expected)}, got {value!r}"
                )
        self._check_members(params)

    def _check_members(self, params: dict[str, Any]) -> None:
        members: list[str] = []
        for key in ("estimators", "tabular", "audio", "second_layer"):
            if key in self.parameters:
                members += list(self.value(params, key) or ())
        base = self.value(params, "base") if "base" in self.parameters else None
        if base is not None and base != "tree":
            members.append(base)
        head = self.value(params, "head") if "head" in self.parameters else None
        if head is not None:  # a probe's head (bench.models.pretrained)
            get(head).check(params.get("head_params") or {})
        for member in members:
            get(member)
        for member, member_params in (params.get("estimator_params") or {}).items():
            if member not in members:
                raise BenchError(
                    f"model {self.name!r}: estimator_params names {member!r}, which is not "
                    f"one of its members ({', '.join(members)})"
                )
            get(member).check(member_params)
        if params.get("base_params") and base is not None and base != "tree":
            get(base).check(params["base_params"])
        if params.get("mlp_params"):
            get("mlp").check(params["mlp_params"])

    def complete(self, params: dict[str, Any], seed: int | None, device: str) -> dict[str, Any]:
        """``params`` checked against the factory, plus the seed and device where it takes them.

        The result is sorted so that it hashes the same however the suite file ordered it.
        """
        accepted = self.parameters
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise BenchError(
                f"model {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                f"it takes {', '.join(accepted)}"
            )
        full = dict(params)
        if "random_state" in accepted:
            full.setdefault("random_state", seed)
        if "device" in accepted:
            full.setdefault("device", device)
        return {k: full[k] for k in sorted(full)}


def _accepts(value: Any, expected: Any) -> bool:
    """Whether a suite value fits an annotation (TOML arrays stand for lists and tuples)."""
    import os
    import types
    import typing

    origin = typing.get_origin(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin in (list, tuple):
        items = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return isinstance(value, list | tuple) and all(
            _accepts(v, items[0] if items else Any) for v in value
        )
    if origin is dict or expected is dict:
        return isinstance(value, dict)
    if origin is Callable or expected is Callable:
        return callable(value)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is os.PathLike:
        return isinstance(value, str | os.PathLike)
    return isinstance(value, expected) if isinstance(expected, type) else True


def _describe(expected: Any) -> str:
    """An annotation in a user's words: ``int | None`` -> ``an integer or none``."""
    import types
    import typing

    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(expected))
    names = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}
    names[type(None)] = "none"
    origin = typing.get_origin(expected) or expected
    names.update({list: "a list", tuple: "a list", dict: "a table", Callable: "a function"})
    return names.get(origin, getattr(origin, "__name__", str(origin)))


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str,
    *,
    family: str,
    input_kind: str = "tabular",
    search_space: SearchSpace | None = None,
    description: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory under ``name`` (described by its docstring's first line
    unless ``description`` is given)."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        doc = description or (factory.__doc__ or "").strip().splitlines()[0]
        _add(ModelSpec(name, family, input_kind, factory, search_space, doc))
        return factory

    return wrap


def register_class(
    name: str,
    path: str,
    *,
    family: str,
    description: str,
    input_kind: str = "tabular",
    search_space: SearchSpace | None = None,
) -> None:
    """Register the estimator class at ``path`` (``"package.module:Class"``) under ``name``.

    The model takes exactly the class's constructor parameters, with its defaults, so that
    signature is written once, on the class. Nothing is imported here: the class is imported
    the first time the spec is used, so ``description`` cannot come from its docstring.
    """
    module, colon, qualname = path.partition(":")
    if not (colon and module and qualname):
        raise ValueError(
            f"model {name!r}: {path!r} is not an import path like 'package.module:Class'"
        )
    _add(ModelSpec(name, family, input_kind, path, search_space, description))


def _add(spec: ModelSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec


def _import(name: str, path: str) -> Callable[..., Any]:
    """The class a :func:`register_class` path names (its module is imported if need be)."""
    import importlib

    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for attribute in qualname.split("."):
        try:
            found = getattr(found, attribute)
        except AttributeError:
            raise ImportError(f"model {name!r}: {path!r} names nothing in {module}") from None
    if not isinstance(found, type):
        raise TypeError(f"model {name!r}: {path!r} is not a class")
    return found


def get(name: str) -> ModelSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(_REGISTRY))
        raise BenchError(f"unknown model {name!r}{hint}; registered models: {known}") from None


def create(name: str, **params: Any) -> Any:
    return get(name).create(**params)


def list_models(family: str | None = None, input_kind: str | None = None) -> list[ModelSpec]:
    _load_builtin()
    return [
        spec
        for spec in sorted(_REGISTRY.values(), key=lambda s: (s.family, s.name))
        if (family is None or spec.family == family)
        and (input_kind is None or spec.input_kind == input_kind)
    ]


def _load_builtin() -> None:
    """Import the modules whose decorators fill the registry (cheap: no heavy imports)."""
    import bench.models.audio  # noqa: F401
    import bench.models.ensembles  # noqa: F401
    import bench.models.mlp  # noqa: F401
    import bench.models.tabular  # noqa: F401
