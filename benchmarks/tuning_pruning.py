"""Does pruning pay? The same 50-trial `mlp` study with the median pruner and with none.

Both studies of a pair use the same sampler seed, data, development split and one worker, in
the same process, one after the other; pairs are repeated over seeds and the medians quoted.
Also times the acceptance command `bench tune mlp --trials 50 --suite gtzan` as users run it.

    python benchmarks/tuning_pruning.py --data-dir ../shared/data/gtzan --seeds 0 1 2

Writes reports/tuning_pruning.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.tracking import Tracker
from bench.tuning.options import TuneOptions
from bench.tuning.session import plan, tune


def one_study(data_dir: Path, seed: int, pruner: str, trials: int, scratch: Path):
    """One study of ``mlp`` on gtzan's development split (the suite's seed), sampled with
    ``seed``: planned and checked by bench.tuning like ``bench tune``, one worker, one thread."""
    options = TuneOptions(
        "mlp",
        "gtzan",
        trials,
        data_dir,
        storage=str(scratch / f"{pruner}-{seed}.journal"),
        study=f"bench-{pruner}-{seed}",
        pruner=pruner,
        device="cpu",
    )
    request = replace(plan(options), seed=seed, threads=1)
    tracker = Tracker(request.suite.name, f"sqlite:///{scratch}/mlflow-{pruner}-{seed}.db")
    start = time.perf_counter()
    result = tune(request, tracker)
    return time.perf_counter() - start, result.state, request.dev.description


def acceptance(data_dir: Path, trials: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli", "tune", "mlp", "--trials", str(trials),
             "--suite", "gtzan", "--data-dir", str(data_dir.resolve())],
            cwd=home, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/gtzan"))
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("reports/tuning_pruning.md"))
    args = parser.parse_args()

    args.data_dir = args.data_dir.resolve()
    rows = []
    home = Path.cwd()
    args.out = args.out.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # tune() writes experiments/tuned/: keep that out of the checkout
        for seed in args.seeds:
            t_none, s_none, dev = one_study(args.data_dir, seed, "none", args.trials, Path(scratch))
            t_med, s_med, _ = one_study(args.data_dir, seed, "median", args.trials, Path(scratch))
            rows.append((seed, t_none, s_none, t_med, s_med))
            print(
                f"seed {seed}: no pruning {t_none:.0f} s best {s_none.best_value:.4f}; "
                f"median {t_med:.0f} s best {s_med.best_value:.4f} ({s_med.pruned} pruned); "
                f"{t_none / t_med:.2f}x",
                flush=True,
            )
        os.chdir(home)
    accept_seconds, accept_out = acceptance(args.data_dir, args.trials)
    print(accept_out)

    ratios = [t_none / t_med for _, t_none, _, t_med, _ in rows]
    gaps = [s_none.best_value - s_med.best_value for _, _, s_none, _, s_med in rows]
    lines = [
        "# Tuning: median pruning against no pruning",
        "",
        f"`python benchmarks/tuning_pruning.py --data-dir {args.data_dir} --seeds "
        f"{' '.join(map(str, args.seeds))}` on {os.cpu_count()} CPU cores, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        f"Model `mlp`, {args.trials} trials, TPE sampler, one worker, on the real "
        f"`features_30_sec.csv`: {dev}. Each pair of studies uses the same sampler "
        "seed; the median pruner has 5 startup trials and a 10-epoch warm-up, and sees every "
        "epoch's best validation accuracy so far.",
        "",
        "| seed | no pruning: s | best | median pruner: s | best | pruned trials | speed-up "
        "| best lost (points) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (seed, t_none, s_none, t_med, s_med), ratio, gap in zip(rows, ratios, gaps, strict=True):
        lines.append(
            f"| {seed} | {t_none:.0f} | {s_none.best_value:.4f} | {t_med:.0f} | "
            f"{s_med.best_value:.4f} | {s_med.pruned}/{args.trials} | {ratio:.2f}x | "
            f"{100 * gap:+.2f} |"
        )
    lines += [
        "",
        f"**Median speed-up {statistics.median(ratios):.2f}x; median best value lost "
        f"{100 * statistics.median(gaps):+.2f} points** (goal: >= 2x, within 1 point).",
        "",
        "## The acceptance command",
        "",
        f"`bench tune mlp --trials {args.trials} --suite gtzan --data-dir {args.data_dir}` "
        f"(default: {min(os.cpu_count() or 1, 4)} workers, median pruner), fresh study: "
        f"**{accept_seconds:.0f} s** wall (goal <= 180 s). Its summary:",
        "",
        "```",
        *[line for line in accept_out.splitlines() if line.strip()],
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
