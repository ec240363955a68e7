"""bench predict: a logged model, raw audio in, top genres out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.runs import logreg_fold0_run

from bench.cli import main
from bench.predict import load_logged_model, predict_files


@pytest.mark.slow
def test_predict_from_wav_equals_prediction_from_the_csv_row(shared_data: Path, capsys) -> None:
    gtzan = shared_data / "gtzan"
    run = logreg_fold0_run(gtzan)
    clips = sorted((gtzan / "genres_original").glob("*/*.wav"))
    capsys.readouterr()
    assert main(["predict", "--run", run.info.run_id, *map(str, clips)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 20
    top1 = {line.split(":")[0]: line.split(": ")[1].split()[0] for line in lines}
    correct = sum(Path(p).parent.name == genre for p, genre in top1.items())
    assert correct >= 14  # these tracks are real GTZAN; chance would be 2

    served = load_logged_model(run.info.run_id)
    card = served.card
    table = pd.read_csv(gtzan / "features_30_sec.csv").set_index("filename")
    from_csv = served.model.predict_proba(
        table.loc[[p.name for p in clips], card["feature_columns"]].to_numpy()
    )
    from_wav = [dict(r.top) for r in predict_files(served, clips, top_k=0)]
    classes = card["classes"]
    for row, probs in zip(from_csv, from_wav, strict=True):
        assert len(probs) == 10
        np.testing.assert_allclose([probs[c] for c in classes], row, atol=2e-3)


def test_predict_bad_run_id_is_one_line(capsys) -> None:
    assert main(["predict", "--run", "0" * 32, "x.wav"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: no MLflow store at ")
