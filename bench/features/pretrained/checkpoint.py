"""Read a TensorFlow checkpoint bundle (``.index`` + ``.data-00000-of-00001``) with numpy only.

musicnn's weights ship as TF1 checkpoints, and TensorFlow cannot be a dependency of bench (the
original code pins ``numpy<1.17``; TensorFlow itself is ~600 MB). The format needs no TF:

- ``.index`` is an uncompressed LevelDB table: data blocks of prefix-compressed
  ``key -> value`` entries, an index block pointing at them, and a 48-byte footer ending in
  the magic number ``0xdb4775248b80fb57``. Keys are tensor names (the empty key holds the
  bundle header); values are serialized ``BundleEntryProto`` messages: dtype (1), shape (2),
  shard id (3), offset (4), size (5), crc32c (6).
- ``.data-00000-of-00001`` holds each tensor's bytes, little-endian, at its offset.

Only what a TF1 ``Saver`` of float variables writes is supported (one shard, no slices, no
compression); anything else is a one-line :class:`~bench.errors.BenchError`. The entries'
crc32c are not checked here: the weights are checked by the SHA-256 of the wheel they come
from (:mod:`bench.features.pretrained.weights`).

Example::

    tensors = read_checkpoint(Path("musicnn/MSD_musicnn/"), prefix="")
    tensors["model/dense/kernel"].shape  # (..., 200)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from bench.errors import BenchError

TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_BLOCK_TRAILER = 5  # compression type (1 byte) + crc32 (4 bytes) after every block
# tensorflow/core/framework/types.proto: the dtypes a checkpoint of a TF1 model holds
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A protobuf/LevelDB base-128 varint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _block_entries(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block at ``offset``: keys are prefix-compressed against
    the previous key; the block ends with its restart points (uint32 each) and their count."""
    block = table[offset : offset + size]
    if table[offset + size] != 0:
        raise BenchError("checkpoint index block is compressed; only uncompressed tables are read")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def read_index(path: Path) -> dict[str, bytes]:
    """Every ``key -> value`` of a LevelDB table file (the bundle's ``.index``), in key order."""
    table = Path(path).read_bytes()
    if len(table) < _FOOTER:
        raise BenchError(f"{path}: too short to be a TensorFlow checkpoint index")
    footer = table[-_FOOTER:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER - 8)
    if magic != TABLE_MAGIC:
        raise BenchError(f"{path}: not a TensorFlow checkpoint index (bad magic {magic:#x})")
    _, pos = _varint(footer, 0)  # metaindex handle: offset, size (no filter blocks here)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    found: dict[str, bytes] = {}
    for _, handle in _block_entries(table, index_offset, index_size):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        for key, value in _block_entries(table, offset, size):
            found[key.decode()] = value
    return found


def parse_entry(message: bytes) -> dict[str, object]:
    """The fields of a ``BundleEntryProto`` that locate a tensor: dtype, shape, shard, offset,
    size (protobuf wire format: varints and length-delimited fields; others skipped)."""
    entry: dict[str, object] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0}
    names = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
            if field in names:
                entry[names[field]] = value
        elif wire == 2:
            length, pos = _varint(message, pos)
            body = message[pos : pos + length]
            pos += length
            if field == 2:
                entry["shape"] = _parse_shape(body)
            elif field == 7:
                raise BenchError("checkpoint tensor is stored in slices; not supported")
        elif wire == 5:
            pos += 4  # fixed32: the crc32c
        elif wire == 1:
            pos += 8
        else:
            raise BenchError(f"checkpoint entry has an unsupported protobuf wire type {wire}")
    return entry


def _parse_shape(message: bytes) -> tuple[int, ...]:
    """``TensorShapeProto``: repeated ``dim`` (field 2), each a message whose field 1 is size."""
    dims, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        if tag >> 3 == 2 and tag & 7 == 2:
            length, pos = _varint(message, pos)
            dim, inner = message[pos : pos + length], 0
            pos += length
            size = 0
            while inner < len(dim):
                dim_tag, inner = _varint(dim, inner)
                if dim_tag & 7 == 0:
                    value, inner = _varint(dim, inner)
                    if dim_tag >> 3 == 1:
                        size = value
                else:  # the dim's name: skip it
                    skip, inner = _varint(dim, inner)
                    inner += skip
            dims.append(size)
        elif tag & 7 == 0:
            _, pos = _varint(message, pos)  # unknown_rank
        else:
            raise BenchError("checkpoint tensor shape is malformed")
    return tuple(dims)


def read_checkpoint(folder: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Every tensor of the bundle ``folder/prefix`` (``.index`` and ``.data-00000-of-00001``),
    by name, as numpy arrays (copies: nothing refers to the file afterwards)."""
    folder = Path(folder)
    index = read_index(folder / f"{prefix}.index")
    data = (folder / f"{prefix}.data-00000-of-00001").read_bytes()
    tensors: dict[str, np.ndarray] = {}
    for name, value in index.items():
        if not name:  # the BundleHeaderProto
            continue
        entry = parse_entry(value)
        if entry["shard_id"] != 0:
            raise BenchError(f"{folder}: tensor {name} is in another shard; not supported")
        dtype = _DTYPES.get(int(entry["dtype"]))  # type: ignore[arg-type]
        if dtype is None:
            raise BenchError(f"{folder}: tensor {name} has unsupported dtype {entry['dtype']}")
        offset, size = int(entry["offset"]), int(entry["size"])  # type: ignore[arg-type]
        if offset + size > len(data):
            raise BenchError(f"{folder}: tensor {name} lies beyond the end of its data file")
        array = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                              offset=offset)  # fmt: skip
        tensors[name] = array.reshape(entry["shape"]).copy()  # type: ignore[arg-type]
    return tensors
