"""One-line errors, never tracebacks, for bad inputs found in issue 25: a suite file that is not
UTF-8, a --reports-dir that is a file, and `bench tune` without data (which left an empty
optuna.journal behind)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_error

from bench.errors import BenchError
from bench.report import report_folder

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"


@pytest.fixture
def latin1_suite(tmp_path: Path) -> Path:
    """The smoke suite with a Latin-1 comment: valid TOML bytes, except that TOML is UTF-8."""
    path = tmp_path / "suites" / "latin1.toml"
    path.parent.mkdir()
    path.write_bytes("# café\n".encode("latin-1") + SMOKE.read_bytes())
    return path


def test_non_utf8_suite_file_is_one_line(capsys, latin1_suite: Path) -> None:
    line = one_error(capsys, ["run", "--suite", str(latin1_suite)])
    assert line == (
        f"bench: error: {latin1_suite}: not UTF-8 text (byte 0xe9 at offset 5); suite files "
        "are TOML, which is UTF-8"
    )
    assert one_error(capsys, ["tune", "mlp", "--suite", str(latin1_suite)]) == line


def test_non_utf8_suite_among_listed_suites_is_one_line(
    capsys, latin1_suite: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BENCH_SUITES", str(latin1_suite.parent))
    assert f"{latin1_suite}: not UTF-8 text" in one_error(capsys, ["suites"])


def test_console_script_non_utf8_suite_has_no_traceback(latin1_suite: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--suite", str(latin1_suite)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"bench: error: {latin1_suite}: not UTF-8 text")


def test_reports_dir_that_is_a_file_is_one_line(capsys, tmp_path: Path) -> None:
    reports = tmp_path / "reports.md"
    reports.write_text("mine")
    expected = f"bench: error: {reports}: --reports-dir is a file, not a folder"
    assert (
        one_error(capsys, ["report", "--suite", "smoke", "--reports-dir", str(reports)]) == expected
    )
    argv = ["report", "--suites", "smoke,gtzan", "--reports-dir", str(reports)]
    assert one_error(capsys, argv) == expected
    # bench run says so before it runs anything, not after the suite
    assert one_error(capsys, ["run", "--suite", "smoke", "--reports-dir", str(reports)]) == expected
    assert not (tmp_path / "mlflow.db").exists()
    assert reports.read_text() == "mine"


def test_report_folder_blocked_by_a_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "smoke").write_text("in the way")
    with pytest.raises(BenchError, match=r"reports/smoke: cannot create the report folder"):
        report_folder(tmp_path / "reports", "smoke")
    assert report_folder(tmp_path / "reports", "gtzan").is_dir()


def test_tune_without_data_leaves_no_journal(capsys, tmp_path: Path) -> None:
    argv = ["tune", "mlp", "--suite", "gtzan", "--data-dir", "/nonexistent", "--trials", "1"]
    line = one_error(capsys, argv)
    assert line == "bench: error: /nonexistent: data directory does not exist"
    assert sorted(p.name for p in tmp_path.glob("optuna.journal*")) == []
    default = ["tune", "mlp", "--suite", "gtzan", "--trials", "1"]  # no --data-dir, no ./data
    assert "gtzan data not found at" in one_error(capsys, default)
    assert sorted(p.name for p in tmp_path.glob("optuna.journal*")) == []
