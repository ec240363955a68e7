"""bench.data.download.fetch against a local HTTP server: checksums, unpacking, unsafe archives."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.download import MAX_SIZE, fetch, parse_size
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


def test_file_url_with_checksum(tmp_path):
    archive = _write_zip(tmp_path / "gtzan.zip", KAGGLE_FILES)
    got = fetch(archive.as_uri(), _sha256(archive), tmp_path / "out")
    assert got == tmp_path / "out" / "Data"


@pytest.mark.parametrize("digest", [None, "", "  "])
def test_missing_checksum_is_refused_before_download(tmp_path, digest):
    archive = _write_zip(tmp_path / "gtzan.zip", KAGGLE_FILES)
    with pytest.raises(DataError, match="a sha256 is required") as err:
        fetch(archive.as_uri(), digest, tmp_path / "dl" / "gtzan")
    assert "sha256sum" in str(err.value)  # says how to get one
    assert not (tmp_path / "dl").exists()


def test_cli_requires_sha256(tmp_path, capsys):
    archive = _write_zip(tmp_path / "gtzan.zip", KAGGLE_FILES)
    with pytest.raises(SystemExit) as exit_:
        main(["data", "fetch", "gtzan", "--url", archive.as_uri(), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    assert "the following arguments are required: --sha256" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


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
    archive = _write_zip(root / "evil.zip", {**KAGGLE_FILES, "../evil": b"gotcha"})
    dest = tmp_path / "dl" / "gtzan"
    with pytest.raises(DataError, match="unsafe path"):
        fetch(f"{base}/evil.zip", _sha256(archive), dest)
    assert not (tmp_path / "dl" / "evil").exists()
    assert _leftovers(tmp_path / "dl") == []  # refused before anything was unpacked


def test_absolute_tar_member_is_refused(served, tmp_path):
    root, base = served
    archive = _write_tar(root / "abs.tar.gz", {**KAGGLE_FILES, "/tmp/evil": b"gotcha"})
    with pytest.raises(DataError, match="unsafe path"):
        fetch(f"{base}/abs.tar.gz", _sha256(archive), tmp_path / "gtzan")


def test_tar_symlink_pointing_outside_is_refused(served, tmp_path):
    root, base = served
    archive = _write_tar(root / "link.tar.gz", KAGGLE_FILES, links={"Data/escape": "../../x"})
    with pytest.raises(DataError, match="links outside"):
        fetch(f"{base}/link.tar.gz", _sha256(archive), tmp_path / "gtzan")


def test_archive_without_gtzan_layout_says_what_was_expected(served, tmp_path):
    root, base = served
    archive = _write_zip(root / "other.zip", {"stuff/readme.txt": b"hello"})
    with pytest.raises(DataError, match="genres_original"):
        fetch(f"{base}/other.zip", _sha256(archive), tmp_path / "gtzan")
    assert _leftovers(tmp_path) == []  # what was unpacked to look is gone


def test_non_archive_is_refused(served, tmp_path):
    root, base = served
    (root / "page.html").write_text("<html>not an archive</html>")
    with pytest.raises(DataError, match="not a zip or tar"):
        fetch(f"{base}/page.html", _sha256(root / "page.html"), tmp_path / "gtzan")


def test_http_error_is_one_line(served, tmp_path):
    _, base = served
    with pytest.raises(DataError, match="HTTP 404") as err:
        fetch(f"{base}/missing.zip", "0" * 64, tmp_path / "gtzan")
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_unreachable_url_raises_data_error(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and is now closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gtzan.zip"
    with pytest.raises(DataError, match="download failed") as err:
        fetch(url, "0" * 64, tmp_path / "gtzan", timeout=5)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_unsupported_scheme_is_refused(tmp_path):
    with pytest.raises(DataError, match="unsupported URL scheme"):
        fetch("ftp://example.org/gtzan.zip", "0" * 64, tmp_path / "gtzan")


def _zip_bomb(path: Path, zeros: int = 16 << 20) -> Path:
    """A Kaggle-layout zip plus one clip of zeros that deflates ~1000x."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in KAGGLE_FILES.items():
            zf.writestr(name, data)
        zf.writestr("Data/genres_original/blues/blues.00001.wav", bytes(zeros))
    return path


def test_zip_bomb_is_refused_by_its_ratio_before_anything_is_written(served, tmp_path):
    root, base = served
    archive = _zip_bomb(root / "bomb.zip")
    assert archive.stat().st_size < 100_000
    with pytest.raises(DataError, match="like a zip bomb") as err:
        fetch(f"{base}/bomb.zip", _sha256(archive), tmp_path / "dl" / "gtzan")
    message = str(err.value)
    assert "\n" not in message and f"{base}/bomb.zip" in message
    assert f"({archive.stat().st_size} bytes)" in message and "100 times" in message
    assert _leftovers(tmp_path / "dl") == []


