"""Download and unpack a GTZAN archive, checked against a pinned sha256.

Nothing can be downloaded at run time here, but users elsewhere fetch the Kaggle archive; the code
that does it is real and is tested against a local HTTP server.

Example::

    from pathlib import Path
    from bench.data.download import fetch
    root = fetch("https://example.org/gtzan.zip", "<sha256>", Path("data/gtzan"), progress=True)
    # root is the folder holding genres_original/ (Kaggle's Data/)
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from bench.errors import DataError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SCHEMES = ("http", "https", "file")
_UNPACK_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
)
# the "data" filter (Python >= 3.11.4) also refuses what _check_tar_member may have missed
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def fetch(
    url: str, sha256: str | None, out: Path, *, progress: bool = False, timeout: float = 60
) -> Path:
    """Download ``url``, check its sha256, unpack it into ``out`` and return the GTZAN root.

    The archive (zip or tar, optionally .gz/.bz2/.xz) is streamed to a temporary file next to
    ``out`` and deleted once unpacked or rejected. Members with absolute paths, ``..`` or links
    leading outside ``out`` are refused before anything is written. The GTZAN root is the
    shallowest folder under ``out`` that contains ``genres_original/`` (Kaggle's ``Data/``).
    With ``sha256=None`` the actual digest is logged as a warning, so that it can be pinned.
    """
    out = Path(out)
    expected = _check_digest(sha256, url)
    if urllib.parse.urlsplit(url).scheme.lower() not in _SCHEMES:
        raise DataError(f"{url}: unsupported URL scheme; use one of {', '.join(_SCHEMES)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    archive = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            actual = _download(url, f, progress, timeout)
        if expected is None:
            logger.warning("%s: no sha256 given; the download has sha256 %s (pin it)", url, actual)
        elif actual != expected:
            raise DataError(
                f"{url}: sha256 mismatch: expected {expected}, got {actual}; download deleted"
            )
        _unpack(archive, out, url)
    finally:
        archive.unlink(missing_ok=True)
    return _gtzan_root(out, url)


def _check_digest(sha256: str | None, url: str) -> str | None:
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"{url}: {sha256!r} is not a sha256 digest (64 hex digits)")
    return digest


def _download(url: str, f, progress: bool, timeout: float) -> str:
    """Stream ``url`` into the open file ``f``; return the hex sha256 of what was written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            with tqdm(
                total=int(size) if size and size.isdigit() else None,
                unit="B",
                unit_scale=True,
                desc=Path(urllib.parse.urlsplit(url).path).name or url,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: download failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DataError(f"{url}: download failed: {e.reason}") from e
    except (OSError, ValueError) as e:  # timeouts, resets, malformed URLs
        raise DataError(f"{url}: download failed: {e}") from e
    return digest.hexdigest()


def _unpack(archive: Path, out: Path, url: str) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, url)
                out.mkdir(parents=True, exist_ok=True)
                zf.extractall(out)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_tar_member(member, url)
                out.mkdir(parents=True, exist_ok=True)
                tf.extractall(out, members=members, **_TAR_FILTER)
        else:
            raise DataError(f"{url}: not a zip or tar archive")
    except _UNPACK_ERRORS as e:
        raise DataError(f"{url}: cannot unpack the archive: {e}") from e


def _check_member(name: str, url: str) -> PurePosixPath:
    """Refuse a member name that is absolute or climbs with ``..``."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{url}: unsafe path in archive: {name!r}")
    return path


def _check_tar_member(member: tarfile.TarInfo, url: str) -> None:
    path = _check_member(member.name, url)
    if member.isdev() or member.isfifo():
        raise DataError(f"{url}: archive member {member.name!r} is a device or pipe")
    if member.issym() or member.islnk():
        # a symlink resolves from its own folder, a hard link from the archive's root
        target = PurePosixPath(member.linkname.replace("\\", "/"))
        resolved = path.parent / target if member.issym() else target
        if target.is_absolute() or _climbs_out(resolved):
            raise DataError(
                f"{url}: archive member {member.name!r} links outside the archive "
                f"to {member.linkname!r}"
            )


def _climbs_out(path: PurePosixPath) -> bool:
    """Whether a relative path, resolved lexically, goes above its starting folder."""
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else int(part != ".")
        if depth < 0:
            return True
    return False


def _gtzan_root(out: Path, url: str) -> Path:
    found = [p.parent for p in out.rglob("genres_original") if p.is_dir()]
    found = [p for p in found if "__MACOSX" not in p.parts]
    if not found:
        raise DataError(
            f"{url}: unpacked into {out}, but found no folder containing genres_original/ "
            "(expected the Kaggle GTZAN layout, e.g. Data/genres_original/<genre>/*.wav)"
        )
    return min(found, key=lambda p: (len(p.parts), str(p)))
