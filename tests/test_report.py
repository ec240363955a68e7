"""Reports show exactly what MLflow holds, and their statistics are scipy's."""

from __future__ import annotations

import re
from pathlib import Path

import helper_models  # noqa: F401  (registers boom)
import numpy as np
import pandas as pd
import pytest
from boards import table_rows
from mlflow.tracking import MlflowClient
from scipy import stats as sp

from bench import stats
from bench.cli import main
from bench.tracking import resolve_uri


def _runs(suite: str) -> list:
    client = MlflowClient(resolve_uri())
    exp = client.get_experiment_by_name(f"bench/{suite}")
    return client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'job'", max_results=1000)


def _sections(board: str) -> dict[str, str]:
    """Protocol name -> its part of the report."""
    parts = re.split(r"^## ", board, flags=re.M)[1:]
    out = {}
    for part in parts:
        found = re.match(r"Protocol: .* \(`([a-z:-]+)`\)", part.splitlines()[0])
        if found:
            out[found[1]] = part
    return out


def _predictions(run) -> pd.DataFrame:
    client = MlflowClient(resolve_uri())
    path = client.download_artifacts(run.info.run_id, "predictions.csv")
    return pd.read_csv(path, index_col=0)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@pytest.fixture
def two_protocols(tabular_gtzan: Path, tmp_path: Path) -> Path:
    base = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--no-report"]
    assert main([*base, "--models", "logreg,rf,svm", "--folds", "3"]) == 0
    assert main([*base, "--models", "logreg,rf", "--protocol", "fault-filtered"]) == 0
    assert main(["report", "--suite", "gtzan", "--reports-dir", str(tmp_path / "out")]) == 0
    return tmp_path / "out" / "gtzan"


@pytest.mark.slow
def test_every_leaderboard_number_is_the_mlflow_metric(two_protocols: Path) -> None:
    board = (two_protocols / "leaderboard.md").read_text()
    runs = _runs("gtzan")
    sections = _sections(board)
    assert set(sections) == {"fault-filtered", "stratified-kfold"}
    checked = 0
    for protocol, section in sections.items():
        for cells in table_rows(section):
            if len(cells) != 14 or not cells[0].isdigit():
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
                (6, "f1_macro"),
                (7, "balanced_accuracy"),
                (8, "log_loss"),
            ):
                values = [r.data.metrics[metric] for r in mine]
                spread = f" ± {np.std(values):.4f}" if len(values) > 1 else ""
                assert cells[col] == f"{np.mean(values):.4f}{spread}"
            acc = [r.data.metrics["accuracy"] for r in mine]
            if len(acc) > 1:
                interval = sp.t.interval(0.95, len(acc) - 1, np.mean(acc), sp.sem(acc))
                low, high = np.clip(interval, 0, 1)
                assert cells[5] == f"[{low:.4f}, {high:.4f}]"
            else:
                assert cells[5] == "—"
            assert cells[9] == f"{np.mean([r.data.metrics['fit_seconds'] for r in mine]):.2f}"
            per_item = np.mean([r.data.metrics["predict_seconds_per_item"] for r in mine])
            assert cells[10] == f"{1000 * per_item:.3f}"
            assert cells[11] == str(sum(int(r.data.params["n_test"]) for r in mine))
            assert cells[12] == f"{len(mine)}/0"
            assert set(cells[13].replace("`", "").split()) == {r.info.run_id[:8] for r in mine}
            checked += 1
    assert checked == 5


