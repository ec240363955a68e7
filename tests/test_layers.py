"""The import contracts in pyproject.toml hold, and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(tree: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(tree / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break on purpose."""
    shutil.copytree(
        ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_hold(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout
    assert "Contracts: 4 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "package", "contract"),
    [
        ("report", "mlflow", "Only bench.tracking talks to MLflow"),
        ("runner", "optuna", "Only bench.tuning talks to Optuna"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, package: str, contract: str
) -> None:
    path = tree / "bench" / f"{module}.py"
    path.write_text(path.read_text() + f"\n\nimport {package}  # noqa: E402\n")
    done = _lint(tree)
    assert done.returncode == 1
    assert f"{contract} BROKEN" in done.stdout
    assert f"- bench.{module} -> {package}" in done.stdout


LAYERS = "Layers: the command line on top, data at the bottom; nothing imports upwards"


@pytest.mark.parametrize(
    ("path", "statement", "importer", "imported"),
    [
        # the cycle this contract removed: data/ opening suites and computing features
        (
            "data/gtzan.py",
            "from bench.features import extract",
            "bench.data.gtzan",
            "bench.features.extract",
        ),
        ("evaluate.py", "from bench import runner", "bench.evaluate", "bench.runner"),
        (
            "tuning/objective.py",
            "from bench import runner",
            "bench.tuning.objective",
            "bench.runner",
        ),
        ("tracking.py", "from bench import report", "bench.tracking", "bench.report"),
        ("models/cnn.py", "from bench import evaluate", "bench.models.cnn", "bench.evaluate"),
    ],
)
def test_an_upward_import_breaks_the_layers(
    tree: Path, path: str, statement: str, importer: str, imported: str
) -> None:
    target = tree / "bench" / path
    target.write_text(target.read_text() + f"\n\n{statement}  # noqa: E402\n")
    done = _lint(tree)
    assert done.returncode == 1
    assert f"{LAYERS} BROKEN" in done.stdout
    assert f"{importer} -> {imported}" in done.stdout


def test_runner_and_tuning_stay_independent(tree: Path) -> None:
    target = tree / "bench" / "runner.py"
    target.write_text(target.read_text() + "\n\nfrom bench.tuning import session  # noqa: E402\n")
    done = _lint(tree)
    assert done.returncode == 1
    assert f"{LAYERS} BROKEN" in done.stdout
    assert "bench.runner -> bench.tuning.session" in done.stdout
