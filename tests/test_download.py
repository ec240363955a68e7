"""bench.data.download.fetch against a local HTTP server: checksums, unpacking, unsafe archives."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import logging
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from bench.data.download import fetch
from bench.errors import DataError

KAGGLE_FILES = {
    "Data/genres_original/blues/blues.00000.wav": b"RIFF not really audio",
    "Data/genres_original/rock/rock.00000.wav": b"RIFF not really audio either",
    "Data/features_30_sec.csv": b"filename,length,label\nblues.00000.wav,661794,blues\n",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _write_tar(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder served over http://127.0.0.1:<port>/ from a background thread."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_zip_with_right_checksum_returns_data_folder(served, tmp_path):
    root, base = served
    archive = _write_zip(root / "gtzan.zip", KAGGLE_FILES)
    dest = tmp_path / "dl" / "gtzan"
    got = fetch(f"{base}/gtzan.zip", _sha256(archive), dest)
    assert got == dest / "Data"
    assert (got / "genres_original" / "blues" / "blues.00000.wav").read_bytes().startswith(b"RIFF")
    assert (got / "features_30_sec.csv").exists()
    assert _leftovers(dest.parent) == ["gtzan"]  # the temporary download is gone


def test_tar_gz_with_right_checksum_returns_data_folder(served, tmp_path):
    root, base = served
    archive = _write_tar(root / "gtzan.tar.gz", KAGGLE_FILES)
    got = fetch(f"{base}/gtzan.tar.gz", _sha256(archive).upper(), tmp_path / "gtzan")
    assert got == tmp_path / "gtzan" / "Data"
    assert (got / "genres_original" / "rock" / "rock.00000.wav").exists()


def test_file_url_and_unpinned_checksum_warns_with_digest(tmp_path, caplog):
    archive = _write_zip(tmp_path / "gtzan.zip", KAGGLE_FILES)
    with caplog.at_level(logging.WARNING, logger="bench.data.download"):
        got = fetch(archive.as_uri(), None, tmp_path / "out")
    assert got == tmp_path / "out" / "Data"
    assert _sha256(archive) in caplog.text


def test_wrong_checksum_raises_and_leaves_nothing(served, tmp_path):
    root, base = served
    archive = _write_zip(root / "gtzan.zip", KAGGLE_FILES)
    wrong = "0" * 64
    with pytest.raises(DataError, match="sha256 mismatch") as err:
        fetch(f"{base}/gtzan.zip", wrong, tmp_path / "dl" / "gtzan")
    assert wrong in str(err.value) and _sha256(archive) in str(err.value)
    assert _leftovers(tmp_path / "dl") == []


def test_malformed_checksum_is_refused_before_download(tmp_path):
    with pytest.raises(DataError, match="not a sha256"):
        fetch("http://127.0.0.1:9/x.zip", "abc", tmp_path / "gtzan")


def test_zip_member_climbing_out_is_refused(served, tmp_path):
    root, base = served
    _write_zip(root / "evil.zip", {**KAGGLE_FILES, "../evil": b"gotcha"})
    dest = tmp_path / "dl" / "gtzan"
    with pytest.raises(DataError, match="unsafe path"):
        fetch(f"{base}/evil.zip", None, dest)
    assert not (tmp_path / "dl" / "evil").exists()
    assert _leftovers(tmp_path / "dl") == []  # refused before anything was unpacked


def test_absolute_tar_member_is_refused(served, tmp_path):
    root, base = served
    _write_tar(root / "abs.tar.gz", {**KAGGLE_FILES, "/tmp/evil": b"gotcha"})
    with pytest.raises(DataError, match="unsafe path"):
        fetch(f"{base}/abs.tar.gz", None, tmp_path / "gtzan")


def test_tar_symlink_pointing_outside_is_refused(served, tmp_path):
    root, base = served
    _write_tar(root / "link.tar.gz", KAGGLE_FILES, links={"Data/escape": "../../outside"})
    with pytest.raises(DataError, match="links outside"):
        fetch(f"{base}/link.tar.gz", None, tmp_path / "gtzan")


def test_archive_without_gtzan_layout_says_what_was_expected(served, tmp_path):
    root, base = served
    _write_zip(root / "other.zip", {"stuff/readme.txt": b"hello"})
    with pytest.raises(DataError, match="genres_original"):
        fetch(f"{base}/other.zip", None, tmp_path / "gtzan")


def test_non_archive_is_refused(served, tmp_path):
    root, base = served
    (root / "page.html").write_text("<html>not an archive</html>")
    with pytest.raises(DataError, match="not a zip or tar"):
        fetch(f"{base}/page.html", None, tmp_path / "gtzan")


def test_http_error_is_one_line(served, tmp_path):
    _, base = served
    with pytest.raises(DataError, match="HTTP 404") as err:
        fetch(f"{base}/missing.zip", None, tmp_path / "gtzan")
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_unreachable_url_raises_data_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and is now closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gtzan.zip"
    with pytest.raises(DataError, match="download failed") as err:
        fetch(url, None, tmp_path / "gtzan", timeout=5)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_unsupported_scheme_is_refused(tmp_path):
    with pytest.raises(DataError, match="unsupported URL scheme"):
        fetch("ftp://example.org/gtzan.zip", None, tmp_path / "gtzan")
