"""Figures of jobs and reports: confusion matrices, accuracy against fit time, mean ranks.

Every function draws with the non-interactive Agg backend and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_confusion(ax, matrix: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Counts (rows: true class, columns: predicted) with the numbers written in the cells."""
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            color = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)


def confusion_png(
    path: Path,
    matrices: Sequence[np.ndarray],
    classes: Sequence[str],
    titles: Sequence[str],
    suptitle: str = "",
) -> Path:
    """One panel per matrix, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(6 * len(matrices), 5.5), dpi=100)
    for ax, matrix, title in zip(np.atleast_1d(axes), matrices, titles, strict=True):
        draw_confusion(ax, matrix, classes, title)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def accuracy_vs_fit_png(
    path: Path,
    labels: Sequence[str],
    accuracy: Sequence[float],
    accuracy_std: Sequence[float],
    fit_seconds: Sequence[float],
    front: Sequence[int],
    title: str,
) -> Path:
    """Mean accuracy (± std over folds) against mean fit time, log scale; the Pareto front
    (no model both more accurate and faster) joined by a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
    fit = np.maximum(np.asarray(fit_seconds, dtype=float), 1e-3)
    acc = np.asarray(accuracy, dtype=float)
    on_front = np.zeros(len(acc), dtype=bool)
    on_front[list(front)] = True
    ax.errorbar(fit, acc, yerr=accuracy_std, fmt="none", ecolor="0.7", zorder=1)
    ax.scatter(fit[~on_front], acc[~on_front], color="tab:blue", zorder=2, label="dominated")
    ax.scatter(fit[on_front], acc[on_front], color="tab:red", zorder=3, label="Pareto front")
    order = sorted(front, key=lambda i: fit[i])
    ax.plot(fit[order], acc[order], color="tab:red", linewidth=1, drawstyle="steps-post")
    for x, y, label in zip(fit, acc, labels, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("fit time per fold (s, log scale)")
    ax.set_ylabel("accuracy (mean over folds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def critical_difference_png(
    path: Path,
    models: Sequence[str],
    mean_ranks: Sequence[float],
    critical_difference: float,
    title: str,
) -> Path:
    """Demšar's diagram: models on a rank axis (1 = best, left); a bar joins models whose mean
    ranks differ by less than the critical difference (not distinguishable at the level)."""
    plt = _pyplot()
    ranks = np.asarray(mean_ranks, dtype=float)
    order = np.argsort(ranks)
    k = len(models)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * k), dpi=100)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 1), 2.2)
    ax.axhline(0, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="black", linewidth=1)
        ax.text(r, 0.3, str(r), ha="center", fontsize=8)
    if np.isfinite(critical_difference):
        ax.plot([1, min(1 + critical_difference, k + 0.5)], [1.3, 1.3], color="black", linewidth=2)
        ax.text(1 + critical_difference / 2, 1.5, f"CD = {critical_difference:.2f}", ha="center")
    for row, i in enumerate(order, 1):
        ax.plot([ranks[i], ranks[i]], [0, -row], color="0.4", linewidth=0.8)
        ax.plot([ranks[i], k + 0.4], [-row, -row], color="0.4", linewidth=0.8)
        ax.text(k + 0.45, -row, f"{models[i]} ({ranks[i]:.2f})", va="center", fontsize=8)
    for n, (lo, hi) in enumerate(_cliques(ranks[order], critical_difference)):
        y = -0.3 - 0.15 * n
        ax.plot([ranks[order][lo], ranks[order][hi]], [y, y], color="tab:red", linewidth=3)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _cliques(sorted_ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs of consecutive models whose rank spread is below the critical difference."""
    runs = []
    for lo in range(len(sorted_ranks)):
        hi = lo
        while hi + 1 < len(sorted_ranks) and sorted_ranks[hi + 1] - sorted_ranks[lo] < cd:
            hi += 1
        if hi > lo and not any(a <= lo and hi <= b for a, b in runs):
            runs.append((lo, hi))
    return runs
