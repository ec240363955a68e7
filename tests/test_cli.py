"""The command line: instant help, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import one_error

from bench.cli import main


def test_help_and_models_import_neither_torch_nor_mlflow() -> None:
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        "for argv in (['--help'], ['run', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "main(['models'])\n"
        "names = ('torch', 'mlflow', 'xgboost', 'sklearn', 'torchaudio')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    assert "xgboost" in out and "boosting" in out  # `bench models` listed the registry


def test_models_lists_registry(capsys) -> None:
    assert main(["models", "--family", "baseline"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["logreg", "svm"]


def test_suites_lists_shipped_suites(capsys) -> None:
    assert main(["suites"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"gtzan", "smoke"} <= set(names)


def test_unknown_suite(capsys) -> None:
    line = one_error(capsys, ["run", "--suite", "gtzn"])
    assert "unknown suite 'gtzn'" in line and "gtzan" in line


def test_unknown_model(capsys, tabular_gtzan: Path) -> None:
    line = one_error(
        capsys, ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--models", "xgbost"]
    )
    assert "unknown model 'xgbost' (did you mean 'xgboost'?)" in line and "logreg" in line


def test_missing_data_dir(capsys, tmp_path: Path) -> None:
    line = one_error(capsys, ["run", "--suite", "gtzan", "--data-dir", str(tmp_path / "nowhere")])
    assert "nowhere: data directory does not exist" in line


def test_default_data_missing_says_how_to_get_it(capsys) -> None:
    line = one_error(capsys, ["run", "--suite", "gtzan"])
    assert "data/gtzan" in line and "bench data fetch gtzan" in line and "--data-dir" in line


def test_empty_csv(capsys, tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "features_30_sec.csv").write_text("")
    line = one_error(capsys, ["run", "--suite", "gtzan", "--data-dir", str(tmp_path / "g")])
    assert "features_30_sec.csv: the CSV is empty" in line


def test_csv_without_label(capsys, tabular_gtzan: Path) -> None:
    csv = tabular_gtzan / "features_30_sec.csv"
    csv.write_text(
        "\n".join(",".join(line.split(",")[:-1]) for line in csv.read_text().splitlines())
    )
    line = one_error(capsys, ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan)])
    assert "features_30_sec.csv: no 'label' column" in line


def test_split_list_naming_missing_track(capsys, tabular_gtzan: Path) -> None:
    with (tabular_gtzan / "splits" / "valid_filtered.txt").open("a") as fh:
        fh.write("jazz/jazz.00777.wav\n")
    argv = [
        "run",
        "--suite",
        "gtzan",
        "--data-dir",
        str(tabular_gtzan),
        "--protocol",
        "fault-filtered",
    ]
    line = one_error(capsys, argv)
    assert "valid_filtered.txt: names 1 track(s) not in the dataset, e.g. jazz.00777" in line


def test_report_without_runs(capsys, tmp_path: Path) -> None:
    line = one_error(capsys, ["report", "--suite", "smoke"])
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in line
    assert not (tmp_path / "mlflow.db").exists()  # reading never creates a store
    from bench.tracking import Tracker

    Tracker("other")  # a store with another suite's experiment only
    line = one_error(capsys, ["report", "--suite", "smoke"])
    assert "no runs of suite 'smoke'" in line


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_bad_workers(capsys, tabular_gtzan: Path, workers: str) -> None:
    line = one_error(
        capsys, ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--workers", workers]
    )
    assert "--workers must be at least 1" in line


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    bench = Path(sys.executable).parent / "bench"
    result = subprocess.run([str(bench), "run", "--suite", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("bench: error: unknown suite 'nope'")
        and "Traceback" not in result.stderr
    )
