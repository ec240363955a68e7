"""The real-browser check: bench's runs in `mlflow ui` and the HTML leaderboard, in headless
Chromium (Debian's chromium + chromium-driver, installed by .ci/run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import browser_check  # noqa: E402


def test_mlflow_ui_shows_jobs_datasets_models_and_the_leaderboard_renders(tmp_path: Path) -> None:
    problem = browser_check.browser_available()
    if problem:
        pytest.skip(problem)
    store, experiment_id, jobs, board = browser_check.run_smoke(tmp_path, "logreg,cnn")
    assert sorted(jobs) == ["cnn/fold0", "cnn/fold1", "logreg/fold0", "logreg/fold1"]
    seen = browser_check.check(store, experiment_id, jobs, board, tmp_path / "shots")
    assert seen["runs_view"] and seen["children"] == sorted(jobs)
    assert seen["datasets"] and all(d.startswith("synthetic-gtzan (") for d in seen["datasets"])
    assert seen["models"] == ["model"]
    assert "accuracy" in seen["charts"]
    assert seen["run_page"] == {"accuracy": True, "dataset": True, "model": True}
    assert seen["registry"]
    assert len(seen["figures"]) >= 2 and seen["console_errors"] == []
    for shot in ("runs", "charts", "run", "registry", "leaderboard"):
        png = (tmp_path / "shots" / f"{shot}.png").read_bytes()
        assert png[:4] == b"\x89PNG" and len(png) > 10_000, shot
