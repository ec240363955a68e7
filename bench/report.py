"""Markdown leaderboard of a suite, built from its MLflow runs only (nothing is recomputed).

Each protocol gets its own table: scores from a random split and from an artist-filtered split
are not comparable, so they are never ranked together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.tracking import Tracker


@dataclass
class Row:
    model: str
    family: str
    protocol: str
    protocol_description: str
    accuracy: list[float]
    balanced_accuracy: list[float]
    f1_macro: list[float]
    log_loss: list[float]
    fit_seconds: list[float]
    predict_seconds_per_item: list[float]
    failed_folds: dict[str, str]
    run_ids: list[str]
    n_test: list[int]
    newest_parent: tuple[int, str] = (0, "")
    """(start time, parent run id) of the newest run in the row."""
    variant: str = "default"
    """``default`` (the suite's parameters) or ``tuned`` (``bench run --tuned``)."""

    @property
    def folds_finished(self) -> int:
        return len(self.accuracy)


def _row_key(tags: dict[str, str]) -> tuple[str, str, str]:
    return (tags["bench.model"], tags.get("bench.variant", "default"), tags["bench.protocol"])


def collect(runs: list[dict[str, Any]]) -> list[Row]:
    """One row per (model, variant, protocol): its newest configuration, newest run per fold."""
    latest_config: dict[tuple[str, str, str], tuple[int, str]] = {}
    for run in runs:
        tags = run["tags"]
        key = _row_key(tags)
        stamp = (run["start_time"], tags["bench.config_hash"])
        latest_config[key] = max(latest_config.get(key, stamp), stamp)
    rows: dict[tuple[str, str, str], Row] = {}
    by_fold: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: r["start_time"]):
        tags = run["tags"]
        key = _row_key(tags)
        if tags["bench.config_hash"] != latest_config[key][1]:
            continue
        folds = by_fold.setdefault(key, {})
        previous = folds.get(tags["bench.fold"])
        if previous is None or previous["status"] != "FINISHED" or run["status"] == "FINISHED":
            folds[tags["bench.fold"]] = run
    for key, folds in by_fold.items():
        sample = next(iter(folds.values()))["tags"]
        row = Row(
            key[0],
            sample.get("bench.family", "?"),
            key[2],
            sample.get("bench.protocol_description", key[2]),
            *([] for _ in range(6)),
            failed_folds={},
            run_ids=[],
            n_test=[],
            variant=key[1],
        )
        for fold, run in sorted(folds.items()):
            stamp = (run["start_time"], run["tags"].get("mlflow.parentRunId", ""))
            row.newest_parent = max(row.newest_parent, stamp)
            if run["status"] == "FINISHED":
                m = run["metrics"]
                row.accuracy.append(m["accuracy"])
                row.balanced_accuracy.append(m["balanced_accuracy"])
                row.f1_macro.append(m["f1_macro"])
                row.log_loss.append(m["log_loss"])
                row.fit_seconds.append(m["fit_seconds"])
                row.predict_seconds_per_item.append(m["predict_seconds_per_item"])
                row.run_ids.append(run["run_id"])
                row.n_test.append(int(run["params"].get("n_test", 0)))
            elif run["status"] in ("FAILED", "KILLED"):
                row.failed_folds[fold] = run["tags"].get("bench.error", run["status"])
        rows[key] = row
    return list(rows.values())


def collect_skips(runs: list[dict[str, Any]], rows: list[Row]) -> dict[tuple[str, str], str]:
    """(model, protocol) -> reason, from the newest skip of each; a model that has run since
    (under a newer ``bench run``) with nothing skipped is not listed."""
    newest_job = {(r.model, r.protocol): r.newest_parent for r in rows}
    skips: dict[tuple[str, str], str] = {}
    for run in sorted(runs, key=lambda r: r["start_time"]):
        key = (run["tags"]["bench.model"], run["tags"]["bench.protocol"])
        skips[key] = run
    return {
        key: run["tags"]["bench.skip_reason"]
        for key, run in skips.items()
        if newest_job.get(key, (0, ""))[0] <= run["start_time"]
        or newest_job[key][1] == run["tags"].get("mlflow.parentRunId")
    }


