"""Leaderboards of a suite, and summaries across suites, built from MLflow runs only.

Nothing is recomputed: scores are the metrics each (model, fold) job logged, confusion matrices
are counts of the predictions each job logged as an artifact. Each protocol gets its own tables:
scores from a random split and from an artist-filtered split are not comparable, so they are
never ranked together, and every table names its protocol.

Why one module (~600 lines): it is one document. Collecting rows, ranking, the significance
tests, per-class F1, the Pareto plot and the reproducibility table all read the same ``Row``
and ``Ranking`` and one cache of downloaded predictions, and together fix the leaderboard's
layout; the cross-suite summary reuses them. Statistics live in :mod:`bench.stats`, plots in
:mod:`bench.plots`, rendering in :mod:`bench.document`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import stats
from bench.document import Block, Figure, Heading, Table, Text, to_html, to_markdown
from bench.errors import BenchError
from bench.metrics import ENSEMBLE_WEIGHT, PER_CLASS_F1
from bench.tracking import JobRecord, Setup, Tracker

FORMATS = ("md", "html")
ALPHA = 0.05
TOP_MODELS = 3
"""How many of the best models get per-class F1 columns and confusion matrices."""


@dataclass
class Row:
    model: str
    family: str
    protocol: str
    protocol_description: str
    fold_names: list[str] = field(default_factory=list)
    """Finished folds, in the order of the metric lists below."""
    accuracy: list[float] = field(default_factory=list)
    balanced_accuracy: list[float] = field(default_factory=list)
    f1_macro: list[float] = field(default_factory=list)
    log_loss: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    predict_seconds_per_item: list[float] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    n_test: list[int] = field(default_factory=list)
    n_train: list[int] = field(default_factory=list)
    per_class_f1: dict[str, list[float]] = field(default_factory=dict)
    weights: dict[str, list[float]] = field(default_factory=dict)
    """A greedy ensemble's weight per member, per finished fold (0 where a fold left it out)."""
    failed_folds: dict[str, str] = field(default_factory=dict)
    setup: Setup | None = None
    """What produced the newest finished run: command, commit, versions, data, device."""
    newest_parent: tuple[int, str] = (0, "")
    """(start time, parent run id) of the newest run in the row."""
    variant: str = "default"
    """``default`` (the suite's parameters) or ``tuned`` (``bench run --tuned``)."""

    @property
    def folds_finished(self) -> int:
        return len(self.accuracy)

    @property
    def label(self) -> str:
        return self.model if self.variant == "default" else f"{self.model} ({self.variant})"

    def fold_accuracy(self) -> dict[str, float]:
        return dict(zip(self.fold_names, self.accuracy, strict=True))


def _row_key(run: JobRecord) -> tuple[str, str, str]:
    return (run.model, run.variant, run.protocol)


def collect(runs: list[JobRecord]) -> list[Row]:
    """One row per (model, variant, protocol): its newest configuration, newest run per fold."""
    latest_config: dict[tuple[str, str, str], tuple[int, str]] = {}
    for run in runs:
        key = _row_key(run)
        stamp = (run.start_time, run.config_hash)
        latest_config[key] = max(latest_config.get(key, stamp), stamp)
    by_fold: dict[tuple[str, str, str], dict[str, JobRecord]] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        key = _row_key(run)
        if run.config_hash != latest_config[key][1]:
            continue
        folds = by_fold.setdefault(key, {})
        previous = folds.get(run.fold)
        if previous is None or not previous.finished or run.finished:
            folds[run.fold] = run
    return [_row(key, folds) for key, folds in by_fold.items()]


