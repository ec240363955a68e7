"""The leaderboard shows exactly what MLflow holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.tracking import resolve_uri


def test_leaderboard_numbers_equal_mlflow_metrics(tabular_gtzan: Path, tmp_path: Path) -> None:
    base = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--no-report"]
    assert main([*base, "--models", "logreg,rf", "--folds", "3"]) == 0
    assert main([*base, "--models", "logreg", "--protocol", "fault-filtered"]) == 0
    assert main(["report", "--suite", "gtzan", "--reports-dir", str(tmp_path / "out")]) == 0
    board = (tmp_path / "out" / "gtzan" / "leaderboard.md").read_text()

    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name("bench/gtzan")
    runs = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'job'")
    sections = re.split(r"^## ", board, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "Protocol: artist-filtered split (train+valid -> test) (`fault-filtered`)",
        "Protocol: 3-fold stratified (`stratified-kfold`)",
    ]
    checked = 0
    for section in sections:
        protocol = re.search(r"\(`([a-z-]+)`\)", section.splitlines()[0])[1]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) != 13 or not cells[0].isdigit():
                continue
            model = cells[1]
            assert cells[2] == "default"
            mine = [
                r
                for r in runs
                if r.data.tags["bench.model"] == model and r.data.tags["bench.protocol"] == protocol
            ]
            for col, metric in (
                (4, "accuracy"),
                (5, "f1_macro"),
                (6, "balanced_accuracy"),
                (7, "log_loss"),
            ):
                values = [r.data.metrics[metric] for r in mine]
                assert cells[col] == f"{np.mean(values):.4f} ± {np.std(values):.4f}"
            fit = np.mean([r.data.metrics["fit_seconds"] for r in mine])
            assert cells[8] == f"{fit:.2f}"
            assert cells[10] == str(sum(int(r.data.params["n_test"]) for r in mine))
            assert cells[11] == f"{len(mine)}/0"
            assert set(cells[12].replace("`", "").split()) == {r.info.run_id[:8] for r in mine}
            checked += 1
    assert checked == 3