@pytest.mark.slow
def test_significance_against_the_best_is_computed_from_the_logged_folds(
    two_protocols: Path,
) -> None:
    sections = _sections((two_protocols / "leaderboard.md").read_text())
    runs = _runs("gtzan")

    def folds(model: str, protocol: str) -> dict[str, object]:
        return {
            r.data.tags["bench.fold"]: r
            for r in runs
            if r.data.tags["bench.model"] == model and r.data.tags["bench.protocol"] == protocol
        }

    # k-fold: the corrected resampled t-test and Wilcoxon, paired by fold name.
    section = sections["stratified-kfold"]
    ranked = [c for c in table_rows(section) if len(c) == 14 and c[0].isdigit()]
    best = ranked[0][1]
    tests = {c[0]: c for c in table_rows(section) if len(c) == 7 and c[0] != "model"}
    assert set(tests) == {c[1] for c in ranked[1:]}
    for model, cells in tests.items():
        a_runs, b_runs = folds(best, "stratified-kfold"), folds(model, "stratified-kfold")
        names = sorted(a_runs)
        a = [a_runs[f].data.metrics["accuracy"] for f in names]
        b = [b_runs[f].data.metrics["accuracy"] for f in names]
        n_test = np.mean([int(a_runs[f].data.params["n_test"]) for f in names])
        n_train = np.mean([int(a_runs[f].data.params["n_train"]) for f in names])
        d = np.subtract(a, b)
        if d.var() > 0:
            t = d.mean() / np.sqrt((1 / len(d) + n_test / n_train) * d.var(ddof=1))
            p = 2 * sp.t.sf(abs(t), len(d) - 1)
        else:
            p = float(d.mean() == 0)
        assert cells[2] == f"{100 * (np.mean(b) - np.mean(a)):+.2f}"
        assert cells[3] == "3"
        assert cells[4] == _p(p)
        assert cells[5] == (_p(sp.wilcoxon(d).pvalue) if np.any(d) else "1.000")
        assert cells[6] == ("yes" if p < 0.05 else "no")

    # One split: McNemar's exact test on the logged predictions.
    section = sections["fault-filtered"]
    ranked = [c for c in table_rows(section) if len(c) == 14 and c[0].isdigit()]
    (cells,) = [c for c in table_rows(section) if len(c) == 8 and c[0] != "model"]
    a = _predictions(folds(ranked[0][1], "fault-filtered")["test"])
    b = _predictions(folds(ranked[1][1], "fault-filtered")["test"]).loc[a.index]
    right_a, right_b = a.truth == a.predicted, b.truth == b.predicted
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    assert cells[3:6] == [str(len(a)), str(only_a), str(only_b)]
    expected = sp.binomtest(min(only_a, only_b), only_a + only_b).pvalue if only_a + only_b else 1
    assert cells[6] == _p(expected)


@pytest.mark.slow
def test_per_class_f1_and_figures(two_protocols: Path) -> None:
    board = (two_protocols / "leaderboard.md").read_text()
    runs = _runs("gtzan")
    section = _sections(board)["stratified-kfold"]
    rows = table_rows(section)
    header = next(r for r in rows if r[0] == "class")
    top = header[1:]
    assert len(top) == 3
    classes = [r for r in rows if len(r) == 4 and r[0] not in ("class", "model")]
    assert [r[0] for r in classes] == sorted(
        k.removeprefix("f1_class.") for k in runs[0].data.metrics if k.startswith("f1_class.")
    )
    for cells in classes:
        for model, cell in zip(top, cells[1:], strict=True):
            values = [
                r.data.metrics[f"f1_class.{cells[0]}"]
                for r in runs
                if r.data.tags["bench.model"] == model
                and r.data.tags["bench.protocol"] == "stratified-kfold"
            ]
            assert cell == f"{np.mean(values):.3f}"
    # the logged per-class F1 is sklearn's on the logged predictions
    from sklearn.metrics import f1_score

    run = next(r for r in runs if r.data.tags["bench.protocol"] == "stratified-kfold")
    pred = _predictions(run)
    labels = sorted(set(pred.truth) | set(pred.predicted))
    expected = f1_score(pred.truth, pred.predicted, labels=labels, average=None)
    for label, value in zip(labels, expected, strict=True):
        assert run.data.metrics[f"f1_class.{label}"] == pytest.approx(value)
    # figures: written beside the report, linked relatively, real PNGs
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", board)
    assert sorted(links) == sorted(
        [
            "confusion-fault-filtered.png",
            "accuracy-vs-fit-fault-filtered.png",
            "confusion-stratified-kfold.png",
            "accuracy-vs-fit-stratified-kfold.png",
        ]
    )
    for link in links:
        assert (two_protocols / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front (no other model is both more accurate and faster to fit)" in section


def assert_every_table_names_its_protocol(board: str) -> int:
    """Each table's caption (the paragraph above it) names a protocol of the report, or the
    table has a protocol column; returns how many tables there are."""
    protocols = "|".join(re.escape(p) for p in _sections(board))
    lines = board.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and i and not lines[i - 1]]
    for i in starts:
        caption = lines[i - 2]
        in_table = re.match(r"\| protocol ", lines[i])
        assert in_table or re.search(rf"protocol.*`({protocols})`", caption), caption
    repro = next(r for r in table_rows(board) if r[0] == "protocol")
    assert repro[1:5] == ["command", "git commit", "dataset", "data fingerprint"]
    return len(starts)


