"""Download and unpack a GTZAN archive, checked against a pinned sha256 and bounded in size.

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
import re
import secrets
import shutil
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

MAX_SIZE = 8 << 30
"""Default bound on an archive's total unpacked size: Kaggle's GTZAN unpacks to ~1.3 GB."""
MAX_RATIO = 100
"""Default bound on unpacked / archive size: audio barely compresses (~1.1x), a zip bomb ~1000x."""
_RATIO_FLOOR = (
    1 << 20
)  # below 1 MiB unpacked, a high ratio cannot hurt and small text files reach it
_MEMBER_OVERHEAD = 512  # a tar header per member: a million empty files are not free
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
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


def fetch(
    url: str,
    sha256: str,
    out: Path,
    *,
    max_size: int = MAX_SIZE,
    max_ratio: float = MAX_RATIO,
    progress: bool = False,
    timeout: float = 60,
) -> Path:
    """Download ``url``, check its sha256, unpack it into ``out`` and return the GTZAN root.

    ``sha256`` is required: an unpinned download could be anything. Take it from the dataset's
    publisher, or run ``sha256sum`` on a copy you trust. The archive (zip or tar, optionally
    .gz/.bz2/.xz) is streamed to a temporary file next to ``out`` and deleted afterwards.

    Before anything is unpacked, every member is checked from the archive's own listing: no
    absolute path, ``..`` or link leading outside; a total declared size of at most ``max_size``
    bytes (the download is bounded by it too), at most ``max_ratio`` times the archive's size
    (a zip bomb's ratio) and within the free disk space. zipfile never writes more than a
    member's declared size and a tar member's size is exact, so these bounds hold on disk.

    The archive is unpacked into a temporary folder beside ``out`` that becomes ``out`` only
    when everything succeeded, so a refused or failed archive leaves nothing behind. ``out``
    must not exist or be an empty folder. The GTZAN root is the shallowest folder under ``out``
    that contains ``genres_original/`` (Kaggle's ``Data/``).
    """
    out = Path(out)
    expected = _check_digest(sha256, url)
    if urllib.parse.urlsplit(url).scheme.lower() not in _SCHEMES:
        raise DataError(f"{url}: unsupported URL scheme; use one of {', '.join(_SCHEMES)}")
    if max_size <= 0 or max_ratio <= 0:
        raise DataError(f"{url}: the size limits must be positive ({max_size}, {max_ratio:g})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not an empty folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    archive = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            actual = _download(url, f, progress, timeout, max_size)
        if actual != expected:
            raise DataError(
                f"{url}: sha256 mismatch: expected {expected}, got {actual}; download deleted"
            )
        staging = _unpack(archive, out, url, max_size, max_ratio)
    finally:
        archive.unlink(missing_ok=True)
    try:
        root = _gtzan_root(staging, url)
        try:
            os.replace(staging, out)  # replaces an empty folder; one filled meanwhile stays
        except OSError as e:
            raise DataError(f"{out}: cannot move the unpacked archive there ({e.strerror})") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / root.relative_to(staging)


def parse_size(text: str) -> int:
    """Bytes of ``8G``, ``500M``, ``1.5GiB`` or ``123456`` (binary units: 1K = 1024)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 8G, 500M or a number of bytes)")
    number, unit = float(match[1]), match[2].upper()
    return int(number * (1 << (10 * " KMGT".index(unit or " "))))


def _size(n: float) -> str:
    """Bytes as people read them: ``1.0 GiB (1073741824 bytes)``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit} ({int(n)} bytes)"
    return f"{int(n)} bytes"


def _check_digest(sha256: str | None, url: str) -> str:
    if not (sha256 or "").strip():
        raise DataError(
            f"{url}: a sha256 is required (from the dataset's publisher, or `sha256sum FILE` of "
            "a copy you trust)"
        )
    digest = sha256.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"{url}: {sha256!r} is not a sha256 digest (64 hex digits)")
    return digest


def _download(url: str, f, progress: bool, timeout: float, max_size: int) -> str:
    """Stream ``url`` into the open file ``f``; return the hex sha256 of what was written.

    An archive larger than ``max_size`` cannot unpack within it, so the download stops there:
    a server that streams forever fills no disk.
    """
    digest = hashlib.sha256()
    written = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            total = int(size) if size and size.isdigit() else None
            if total is not None and total > max_size:
                raise DataError(
                    f"{url}: the archive is {_size(total)}, over the {_size(max_size)} limit "
                    "(--max-size); nothing was downloaded"
                )
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=Path(urllib.parse.urlsplit(url).path).name or url,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    written += len(chunk)
                    if written > max_size:
                        raise DataError(
                            f"{url}: the download passed the {_size(max_size)} limit "
                            "(--max-size); download deleted"
                        )
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: download failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DataError(f"{url}: download failed: {e.reason}") from e
    except (OSError, ValueError) as e:  # timeouts, resets, malformed URLs, a full disk
        raise DataError(f"{url}: download failed: {e}") from e
    return digest.hexdigest()


class _Budget:
    """Running totals of an archive's declared member sizes, refused as soon as one bound is
    passed: a tar is listed member by member, so a bomb stops being read at its first member."""

    def __init__(self, archive: Path, url: str, max_size: int, max_ratio: float) -> None:
        self.url, self.max_size = url, max_size
        self.packed = archive.stat().st_size
        self.max_unpacked = max(max_ratio * self.packed, _RATIO_FLOOR)
        self.max_ratio = max_ratio
        self.total = 0
        self.members = 0

    def add(self, size: int) -> None:
        self.total += size
        self.members += 1
        unpacked = self.total + _MEMBER_OVERHEAD * self.members
        if self.total > self.max_size:
            raise DataError(
                f"{self.url}: the archive unpacks to more than {_size(self.max_size)} (--max-size) "
                f"after {self.members} member(s); nothing was unpacked"
            )
        if unpacked > self.max_unpacked:
            raise DataError(
                f"{self.url}: the archive of {_size(self.packed)} unpacks to more than "
                f"{self.max_ratio:g} times its size ({_size(unpacked)} after {self.members} "
                "member(s)), like a zip bomb (--max-ratio); nothing was unpacked"
            )

    def check_free(self, folder: Path) -> None:
        free = shutil.disk_usage(folder).free
        if self.total > free:
            raise DataError(
                f"{self.url}: the archive unpacks to {_size(self.total)} but {folder} has only "
                f"{_size(free)} free; nothing was unpacked"
            )


def _unpack(archive: Path, out: Path, url: str, max_size: int, max_ratio: float) -> Path:
    """Check every member, then unpack into a new temporary folder beside ``out``; return it.

    On any error the folder is removed, so nothing of a refused archive stays on disk.
    """
    budget = _Budget(archive, url, max_size, max_ratio)
    staging = None
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, url)
                    budget.add(info.file_size)
                budget.check_free(out.parent)
                staging = _staging_folder(out)
                zf.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = []
                while (member := tf.next()) is not None:  # read no further than the last checked
                    _check_tar_member(member, url)
                    budget.add(member.size)
                    members.append(member)
                budget.check_free(out.parent)
                staging = _staging_folder(out)
                tf.extractall(staging, members=members, **_TAR_FILTER)
        else:
            raise DataError(f"{url}: not a zip or tar archive")
    except BaseException as e:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, _UNPACK_ERRORS):
            raise DataError(f"{url}: cannot unpack the archive: {e}; nothing was kept") from e
        raise
    return staging


def _staging_folder(out: Path) -> Path:
    """A new folder beside ``out`` (same file system, so it can be renamed into place), made
    with the user's umask as ``out`` itself would be."""
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.unpacking"
    staging.mkdir()
    return staging


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


def _gtzan_root(staging: Path, url: str) -> Path:
    found = [p.parent for p in staging.rglob("genres_original") if p.is_dir()]
    found = [p for p in found if "__MACOSX" not in p.parts]
    if not found:
        raise DataError(
            f"{url}: the archive holds no folder containing genres_original/ (expected the "
            "Kaggle GTZAN layout, e.g. Data/genres_original/<genre>/*.wav); nothing was kept"
        )
    return min(found, key=lambda p: (len(p.parts), str(p)))