def _row(key: tuple[str, str, str], folds: dict[str, JobRecord]) -> Row:
    sample = next(iter(folds.values()))
    row = Row(key[0], sample.family, key[2], sample.protocol_description, variant=key[1])
    newest_finished = 0
    for fold, run in sorted(folds.items()):
        row.newest_parent = max(row.newest_parent, (run.start_time, run.parent_run_id))
        if run.failed:
            row.failed_folds[fold] = run.error or run.status
        if not run.finished:
            continue
        m = run.metrics
        row.fold_names.append(fold)
        row.accuracy.append(m["accuracy"])
        row.balanced_accuracy.append(m["balanced_accuracy"])
        row.f1_macro.append(m["f1_macro"])
        row.log_loss.append(m["log_loss"])
        row.fit_seconds.append(m["fit_seconds"])
        row.predict_seconds_per_item.append(m["predict_seconds_per_item"])
        row.run_ids.append(run.run_id)
        row.n_test.append(int(run.params.get("n_test", 0)))
        row.n_train.append(int(run.params.get("n_train", 0)))
        for name, value in m.items():
            if name.startswith(PER_CLASS_F1):
                row.per_class_f1.setdefault(name[len(PER_CLASS_F1) :], []).append(value)
            elif name.startswith(ENSEMBLE_WEIGHT):
                row.weights.setdefault(name[len(ENSEMBLE_WEIGHT) :], []).append(value)
        if run.start_time >= newest_finished:
            newest_finished, row.setup = run.start_time, run.setup
    return row


def collect_skips(runs: list[JobRecord], rows: list[Row]) -> dict[tuple[str, str], str]:
    """(model, protocol) -> reason, from the newest skip of each; a model that has run since
    (under a newer ``bench run``) with nothing skipped is not listed."""
    newest_job = {(r.model, r.protocol): r.newest_parent for r in rows}
    skips: dict[tuple[str, str], JobRecord] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        skips[(run.model, run.protocol)] = run
    return {
        key: run.skip_reason or ""
        for key, run in skips.items()
        if newest_job.get(key, (0, ""))[0] <= run.start_time
        or newest_job[key][1] == run.parent_run_id
    }


@dataclass
class Ranking:
    """A protocol's rows in leaderboard order. Rows scored on fewer test tracks than the
    most (audio models on the clips that have audio) are shown but not ranked."""

    ranked: list[Row]
    subset: list[Row]
    failed: list[Row]

    @classmethod
    def of(cls, group: list[Row]) -> Ranking:
        scored = [r for r in group if r.accuracy]
        full = max((sum(r.n_test) for r in scored), default=0)
        by_accuracy = sorted(scored, key=lambda r: -float(np.mean(r.accuracy)))
        return cls(
            [r for r in by_accuracy if sum(r.n_test) == full],
            [r for r in by_accuracy if sum(r.n_test) < full],
            [r for r in group if not r.accuracy],
        )


class _RunFiles:
    """Artifacts of job runs, downloaded once each into a scratch folder."""

    def __init__(self, tracker: Tracker, scratch: Path) -> None:
        self.tracker, self.scratch = tracker, scratch
        self._tables: dict[str, Any] = {}

    def predictions(self, run_id: str) -> Any:
        """The run's ``predictions.csv`` as a table (None when it has none), read once."""
        import pandas as pd

        from bench.artifacts import PREDICTIONS_FILE

        if run_id not in self._tables:
            folder = self.scratch / run_id
            folder.mkdir(parents=True, exist_ok=True)
            path = self.tracker.run_file(run_id, PREDICTIONS_FILE, folder)
            self._tables[run_id] = None if path is None else pd.read_csv(path, index_col=0)
        return self._tables[run_id]