@pytest.mark.slow
def test_every_table_names_its_protocol(two_protocols: Path) -> None:
    assert (
        assert_every_table_names_its_protocol((two_protocols / "leaderboard.md").read_text()) >= 8
    )


def _headers(board: str) -> list[list[str]]:
    """The header row of every table (the line before each alignment rule); per-class F1
    tables, whose columns are the top models, count by their first column."""
    lines = board.splitlines()
    headers = [
        [c.strip() for c in lines[i - 1].strip().strip("|").split("|")]
        for i, line in enumerate(lines)
        if i and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip())
    ]
    return [h[:1] if h[0] == "class" else h for h in headers]


@pytest.mark.slow
def test_committed_example_report_is_bench_reports_output(two_protocols: Path) -> None:
    """The committed leaderboard has every table, in order, that bench report writes today:
    a change to the report's layout fails here until the example is regenerated."""
    folder = Path(__file__).resolve().parents[1] / "reports" / "gtzan"
    board = (folder / "leaderboard.md").read_text()
    fresh = _headers((two_protocols / "leaderboard.md").read_text())
    committed = _headers(board)
    assert fresh and {tuple(h) for h in fresh} <= {tuple(h) for h in committed}
    assert board.startswith("# Leaderboard: `gtzan`\n\nBuilt by `bench report --suite gtzan`")
    assert set(_sections(board)) == {"fault-filtered", "stratified-kfold"}
    assert assert_every_table_names_its_protocol(board) >= 10
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", board):
        assert (folder / link).read_bytes()[:4] == b"\x89PNG"
    ranked = {r[1] for r in table_rows(board) if len(r) == 14 and r[0].isdigit()}
    assert {"stack", "xgboost", "mlp", "mlp_ref", "bagging", "logreg"} <= ranked