def test_total_size_limit_is_checked_from_declared_sizes(served, tmp_path):
    root, base = served
    archive = _zip_bomb(root / "bomb.zip")
    # the ratio allowed, the size is still bounded
    with pytest.raises(DataError, match=r"more than 8\.0 MiB \(8388608 bytes\) \(--max-size\)"):
        fetch(f"{base}/bomb.zip", _sha256(archive), tmp_path / "gtzan", max_size=8 << 20,
              max_ratio=10_000)  # fmt: skip
    assert _leftovers(tmp_path) == []
    got = fetch(f"{base}/bomb.zip", _sha256(archive), tmp_path / "gtzan", max_ratio=10_000)
    assert (got / "genres_original/blues/blues.00001.wav").stat().st_size == 16 << 20


def test_tar_member_declaring_a_terabyte_is_refused_before_it_is_read(tmp_path):
    huge = tarfile.TarInfo("Data/genres_original/blues/blues.00000.wav")
    huge.size = 1 << 40  # declared, never written: the check must not read its data
    path = tmp_path / "huge.tar.gz"
    with gzip.open(path, "wb") as f:
        f.write(huge.tobuf(tarfile.PAX_FORMAT) + bytes(4096))
    with pytest.raises(DataError, match=r"more than 8\.0 GiB .* after 1 member"):
        fetch(path.as_uri(), _sha256(path), tmp_path / "out")
    assert _leftovers(tmp_path) == ["huge.tar.gz"]


def test_archive_larger_than_free_space_is_refused(served, tmp_path, monkeypatch):
    root, base = served
    archive = _write_zip(root / "gtzan.zip", KAGGLE_FILES)
    monkeypatch.setattr(
        "bench.data.download.shutil.disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 10)
    )
    with pytest.raises(DataError, match=r"but .* has only 10 bytes free"):
        fetch(f"{base}/gtzan.zip", _sha256(archive), tmp_path / "gtzan")
    assert _leftovers(tmp_path) == []


def test_download_larger_than_the_limit_stops(served, tmp_path):
    root, base = served
    archive = _write_zip(root / "gtzan.zip", {**KAGGLE_FILES, "pad": os.urandom(4096)})
    with pytest.raises(DataError, match=r"over the 1\.0 KiB \(1024 bytes\) limit"):
        fetch(f"{base}/gtzan.zip", _sha256(archive), tmp_path / "gtzan", max_size=1024)
    assert _leftovers(tmp_path) == []


def test_refused_symlink_chain_leaves_no_partial_extraction(served, tmp_path):
    """Each link is harmless on its own (``Data/x -> ..`` stays inside), but ``Data/x/y -> ..``
    goes through ``Data/x`` to the folder above; tarfile's filter refuses it mid-extraction,
    after the clips were written."""
    root, base = served
    links = {"Data/x": "..", "Data/x/y": ".."}
    archive = _write_tar(root / "chain.tar.gz", KAGGLE_FILES, links=links)
    dest = tmp_path / "dl" / "gtzan"
    with pytest.raises(DataError, match="cannot unpack the archive") as err:
        fetch(f"{base}/chain.tar.gz", _sha256(archive), dest)
    assert "nothing was kept" in str(err.value)
    assert _leftovers(tmp_path / "dl") == []  # no out, no temporary folder, no download


def test_out_that_is_not_empty_is_refused_before_download(served, tmp_path):
    root, base = served
    archive = _write_zip(root / "gtzan.zip", KAGGLE_FILES)
    (tmp_path / "gtzan").mkdir()
    (tmp_path / "gtzan" / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not an empty folder"):
        fetch(f"{base}/gtzan.zip", _sha256(archive), tmp_path / "gtzan")
    assert _leftovers(tmp_path / "gtzan") == ["mine.txt"]
    (tmp_path / "gtzan" / "mine.txt").unlink()  # an empty folder is filled
    assert fetch(f"{base}/gtzan.zip", _sha256(archive), tmp_path / "gtzan").is_dir()


def test_cli_refusal_is_one_line_naming_archive_and_numbers(served, tmp_path, capsys):
    root, base = served
    archive = _zip_bomb(root / "bomb.zip")
    url = f"{base}/bomb.zip"
    out = tmp_path / "gtzan"
    argv = ["data", "fetch", "gtzan", "--url", url, "--sha256", _sha256(archive), "--out", str(out)]
    assert main([*argv, "--max-size", "2M", "--max-ratio", "1e6"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"bench: error: {url}: ")
    assert "2.0 MiB (2097152 bytes) (--max-size)" in err[0]
    assert main(argv) == 2
    assert "100 times" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "text, size", [("8G", 8 << 30), ("500M", 500 << 20), ("1.5GiB", 3 << 29), ("123", 123)]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_default_limit_fits_real_gtzan_and_help_says_it(capsys):
    assert MAX_SIZE == 8 << 30  # Kaggle's GTZAN unpacks to ~1.3 GB
    with pytest.raises(SystemExit):
        main(["data", "fetch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-size" in text and "default: 8G" in text and "sha256sum" in text
