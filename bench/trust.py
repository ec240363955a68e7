"""Bounds and consistency checks on a model file, before and after skops builds it.

skops refuses types bench does not trust (:data:`bench.artifacts.TRUSTED_TYPES`), but a file made
only of trusted types can still hurt the process that loads it:

- **memory**: skops reads every numpy member of the zip into memory to list the file's types,
  so a 1 MB file whose members inflate to gigabytes exhausts memory before any type is
  refused. :func:`check_archive` reads only the zip's directory and each ``.npy`` header first:
  the declared sizes (Python's zipfile never returns more than a member declares) must stay
  within :func:`max_model_bytes` and a compression ratio, and each array's declared shape
  must account for exactly the bytes its member holds;
- **recursion**: a schema nested thousands of levels deep overflows the parser's stack;
- **indices**: scikit-learn's ``Tree`` and histogram-boosting ``TreePredictor`` follow their
  node arrays' child and feature indices without bounds checks, so one out-of-range index
  crashes the process (a segfault) when it predicts. Building them only copies the arrays;
  :func:`check_loaded` validates every index before the model is returned, so before any
  prediction follows one;
- **shape**: the loaded object must be a fitted classifier (``predict_proba``, ``classes_``).

Torch models compare their stored weights with the shapes their hyper-parameters imply on
PyTorch's ``meta`` device before allocating anything
(:meth:`bench.models.torch_estimator.TorchClassifier.__setstate__`), so ``hidden_sizes =
(20000, 20000)`` in a 6 KB file is refused rather than allocated.

Every refusal is a :class:`~bench.errors.BenchError` of one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

DEFAULT_MAX_MODEL_BYTES = 4 << 30
"""Largest total unpacked size of a model file, unless ``$BENCH_MAX_MODEL_BYTES`` says otherwise.
The largest model bench logs on GTZAN (``ensemble``: 5 bags of forests, boosters and MLPs)
unpacks to about 100 MB; a forest on a 100,000-row table grows with its rows."""
MAX_RATIO = 200
"""Largest unpacked / packed size of a whole model file above :data:`SMALL_BYTES` (bench
saves with deflate level 1: a forest packs about 6x; a zip bomb, thousands)."""
SMALL_BYTES = 64 << 20
"""Below this many unpacked bytes the ratio is not checked: too small to hurt."""
MAX_MEMBERS = 1_000_000
MAX_DEPTH = 400
"""Deepest nesting of the schema (a fitted ``ensemble`` nests about 30 levels)."""
_TREE = "sklearn.tree._tree.Tree"
_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def max_model_bytes() -> int:
    """``$BENCH_MAX_MODEL_BYTES`` (bytes), else :data:`DEFAULT_MAX_MODEL_BYTES`."""
    raw = os.environ.get("BENCH_MAX_MODEL_BYTES", "")
    if not raw:
        return DEFAULT_MAX_MODEL_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise BenchError(f"BENCH_MAX_MODEL_BYTES={raw!r}: expected a positive number of bytes")
    return int(raw)


def check_archive(path: Path) -> None:
    """Refuse ``path`` unless its declared sizes, its schema's depth and every array header are
    within bounds. Reads the zip's directory, the schema and the ``.npy`` headers only."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_sizes(path, infos)
            _check_schema(path, zf)
            for info in infos:
                if info.filename.endswith(".npy"):
                    _check_array(path, zf, info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BenchError(f"{path}: not a skops model file ({exc})") from None


def _check_sizes(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise BenchError(f"{path}: {len(infos):,} members, over the limit of {MAX_MEMBERS:,}")
    total = sum(info.file_size for info in infos)
    limit = max_model_bytes()
    if total > limit:
        raise BenchError(
            f"{path}: unpacks to {total:,} bytes, over the limit of {limit:,} "
            "(raise it with BENCH_MAX_MODEL_BYTES if you trust the file)"
        )
    packed = max(path.stat().st_size, 1)
    if total > SMALL_BYTES and total > MAX_RATIO * packed:
        raise BenchError(
            f"{path}: unpacks to {total:,} bytes from {packed:,} "
            f"({total // packed:,}x, over the {MAX_RATIO}x a model file can compress)"
        )


def _check_schema(path: Path, zf: zipfile.ZipFile) -> None:
    try:
        schema = json.loads(zf.read("schema.json"))
    except KeyError:
        raise BenchError(f"{path}: not a skops model file (no schema.json)") from None
    except RecursionError:
        raise BenchError(f"{path}: schema nested too deeply to read") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: schema.json is not JSON ({exc})") from None
    depth = _depth(schema)
    if depth > MAX_DEPTH:
        raise BenchError(f"{path}: schema nested {depth} levels deep, over {MAX_DEPTH}")


def _depth(value: Any) -> int:
    """The nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _check_array(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """The array's header must declare a plain dtype and exactly the bytes the member holds:
    numpy allocates the declared shape before it reads."""
    fmt = np.lib.format
    name = info.filename
    try:
        with zf.open(info) as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            header = f.tell()
    except (ValueError, SyntaxError, TypeError) as exc:
        raise BenchError(f"{path}: array {name} has a malformed header ({exc})") from None
    if dtype.hasobject:
        raise BenchError(f"{path}: array {name} holds Python objects")
    declared = math.prod(shape) * dtype.itemsize
    if header + declared != info.file_size:
        raise BenchError(
            f"{path}: array {name} declares shape {shape} ({declared:,} bytes) "
            f"but holds {info.file_size - header:,}"
        )


def check_loaded(model: Any, path: Path) -> None:
    """Refuse a loaded object that is not a fitted classifier, or whose trees hold an index
    outside their node or feature arrays."""
    if isinstance(model, type) or not (
        callable(getattr(model, "predict_proba", None)) and hasattr(model, "classes_")
    ):
        raise BenchError(f"{path}: holds a {type(model).__name__}, not a fitted classifier")
    for owner, tree in _trees(model):
        problem = _tree_problem(tree, getattr(owner, "n_features_in_", None))
        if problem:
            raise BenchError(f"{path}: a {type(tree).__name__} {problem}")


def _trees(root: Any) -> Iterator[tuple[Any, Any]]:
    """Every tree in the object graph under ``root``, with the nearest object above it that
    knows its number of input features."""
    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(root, None)]
    while stack:
        item, owner = stack.pop()
        if id(item) in seen or isinstance(item, str | bytes | np.ndarray | int | float):
            continue
        seen.add(id(item))
        if f"{type(item).__module__}.{type(item).__qualname__}" in (_TREE, _PREDICTOR):
            yield owner, item
        if hasattr(item, "n_features_in_"):
            owner = item
        if isinstance(item, dict):
            stack.extend((v, owner) for v in item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend((v, owner) for v in item)
        elif hasattr(item, "__dict__"):
            stack.extend((v, owner) for v in vars(item).values())


def _tree_problem(tree: Any, n_features: int | None) -> str | None:
    if type(tree).__name__ == "TreePredictor":
        nodes = tree.nodes
        left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
        feature, internal = nodes["feature_idx"].astype(np.int64), nodes["is_leaf"] == 0
        features = n_features
        categorical = nodes["is_categorical"].astype(bool) & internal
        bitsets = len(getattr(tree, "raw_left_cat_bitsets", ()))
        if (nodes["bitset_idx"][categorical] >= bitsets).any():
            return "has a categorical split outside its bitsets"
    else:
        left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        feature, internal = tree.feature.astype(np.int64), tree.children_left != -1
        features = tree.n_features
        if n_features is not None and n_features != tree.n_features:
            return f"expects {tree.n_features} features where its model has {n_features}"
        if not np.array_equal(tree.children_left == -1, tree.children_right == -1):
            return "has a node with one child"
    n = len(left)
    index = np.arange(n)[internal]
    for side, child in (("left", left[internal]), ("right", right[internal])):
        # children come after their parent: in range, and no cycle
        if ((child <= index) | (child >= n)).any():
            return f"has a {side} child index outside its {n} nodes"
    if features is not None and ((feature[internal] < 0) | (feature[internal] >= features)).any():
        return f"splits on a feature outside its {features}"
    return None