@pytest.mark.slow
def test_failed_model_is_reported_and_html_is_self_contained(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    base = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--no-report"]
    assert main([*base, "--models", "logreg,rf,boom", "--folds", "2"]) == 1
    out = tmp_path / "out"
    assert main(["report", "--suite", "gtzan", "--reports-dir", str(out), "--format", "html"]) == 0
    page = (out / "gtzan" / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'src="(?!data:)', page)
    assert "<strong>Failed jobs</strong>, protocol 2-fold stratified" in page
    assert '<td class="l">RuntimeError: boom: this model always fails</td>' in page
    acc = [r.data.metrics["accuracy"] for r in _runs("gtzan") if r.data.tags["bench.model"] == "rf"]
    assert f"{np.mean(acc):.4f} ± {np.std(acc):.4f}" in page


@pytest.mark.slow
def test_summary_ranks_models_across_suites(tabular_gtzan: Path, tmp_path: Path) -> None:
    from conftest import write_tabular_gtzan

    other = write_tabular_gtzan(tmp_path / "other-data", seed=3)
    (tmp_path / "other.toml").write_text(
        (Path(__file__).parents[1] / "experiments" / "gtzan.toml")
        .read_text()
        .replace('name = "gtzan"', 'name = "other"', 1)
    )
    models = ["--models", "logreg,rf,svm", "--folds", "3", "--no-report"]
    assert main(["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), *models]) == 0
    argv = ["run", "--suite", str(tmp_path / "other.toml"), "--data-dir", str(other), *models]
    assert main(argv) == 0
    out = tmp_path / "out"
    assert main(["report", "--suites", "gtzan,other", "--reports-dir", str(out)]) == 0
    summary = (out / "summary-gtzan+other" / "leaderboard.md").read_text()

    def mean_accuracy(suite: str, model: str) -> float:
        runs = [r for r in _runs(suite) if r.data.tags["bench.model"] == model]
        # rounded as the report does: equal fold scores tie whatever order they are summed in
        return round(float(np.mean([r.data.metrics["accuracy"] for r in runs])), 12)

    scores = np.array(
        [[mean_accuracy(s, m) for m in ("logreg", "rf", "svm")] for s in ("gtzan", "other")]
    )
    mean_ranks = np.mean([sp.rankdata(-row) for row in scores], axis=0)
    rows = {r[1]: r for r in table_rows(summary) if len(r) == 5 and r[0].isdigit()}
    assert set(rows) == {"logreg", "rf", "svm"}
    for i, model in enumerate(("logreg", "rf", "svm")):
        assert rows[model][2] == f"{mean_ranks[i]:.2f}"
        assert rows[model][3].startswith(f"{scores[0, i]:.4f} (")
    friedman = sp.friedmanchisquare(*scores.T).pvalue
    assert f"p = {_p(friedman)}" in summary
    assert (out / "summary-gtzan+other" / "critical-difference.png").read_bytes()[:4] == b"\x89PNG"


def test_statistics_match_scipy_and_the_literature() -> None:
    a = [0.81, 0.79, 0.84, 0.80, 0.83]
    b = [0.78, 0.80, 0.79, 0.77, 0.80]
    # Without the correction term it is the paired t-test.
    assert stats.corrected_resampled_ttest(a, b, 0, 1) == pytest.approx(sp.ttest_rel(a, b).pvalue)
    d = np.subtract(a, b)
    t = d.mean() / np.sqrt((1 / 5 + 0.25) * d.var(ddof=1))
    corrected = stats.corrected_resampled_ttest(a, b, 200, 800)
    assert corrected == pytest.approx(2 * sp.t.sf(t, 4))
    assert corrected > sp.ttest_rel(a, b).pvalue
    assert stats.wilcoxon_p(a, b) == pytest.approx(sp.wilcoxon(d).pvalue)
    assert stats.wilcoxon_p(a, a) == 1.0
    # McNemar exact: 1 item only A gets right, 9 only B: p = 2 * (1 + 10) / 2**10.
    only_a = [True] + [False] * 9 + [True] * 5
    only_b = [False] + [True] * 9 + [True] * 5
    assert stats.mcnemar_exact(only_a, only_b) == pytest.approx(22 / 1024)
    low, high = stats.mean_ci(a)
    assert (low, high) == pytest.approx(sp.t.interval(0.95, 4, np.mean(a), sp.sem(a)))
    # Demšar (2006), section 3.2.2: 4 classifiers over 14 data sets, Nemenyi CD = 1.25 at 0.05.
    rng = np.random.default_rng(0)
    summary = stats.rank_summary(rng.random((14, 4)), ["a", "b", "c", "d"])
    assert summary.critical_difference == pytest.approx(1.25, abs=0.005)
    scores = rng.random((6, 4))
    assert stats.rank_summary(scores, list("abcd")).friedman_p == pytest.approx(
        sp.friedmanchisquare(*scores.T).pvalue
    )
    assert stats.pareto_front([0.7, 0.8, 0.75, 0.8], [1.0, 5.0, 6.0, 9.0]) == [0, 1]
