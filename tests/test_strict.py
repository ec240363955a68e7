"""Suite files and options: anything bench would ignore or misread is a one-line error first."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.suites import load_suite

GOOD = """
name = "mine"
seed = 0
[dataset]
kind = "gtzan"
path = "gtzan"
[protocol]
name = "stratified-kfold"
folds = 2
[budget]
model_seconds = 60
[[models]]
name = "logreg"
params = { C = 0.5 }
"""


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bench: error: ")
    return err[0]


def test_the_good_suite_loads(tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, GOOD)))
    assert suite.models[0].params == {"C": 0.5}
    assert suite.model_seconds == 60.0 and suite.protocol.folds == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("seed = 0", "sead = 0", "top level: unknown key 'sead'; did you mean 'seed'?"),
        (
            "model_seconds = 60",
            "model_secs = 60",
            "[budget]: unknown key 'model_secs'; did you mean 'model_seconds'?",
        ),  # fmt: skip
        (
            "params = { C = 0.5 }",
            "parms = { C = 0.5 }",
            "[[models]] #1: unknown key 'parms'; did you mean 'params'?",
        ),  # fmt: skip
        ('path = "gtzan"', 'pth = "gtzan"', "[dataset]: unknown key 'pth'; did you mean 'path'?"),
        ('path = "gtzan"', "per_genre = 3", "[dataset] of kind 'gtzan': unknown key 'per_genre'"),
        ("folds = 2", "fold = 2", "[protocol]: unknown key 'fold'; did you mean 'folds'?"),
        ("seed = 0", 'seed = "abc"', "top level: seed must be an integer, got string 'abc'"),
        (
            "model_seconds = 60",
            'model_seconds = "x"',
            "[budget]: model_seconds must be a number, got string 'x'",
        ),  # fmt: skip
        ("model_seconds = 60", "model_seconds = -5", "[budget]: model_seconds must be positive"),
        ("folds = 2", "folds = true", "[protocol]: folds must be an integer, got boolean True"),
        ("folds = 2", "folds = 1", "[protocol]: stratified-kfold needs at least 2 folds, got 1"),
    ],
)
def test_a_wrong_suite_is_one_line_naming_file_table_and_key(
    tmp_path: Path, capsys, old: str, new: str, message: str
) -> None:
    assert old in GOOD
    path = _suite(tmp_path, GOOD.replace(old, new, 1))
    assert main(["run", "--suite", str(path)]) == 2
    assert _one_line_error(capsys).startswith(f"bench: error: {path}: {message}")


def test_synthetic_dataset_options_are_checked_too(tmp_path: Path, capsys) -> None:
    text = GOOD.replace('kind = "gtzan"\npath = "gtzan"', 'kind = "synthetic-gtzan"\nper_genr = 3')
    path = _suite(tmp_path, text)
    assert main(["run", "--suite", str(path)]) == 2
    line = _one_line_error(capsys)
    assert "[dataset]: unknown key 'per_genr'; did you mean 'per_genre'?" in line


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            "{ C = 0.5, max_iters = 5 }",
            "model 'logreg' has no parameter 'max_iters' (did you mean 'max_iter'?)",
        ),  # fmt: skip
        ('{ C = "big" }', "model 'logreg': C must be a number, got 'big'"),
    ],
)
def test_model_parameters_are_checked_before_any_data_is_read(
    tmp_path: Path, capsys, params: str, message: str
) -> None:
    path = _suite(tmp_path, GOOD.replace("{ C = 0.5 }", params))
    # no data folder exists: the parameter error must come first
    assert main(["run", "--suite", str(path), "--data-dir", str(tmp_path / "absent")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "mlflow.db").exists()


def test_member_parameters_of_a_stack_are_checked(tmp_path: Path, capsys) -> None:
    text = GOOD.replace(
        'name = "logreg"\nparams = { C = 0.5 }',
        'name = "stack"\nparams = { estimators = ["logreg", "rf"], '
        "estimator_params = { rf = { n_estimator = 5 } } }",
    )
    path = _suite(tmp_path, text)
    assert main(["run", "--suite", str(path)]) == 2
    assert "model 'rf' has no parameter 'n_estimator'" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--suite", "smoke", "--folds", "0"], "--folds must be at least 2, got 0"),
        (["run", "--suite", "smoke", "--folds", "1"], "--folds must be at least 2, got 1"),
        (["predict", "--run", "0" * 32, "--top", "0", "x.wav"], "--top must be at least 1, got 0"),
        (
            ["predict", "--run", "0" * 32, "--top", "-1", "x.wav"],
            "--top must be at least 1, got -1",
        ),  # fmt: skip
        (
            ["tune", "logreg", "--suite", "smoke", "--timeout", "-1"],
            "--timeout must be a positive number of seconds, got -1",
        ),  # fmt: skip
        (
            ["tune", "logreg", "--suite", "smoke", "--timeout", "0"],
            "--timeout must be a positive number of seconds, got 0",
        ),  # fmt: skip
    ],
)
def test_options_out_of_range_are_refused(tmp_path: Path, capsys, argv, message) -> None:
    assert main(argv) == 2
    assert _one_line_error(capsys) == f"bench: error: {message}"
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "optuna.journal").exists()
