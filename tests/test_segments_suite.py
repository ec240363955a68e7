"""gtzan-3s: segment rows computed from audio, track-grouped folds, track-level voting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from bench.cli import main
from bench.data.splits import Protocol, make_folds
from bench.features.extract import computed_dataset
from bench.features.synthetic import synth_gtzan
from bench.metrics import vote_by_track
from bench.suites import load_suite
from bench.tracking import resolve_uri


def test_votes_average_segment_probabilities_per_track():
    tracks = np.array(["rock.00001", "blues.00002", "rock.00001", "blues.00002", "jazz.00003"])
    y = np.array([2, 0, 2, 0, 1])
    proba = np.array(
        [
            [0.1, 0.1, 0.8],
            [0.6, 0.3, 0.1],
            [0.5, 0.4, 0.1],  # this segment alone would be wrong; the track vote is right
            [0.2, 0.7, 0.1],
            [0.3, 0.3, 0.4],
        ]
    )
    names, labels, mean = vote_by_track(tracks, y, proba)
    assert list(names) == ["blues.00002", "jazz.00003", "rock.00001"]
    assert list(labels) == [0, 1, 2]
    np.testing.assert_allclose(mean, [[0.4, 0.5, 0.1], [0.3, 0.3, 0.4], [0.3, 0.25, 0.45]])
    assert list(mean.argmax(1)) == [1, 2, 2]
    with pytest.raises(ValueError, match="rock.00001"):
        vote_by_track(tracks, np.array([2, 0, 1, 0, 1]), proba)


def test_gtzan_3s_suite_declares_segments_and_votes():
    suite = load_suite("gtzan-3s")
    assert suite.dataset.kind == "gtzan"
    assert suite.dataset.segment == 3.0 and suite.dataset.vote == "track"
    assert suite.protocol.name == "stratified-kfold"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "gtzan"
    return synth_gtzan(root, per_genre=6, duration=6.5, seed=3)


def test_segment_rows_stay_with_their_track_in_every_fold(synthetic: Path, tmp_path: Path):
    dataset = computed_dataset(synthetic, 3.0, "synthetic-gtzan", cache_dir=tmp_path / "c")
    assert len(dataset) == 2 * 60 and dataset.n_tracks == 60 and dataset.vote == "track"
    assert list(dataset.features.index[:2]) == ["blues.00000.0.wav", "blues.00000.1.wav"]
    assert np.isfinite(dataset.features.to_numpy()).all()
    for protocol in (Protocol("stratified-kfold", folds=3), Protocol("fault-filtered")):
        folds = make_folds(dataset, protocol, seed=0)
        tested = np.concatenate([f.test for f in folds])
        if protocol.name == "stratified-kfold":
            assert sorted(tested) == list(range(len(dataset)))  # every segment tested once
        for fold in folds:
            train, test = set(dataset.tracks[fold.train]), set(dataset.tracks[fold.test])
            assert not train & test, f"{fold.name}: a track on both sides"
            # whole tracks: all of a track's segments are on the side it is on
            for track in test:
                assert set(np.flatnonzero(dataset.tracks == track)) <= set(fold.test)


def test_run_scores_tracks_by_vote(synthetic: Path, tmp_path: Path):
    suite = tmp_path / "seg.toml"
    suite.write_text(
        """name = "seg"
[dataset]
kind = "gtzan"
segment = 3.0
vote = "track"
[protocol]
name = "stratified-kfold"
folds = 3
[[models]]
name = "logreg"
"""
    )
    code = main(
        [
            "run",
            "--suite",
            str(suite),
            "--data-dir",
            str(synthetic),
            "--workers",
            "1",
            "--no-report",
        ]  # fmt: skip
    )
    assert code == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/seg")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    assert len(runs) == 3
    for run in runs:
        path = client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path))
        table = pd.read_csv(path, index_col=0)
        assert table.index.name == "track" and table.index.is_unique
        assert int(run.data.params["n_test_rows"]) == 2 * len(table)  # segments in
        assert int(run.data.params["n_test"]) == len(table)  # tracks scored
        probabilities = table.filter(like="proba_").to_numpy()
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)  # written as %.6g
        accuracy = (table["truth"] == table["predicted"]).mean()
        assert run.data.metrics["accuracy"] == pytest.approx(accuracy)


def test_tuning_objective_scores_track_votes(synthetic: Path, tmp_path: Path):

    from bench import registry
    from bench.data.splits import dev_split
    from bench.metrics import align_proba
    from bench.tuning.objective import Objective

    dataset = computed_dataset(synthetic, 3.0, "synthetic-gtzan", cache_dir=tmp_path / "c")
    dev = dev_split(dataset, Protocol("stratified-kfold", folds=3), seed=0, fraction=0.5, folds=2)
    spec = registry.get("logreg")
    value = Objective(spec, {}, dataset, dev, "accuracy", 0, "cpu", 1).evaluate({})
    X, y = dataset.features.to_numpy(), dataset.labels
    expected = []
    for fold in dev.folds:
        model = spec.factory(**spec.complete({}, 0, "cpu")).fit(X[fold.train], y[fold.train])
        proba = align_proba(model.predict_proba(X[fold.test]), model.classes_, 10)
        _, truth, mean = vote_by_track(dataset.tracks[fold.test], y[fold.test], proba)
        expected.append(np.mean(mean.argmax(1) == truth))
    assert value == pytest.approx(np.mean(expected))
