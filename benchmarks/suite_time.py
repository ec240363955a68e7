"""How long the whole `gtzan` suite takes on both protocols, and where its time goes.

    python benchmarks/suite_time.py [--data-dir ../shared/data/gtzan] [--against REV]

Runs `bench run --suite gtzan --no-report` on the 5 stratified folds, then on the
artist-filtered split, into a fresh SQLite store, as a user would (default workers), and
times each command from start to exit. From the store it then sums, per protocol, the jobs'
wall time (claim to record), their fit time, and the rest: starting the job's process,
predicting, saving and recording it. With ``--against REV`` the same two commands run first
at that git revision (a temporary worktree, put first on ``PYTHONPATH``), in the same run, and
the report gives the ratio; ``--repeats N`` alternates N runs a side and compares their
medians. Run it alone on the machine: the times are wall-clock. Writes
reports/gtzan/suite_time.md.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("stratified-kfold", "fault-filtered")
GOAL_SECONDS = 600.0


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _revision(where: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def run_suite(source: Path, data_dir: Path, folder: Path) -> dict[str, float]:
    """Both protocols' commands with ``source``'s bench into a fresh store in ``folder``."""
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_CACHE", "BENCH_SUITES")}
    env["PYTHONPATH"] = str(source)  # a fresh ./.cache/bench in ``folder``: no warm features
    walls = {}
    for protocol in PROTOCOLS:
        command = [
            sys.executable,
            "-c",
            "import sys; from bench.cli import main; sys.exit(main())",
            "run",
            "--suite",
            "gtzan",
            "--data-dir",
            str(data_dir),
            "--protocol",
            protocol,
            "--no-report",
            "--tracking-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
        ]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        walls[protocol] = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{protocol} at {source} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        print(f"  {protocol}: {_clock(walls[protocol])}", flush=True)
    return walls


def job_times(store: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per protocol, and per model over both: jobs, summed job wall (claim to record), summed
    fit seconds."""
    db = sqlite3.connect(store)
    rows = db.execute(
        """select p.value, m.value, r.start_time, r.end_time, f.value from runs r
        join tags m on m.run_uuid = r.run_uuid and m.key = 'bench.model'
        join tags k on k.run_uuid = r.run_uuid and k.key = 'bench.kind' and k.value = 'job'
        join tags p on p.run_uuid = r.run_uuid and p.key = 'bench.protocol'
        left join latest_metrics f on f.run_uuid = r.run_uuid and f.key = 'fit_seconds'
        where r.status = 'FINISHED'"""
    ).fetchall()
    protocols: dict[str, dict[str, float]] = {}
    models: dict[str, dict[str, float]] = {}
    for protocol, model, start, end, fit in rows:
        for table, key in ((protocols, protocol), (models, model)):
            entry = table.setdefault(key, {"jobs": 0, "wall": 0.0, "fit": 0.0})
            entry["jobs"] += 1
            entry["wall"] += (end - start) / 1000
            entry["fit"] += fit or 0.0
    return protocols, models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "gtzan")
    parser.add_argument("--against", help="a git revision to time in the same run, first")
    parser.add_argument("--repeats", type=int, default=1, help="runs a side, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gtzan" / "suite_time.md")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()

    sources: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="suite-time-") as tmp:
        if args.against:
            tree = Path(tmp) / "against"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree)]
                + [args.against],
                check=True,
            )
            sources.append((_revision(tree), tree))
        sources.append((_revision(ROOT) + ("+" if _dirty() else ""), ROOT))
        results = []
        try:
            for repeat in range(args.repeats):  # alternating, so drift hits both sides
                for label, source in sources:
                    print(f"bench at {label}, run {repeat + 1}", flush=True)
                    folder = Path(tmp) / f"run-{len(results)}"
                    folder.mkdir()
                    walls = run_suite(source, data_dir, folder)
                    results.append((label, walls, job_times(folder / "mlflow.db")))
        finally:
            if args.against:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )

    lines = [
        "# The whole `gtzan` suite on both protocols: wall time",
        "",
        f"`python benchmarks/suite_time.py {' '.join(sys.argv[1:])}`"
        f": `bench run --suite gtzan --no-report` on the 20-clip `gtzan` data (1000 feature rows, "
        f"audio for 20), stratified 5 folds then the artist-filtered split, a fresh SQLite store "
        f"each, default workers, {os.cpu_count()} CPU cores, {args.repeats} run(s) a side, "
        "alternating, alone on the machine. "
        "*Job wall* sums the jobs' runs from claim to record; *other* is job wall minus fit: the "
        "job's process start, predicting, saving and recording.",
        "",
        "| bench at | stratified | artist-filtered | both | goal 10:00 | jobs | job wall s | "
        "fit s | other s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = [f"`{label}` #{i // len(sources) + 1}" for i, (label, _, _) in enumerate(results)]
    for name, (_, walls, (protocols, _)) in zip(names, results, strict=True):
        both = sum(walls.values())
        jobs = protocols.values()
        n = sum(j["jobs"] for j in jobs)
        wall = sum(j["wall"] for j in jobs)
        fit = sum(j["fit"] for j in jobs)
        lines.append(
            f"| {name} | {_clock(walls['stratified-kfold'])} | "
            f"{_clock(walls['fault-filtered'])} | **{_clock(both)}** | "
            f"{'met' if both <= GOAL_SECONDS else 'over'} | {n} | {wall:.0f} | {fit:.0f} | "
            f"{wall - fit:.0f} |"
        )
    last = results[-1][2][1]
    models = sorted(
        {model for _, _, (_, per_model) in results for model in per_model},
        key=lambda model: -last.get(model, {"wall": 0.0})["wall"],
    )
    lines += [
        "",
        "Per model, both protocols (job wall s / fit s):",
        "",
        "| model | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(results),
    ]
    for key in models:
        cells = []
        for _, _, (_, per_model) in results:
            entry = per_model.get(key)
            cells.append(f"{entry['wall']:.0f} / {entry['fit']:.0f}" if entry else "—")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if len(sources) == 2:
        (first, _), (second, _) = sources
        before, after = (
            statistics.median(sum(w.values()) for label, w, _ in results if label == side)
            for side in (first, second)
        )
        ratio = f"**{before / after:.3f}x**"
        lines += [
            "",
            f"Medians of both protocols' wall over {args.repeats} run(s) a side: `{first}` "
            f"{_clock(before)}, `{second}` {_clock(after)}. Ratio, `{first}` over `{second}`: "
            f"{ratio}.",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


def _dirty() -> bool:
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "bench"],
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(status.stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