def leaderboard_markdown(
    suite: str,
    rows: list[Row],
    tracking_uri: str,
    skips: dict[tuple[str, str], str] | None = None,
) -> str:
    skips = skips or {}
    lines = [f"# Leaderboard: `{suite}`", ""]
    lines.append(f"Built by `bench report --suite {suite}` from the MLflow runs in {tracking_uri}.")
    lines.append(
        "Scores are means ± standard deviations over folds; times are per fold; test tracks "
        "are summed over folds (audio models see only the tracks that have audio). "
        "*params*: `default` is the suite's parameters, `tuned` those `bench tune` found on the "
        "development split, which the tuned protocol's test sides exclude."
    )
    for protocol in sorted({r.protocol for r in rows} | {p for _, p in skips}):
        group = [r for r in rows if r.protocol == protocol]
        full = max((sum(r.n_test) for r in group), default=0)
        ranked = sorted(group, key=lambda row: _order(row, full))
        title = group[0].protocol_description if group else protocol
        lines += ["", f"## Protocol: {title} (`{protocol}`)", ""]
        lines.append(
            "| rank | model | params | family | accuracy | macro-F1 | balanced acc. | log loss "
            "| fit s | predict ms/item | test tracks | folds ok/failed | runs |"
        )
        lines.append("|---:|---|---|---|---|---|---|---|---:|---:|---:|---:|---|")
        for rank, row in enumerate(ranked, 1):
            if not row.accuracy:
                scores = ["—"] * 7
                rank_cell = "—"
            else:
                scores = [
                    _mean_std(row.accuracy),
                    _mean_std(row.f1_macro),
                    _mean_std(row.balanced_accuracy),
                    _mean_std(row.log_loss),
                    f"{np.mean(row.fit_seconds):.2f}",
                    f"{1000 * np.mean(row.predict_seconds_per_item):.3f}",
                    str(sum(row.n_test)),
                ]
                # A model scored on fewer test tracks (the audio subset) is not ranked
                # against models scored on all of them.
                rank_cell = str(rank) if sum(row.n_test) == full else "subset"
            runs = " ".join(f"`{r[:8]}`" for r in row.run_ids)
            lines.append(
                f"| {rank_cell} | {row.model} | {row.variant} | {row.family} | "
                + " | ".join(scores)
                + f" | {row.folds_finished}/{len(row.failed_folds)} | {runs} |"
            )
        failed = [(r, f, e) for r in group for f, e in sorted(r.failed_folds.items())]
        if failed:
            lines += ["", f"### Failed jobs ({protocol})", "", "| model | params | fold | error |"]
            lines.append("|---|---|---|---|")
            for row, fold, error in failed:
                lines.append(f"| {row.model} | {row.variant} | {fold} | {_cell(error)} |")
        skipped = sorted((m, why) for (m, p), why in skips.items() if p == protocol)
        if skipped:
            lines += ["", f"### Skipped models ({protocol})", "", "| model | reason |", "|---|---|"]
            lines += [f"| {model} | {_cell(why)} |" for model, why in skipped]
    return "\n".join(lines) + "\n"


def write_report(suite: str, tracker: Tracker, out_dir: Path) -> Path:
    rows = collect(tracker.job_runs())
    skips = collect_skips(tracker.job_runs("skip"), rows)
    if not rows and not skips:
        from bench.errors import BenchError

        raise BenchError(f"suite {suite!r} has no job runs in {tracker.uri}; run `bench run` first")
    out = out_dir / suite / "leaderboard.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(leaderboard_markdown(suite, rows, tracker.uri, skips))
    return out


def _order(row: Row, full: int) -> tuple[int, float]:
    """Ranked rows by accuracy, then rows scored on a subset of the test tracks, then failures."""
    if not row.accuracy:
        return (2, 0.0)
    return (int(sum(row.n_test) < full), -float(np.mean(row.accuracy)))


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