def check_reports_dir(out_dir: Path) -> None:
    """A ``--reports-dir`` that exists but is not a folder is a one-line error, found before a
    suite runs rather than after."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"{out_dir}: --reports-dir is a file, not a folder")


def report_folder(out_dir: Path, name: str) -> Path:
    """``out_dir/name``, created, or a one-line error naming what is in the way."""
    check_reports_dir(out_dir)
    folder = Path(out_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{folder}: cannot create the report folder ({exc.strerror})") from None
    return folder


def write_report(suite: str, tracker: Tracker, out_dir: Path, fmt: str = "md") -> Path:
    """``<out_dir>/<suite>/leaderboard.md`` (or ``.html``) and its PNGs."""
    rows = collect(tracker.job_records())
    skips = collect_skips(tracker.job_records("skip"), rows)
    if not rows and not skips:
        raise BenchError(
            f"suite {suite!r} has no job runs in {tracker.display}; run `bench run` first"
        )
    folder = report_folder(out_dir, suite)
    for old in [*folder.glob("confusion-*.png"), *folder.glob("accuracy-vs-fit-*.png")]:
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
        files = _RunFiles(tracker, Path(scratch))
        promoted = tracker.promotions()
        blocks = leaderboard_blocks(suite, rows, tracker.display, skips, files, folder, promoted)
        return _write(blocks, folder, f"bench leaderboard: {suite}", fmt)


def leaderboard_blocks(
    suite: str,
    rows: list[Row],
    tracking_uri: str,
    skips: dict[tuple[str, str], str],
    files: _RunFiles,
    folder: Path,
    promoted: dict[str, list[str]] | None = None,
) -> list[Block]:
    """``promoted``: job run id -> registered versions made from it (`bench promote`)."""
    promoted = promoted or {}
    blocks: list[Block] = [
        Heading(1, f"Leaderboard: `{suite}`"),
        Text(
            f"Built by `bench report --suite {suite}` from the MLflow runs in "
            f"`{_display_uri(tracking_uri)}`; nothing is recomputed. Scores are means ± standard "
            "deviations over folds, with a 95% Student-t interval of the mean; times are per "
            "fold; test tracks are summed over folds. *params*: `default` is the suite's "
            "parameters, `tuned` those `bench tune` found on the development split, which the "
            "tuned protocol's test sides exclude. Rank `subset` marks models scored on fewer "
            "test tracks (audio models see only the clips that have audio): they are not ranked "
            "against the rest, nor tested against the best."
        ),
    ]
    for protocol in sorted({r.protocol for r in rows} | {p for _, p in skips}):
        group = [r for r in rows if r.protocol == protocol]
        title = group[0].protocol_description if group else protocol
        where = f"protocol {title} (`{protocol}`)"
        slug = protocol.replace(":", "-")
        ranking = Ranking.of(group)
        blocks += [Heading(2, f"Protocol: {title} (`{protocol}`)")]
        blocks += [Text(f"**Leaderboard**, {where}."), _leaderboard_table(ranking, promoted)]
        blocks += _promoted_blocks(group, promoted)
        blocks += _weight_blocks(ranking, where)
        blocks += _significance_blocks(ranking, where, files)
        blocks += _per_class_blocks(ranking, where, files, folder / f"confusion-{slug}.png")
        blocks += _pareto_blocks(ranking, where, folder / f"accuracy-vs-fit-{slug}.png")
        failed = [(r, f, e) for r in group for f, e in sorted(r.failed_folds.items())]
        if failed:
            blocks += [Text(f"**Failed jobs**, {where}.")]
            blocks.append(
                Table(
                    ["model", "params", "fold", "error"],
                    [[r.model, r.variant, f, e[:300]] for r, f, e in failed],
                    "llll",
                )
            )
        skipped = sorted((m, why) for (m, p), why in skips.items() if p == protocol)
        if skipped:
            blocks += [Text(f"**Skipped models**, {where}.")]
            blocks.append(Table(["model", "reason"], [list(s) for s in skipped], "ll"))
    blocks += _reproducibility_blocks(rows)
    return blocks


def _promoted_blocks(group: list[Row], promoted: dict[str, list[str]]) -> list[Block]:
    lines = [
        f"`{version}` is {row.label} on {fold} (run `{run_id[:8]}`)"
        for row in group
        for fold, run_id in zip(row.fold_names, row.run_ids, strict=True)
        for version in promoted.get(run_id, [])
    ]
    if not lines:
        return []
    intro = "**Promoted** to the MLflow Model Registry (`bench promote`): "
    return [Text(intro + "; ".join(lines))]


def _weight_blocks(ranking: Ranking, where: str) -> list[Block]:
    """Each greedy ensemble's weight per member: mean over folds (a member a fold did not
    select counts 0 there), and on how many folds it was selected."""
    rows = [r for r in ranking.ranked + ranking.subset if r.weights]
    if not rows:
        return []
    members = sorted({m for r in rows for m in r.weights})
    body = []
    for member in members:
        cells = []
        for row in rows:
            values = row.weights.get(member, []) + [0.0] * (
                row.folds_finished - len(row.weights.get(member, []))
            )
            used = sum(v > 0 for v in values)
            cells.append(f"{np.mean(values):.3f} ({used}/{row.folds_finished})")
        body.append([member, *cells])
    return [
        Text(
            f"**Ensemble weights**, {where}: each member's weight in the greedy selection, mean "
            "over folds (in brackets: on how many folds it was selected)."
        ),
        Table(["member", *(r.label for r in rows)], body, "l" + "r" * len(rows)),
    ]


def _leaderboard_table(ranking: Ranking, promoted: dict[str, list[str]] | None = None) -> Table:
    header = [
        "rank", "model", "params", "family", "accuracy", "95% CI", "macro-F1", "balanced acc.",
        "log loss", "fit s", "predict ms/item", "test tracks", "folds ok/failed", "runs",
    ]  # fmt: skip
    body = []
    ordered = [(str(i), r) for i, r in enumerate(ranking.ranked, 1)]
    ordered += [("subset", r) for r in ranking.subset] + [("—", r) for r in ranking.failed]
    for rank, row in ordered:
        if row.accuracy:
            # an accuracy lies in [0, 1], whatever a t-interval over few folds says
            low, high = np.clip(stats.mean_ci(row.accuracy), 0.0, 1.0)
            scores = [
                _mean_std(row.accuracy),
                "—" if np.isnan(low) else f"[{low:.4f}, {high:.4f}]",
                _mean_std(row.f1_macro),
                _mean_std(row.balanced_accuracy),
                _mean_std(row.log_loss),
                f"{np.mean(row.fit_seconds):.2f}",
                f"{1000 * np.mean(row.predict_seconds_per_item):.3f}",
                str(sum(row.n_test)),
            ]
        else:
            scores = ["—"] * 8
        runs = " ".join(
            f"`{r[:8]}`" + "".join(f" (promoted: {v})" for v in (promoted or {}).get(r, []))
            for r in row.run_ids
        )
        folds = f"{row.folds_finished}/{len(row.failed_folds)}"
        body.append([rank, row.model, row.variant, row.family, *scores, folds, runs])
    return Table(header, body, "rlllrrrrrrrrrl")


def _significance_blocks(ranking: Ranking, where: str, files: _RunFiles) -> list[Block]:
    """Each ranked model against the best: paired over folds, or item by item on one split."""
    if len(ranking.ranked) < 2:
        return []
    best, others = ranking.ranked[0], ranking.ranked[1:]
    if best.folds_finished >= 2:
        return _fold_tests(best, others, where)
    return _mcnemar_tests(best, others, where, files)


def _fold_tests(best: Row, others: list[Row], where: str) -> list[Block]:
    n_test, n_train = float(np.mean(best.n_test)), float(np.mean(best.n_train))
    body = []
    for row in others:
        mine, theirs = best.fold_accuracy(), row.fold_accuracy()
        shared = sorted(set(mine) & set(theirs))
        a, b = [mine[f] for f in shared], [theirs[f] for f in shared]
        gap = f"{100 * (np.mean(b) - np.mean(a)):+.2f}" if shared else "—"
        if len(shared) < 2:
            body.append([row.model, row.variant, gap, str(len(shared)), "—", "—", "—"])
            continue
        p_t = stats.corrected_resampled_ttest(a, b, n_test, n_train)
        p_w = stats.wilcoxon_p(a, b)
        verdict = "yes" if p_t < ALPHA else "no"
        body.append([row.model, row.variant, gap, str(len(shared)), _p(p_t), _p(p_w), verdict])
    header = [
        "model", "params", "Δ accuracy (points)", "paired folds", "p (corrected t)",
        "p (Wilcoxon)", f"differs at {ALPHA}",
    ]  # fmt: skip
    return [
        Text(
            f"**Against the best ({best.label})**, {where}: paired over folds. *p (corrected t)* "
            "is the corrected resampled t-test of Nadeau & Bengio (2003), which widens the "
            "variance by test/train size because folds share training data; it decides the "
            "last column. The Wilcoxon signed-rank test is shown beside it (with 5 folds its "
            "smallest possible p is 0.0625). p-values are not adjusted for multiple comparisons."
        ),
        Table(header, body, "llrrrrl"),
    ]


def _mcnemar_tests(best: Row, others: list[Row], where: str, files: _RunFiles) -> list[Block]:
    fold = best.fold_names[0]
    best_items = files.predictions(best.run_ids[0])
    body = []
    for row in others:
        gap = f"{100 * (np.mean(row.accuracy) - np.mean(best.accuracy)):+.2f}"
        theirs = row.fold_accuracy()
        items = (
            files.predictions(row.run_ids[row.fold_names.index(fold)]) if fold in theirs else None
        )
        if best_items is None or items is None:
            body.append([row.model, row.variant, gap, "—", "—", "—", "—", "—"])
            continue
        ids = best_items.index.intersection(items.index)
        a = (best_items.loc[ids, "truth"] == best_items.loc[ids, "predicted"]).to_numpy()
        b = (items.loc[ids, "truth"] == items.loc[ids, "predicted"]).to_numpy()
        p = stats.mcnemar_exact(a, b)
        body.append(
            [
                row.model, row.variant, gap, str(len(ids)), str(int(np.sum(a & ~b))),
                str(int(np.sum(~a & b))), _p(p), "yes" if p < ALPHA else "no",
            ]
        )  # fmt: skip
    header = [
        "model", "params", "Δ accuracy (points)", "test items", "only best right",
        "only this right", "p (McNemar, exact)", f"differs at {ALPHA}",
    ]  # fmt: skip
    return [
        Text(
            f"**Against the best ({best.label})**, {where}: one train/test split, so the "
            "models are compared item by item on the shared test tracks with McNemar's exact "
            "test (from the logged predictions). p-values are not adjusted for multiple "
            "comparisons."
        ),
        Table(header, body, "llrrrrrl"),
    ]


def _per_class_blocks(ranking: Ranking, where: str, files: _RunFiles, png: Path) -> list[Block]:
    top = ranking.ranked[:TOP_MODELS]
    if not top:
        return []
    blocks: list[Block] = []
    classes = sorted(set().union(*(r.per_class_f1 for r in top)))
    if classes:
        body = [[c, *(_mean_or_dash(r.per_class_f1.get(c)) for r in top)] for c in classes]
        blocks += [
            Text(
                f"**Per-class F1 of the top {len(top)}**, {where}: mean over the folds whose "
                "test side or predictions hold the class."
            ),
            Table(["class", *(r.label for r in top)], body, "l" + "r" * len(top)),
        ]
    matrices, titles, names = [], [], None
    for row in top:
        counts = _confusion(row, files)
        if counts is not None:
            names, matrix = counts
            matrices.append(matrix)
            titles.append(f"{row.label}: acc {np.mean(row.accuracy):.3f}")
    if matrices:
        from bench.plots import confusion_png

        confusion_png(png, matrices, names, titles, f"summed over folds; {_plain(where)}")
        alt = f"confusion matrices of the top models, {where}"
        blocks += [Text(f"**Confusion matrices** (summed over folds), {where}."), Figure(png, alt)]
    return blocks


def _confusion(row: Row, files: _RunFiles) -> tuple[list[str], np.ndarray] | None:
    """Counts of (true, predicted) over the row's logged predictions, classes in the order of
    the probability columns (the dataset's)."""
    total, classes = None, None
    for run_id in row.run_ids:
        table = files.predictions(run_id)
        if table is None:
            return None
        classes = [c[len("proba_") :] for c in table.columns if c.startswith("proba_")]
        index = {c: i for i, c in enumerate(classes)}
        matrix = np.zeros((len(classes), len(classes)), dtype=int)
        np.add.at(matrix, (table["truth"].map(index), table["predicted"].map(index)), 1)
        total = matrix if total is None else total + matrix
    return (classes, total) if total is not None else None


def _pareto_blocks(ranking: Ranking, where: str, png: Path) -> list[Block]:
    rows = ranking.ranked
    if len(rows) < 2:
        return []
    from bench.plots import accuracy_vs_fit_png

    acc = [float(np.mean(r.accuracy)) for r in rows]
    fit = [float(np.mean(r.fit_seconds)) for r in rows]
    front = stats.pareto_front(acc, fit)
    accuracy_vs_fit_png(
        png,
        [r.label for r in rows],
        acc,
        [float(np.std(r.accuracy)) for r in rows],
        fit,
        front,
        f"accuracy against fit time; {_plain(where)}",
    )
    listed = ", ".join(
        f"{rows[i].label} ({acc[i]:.4f} in {fit[i]:.2f} s)"
        for i in sorted(front, key=fit.__getitem__)
    )
    return [
        Text(
            f"**Accuracy against fit time**, {where}. Pareto front (no other model is both more "
            f"accurate and faster to fit): {listed}."
        ),
        Figure(png, f"accuracy against fit time, {where}"),
    ]


def _reproducibility_blocks(rows: list[Row]) -> list[Block]:
    setups: dict[tuple[str, ...], list[str]] = {}
    versions: dict[str, set[str]] = {}
    for row in rows:
        if row.setup is None:
            continue
        t = row.setup
        setup = (
            row.protocol,
            t.command,
            t.git_commit,
            t.dataset,
            t.data_fingerprint,
            t.device,
            t.seed,
        )
        setups.setdefault(setup, []).append(row.label)
        for package, version in t.versions.items():
            versions.setdefault(package, set()).add(version)
    if not setups:
        return []
    body = [
        [protocol, f"`{command}`" if command else "—", f"`{commit}`", dataset, f"`{fp}`", device,
         seed, ", ".join(sorted(models))]
        for (protocol, command, commit, dataset, fp, device, seed), models in sorted(setups.items())
    ]  # fmt: skip
    header = [
        "protocol", "command", "git commit", "dataset", "data fingerprint", "device", "seed",
        "models",
    ]  # fmt: skip
    blocks: list[Block] = [
        Heading(2, "Reproducibility"),
        Text("What produced each row's newest runs, per protocol (from the runs' tags)."),
        Table(header, body, "llllllrl"),
    ]
    if versions:
        blocks += [
            Text(
                "**Package versions** of those runs, every protocol above ("
                + ", ".join(f"`{p}`" for p in sorted({s[0] for s in setups}))
                + ")."
            ),
            Table(
                ["package", "version"],
                [[name, ", ".join(sorted(v))] for name, v in sorted(versions.items())],
                "ll",
            ),
        ]
    return blocks


def write_summary(
    suites: list[str], trackers: Iterable[Tracker], out_dir: Path, fmt: str = "md"
) -> Path:
    """Mean rank of each model over every (suite, protocol) of ``suites``, with the Friedman
    test and a critical-difference diagram, into ``<out_dir>/summary-<a>+<b>/leaderboard.md``
    (never a suite's own folder, even for one suite)."""
    datasets: dict[str, dict[str, float]] = {}
    uris = []
    for suite, tracker in zip(suites, trackers, strict=True):
        uris.append(tracker.display)
        rows = collect(tracker.job_records())
        for protocol in sorted({r.protocol for r in rows}):
            ranking = Ranking.of([r for r in rows if r.protocol == protocol])
            if ranking.ranked:
                # rounded so that equal fold scores tie whatever order they were summed in
                scores = {r.label: round(float(np.mean(r.accuracy)), 12) for r in ranking.ranked}
                datasets[f"{suite} / {protocol}"] = scores
    if not datasets:
        raise BenchError(f"suites {', '.join(suites)} have no finished job runs; run `bench run`")
    folder = report_folder(out_dir, "summary-" + "+".join(suites))
    blocks = summary_blocks(suites, datasets, sorted(set(uris)), folder / "critical-difference.png")
    return _write(blocks, folder, f"bench summary: {', '.join(suites)}", fmt)


def summary_blocks(
    suites: list[str], datasets: dict[str, dict[str, float]], uris: list[str], png: Path
) -> list[Block]:
    names = list(datasets)
    common = sorted(set.intersection(*(set(s) for s in datasets.values())))
    missing = sorted(set.union(*(set(s) for s in datasets.values())) - set(common))
    blocks: list[Block] = [
        Heading(1, f"Summary across suites: {', '.join(f'`{s}`' for s in suites)}"),
        Text(
            f"Built by `bench report --suites {','.join(suites)}` from the MLflow runs in "
            + ", ".join(f"`{_display_uri(u)}`" for u in uris)
            + ". Each (suite, protocol) is one dataset; within it models are ranked by mean "
            "accuracy over folds (1 = best, ties share the mean rank), counting only models "
            "scored on all its test tracks."
        ),
    ]
    if len(common) < 2:
        blocks.append(Text("Fewer than two models ran on every dataset: nothing to rank."))
        return blocks
    scores = np.array([[datasets[d][m] for m in common] for d in names])
    summary = stats.rank_summary(scores, common, ALPHA)
    per_dataset = stats.ranks(scores)
    order = np.argsort(summary.mean_ranks)
    body = [
        [
            str(place),
            common[i],
            f"{summary.mean_ranks[i]:.2f}",
            *(f"{scores[d, i]:.4f} ({per_dataset[d, i]:g})" for d in range(len(names))),
        ]
        for place, i in enumerate(order, 1)
    ]
    blocks += [
        Text("**Mean rank**; columns are suite / protocol, cells accuracy (rank in it)."),
        Table(["#", "model", "mean rank", *names], body, "rlr" + "r" * len(names)),
    ]
    verdict = (
        "not computed (needs at least 3 models and 2 datasets)"
        if np.isnan(summary.friedman_p)
        else f"p = {_p(summary.friedman_p)}"
    )
    blocks.append(
        Text(
            f"Friedman test over {summary.n_datasets} datasets and {len(common)} models: "
            f"{verdict}. Nemenyi critical difference at {ALPHA}: {summary.critical_difference:.2f} "
            "ranks; models whose mean ranks differ by less are not distinguishable here (with "
            "few datasets this difference is wide: more suites make it sharper)."
        )
    )
    from bench.plots import critical_difference_png

    critical_difference_png(
        png, common, summary.mean_ranks, summary.critical_difference, "mean rank (1 = best)"
    )
    blocks.append(Figure(png, "critical difference diagram of mean ranks"))
    if missing:
        blocks.append(Text("Not ranked (missing from some datasets): " + ", ".join(missing) + "."))
    return blocks


def _write(blocks: list[Block], folder: Path, title: str, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise BenchError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "html":
        out = folder / "leaderboard.html"
        out.write_text(to_html(blocks, title))
    else:
        out = folder / "leaderboard.md"
        out.write_text(to_markdown(blocks))
    return out


def _display_uri(uri: str) -> str:
    """A SQLite store under the working directory is shown relative, as a user would type it."""
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix) :])
        try:
            return prefix + str(path.relative_to(Path.cwd().resolve()))
        except ValueError:
            return uri
    return uri


def _mean_std(values: list[float]) -> str:
    """``mean ± std`` over folds; a single fold has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _plain(text: str) -> str:
    """Caption text for a figure, where markdown marks would show literally."""
    return text.replace("`", "").replace("*", "")


def _mean_or_dash(values: list[float] | None) -> str:
    return f"{np.mean(values):.3f}" if values else "—"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"
