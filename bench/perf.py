"""``bench perf``: how fast bench featurises audio, against librosa, measured in one run.

Everything is timed on the same clips in the same process, each figure the median of
``repeats`` passes after a warm-up pass (librosa's numba kernels compile on first use; torch
allocates its pools):

- the I/O floor: just reading every WAV (soundfile, float32);
- bench end to end (read + 57 features), with all cores and with one worker, whole clips and
  3 s segments;
- librosa clip by clip in this one process, the way the Kaggle table was made
  (:func:`bench.features.fidelity.librosa_features`; needs the ``compare`` extra);
- ``bench --help`` start-up time in fresh interpreters, beside a bare ``python -c pass``.

Example::

    from bench.perf import measure, render
    result = measure(Path("../shared/data/gtzan"), repeats=3)
    Path("reports/perf.md").write_text(render(result))
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class Timing:
    """Seconds of every timed pass of one measurement (warm-up excluded)."""

    name: str
    seconds: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class PerfResult:
    root: Path
    clips: int
    audio_seconds: float
    device: str
    workers: int
    repeats: int
    timings: dict[str, Timing] = field(default_factory=dict)
    startup: dict[str, Timing] = field(default_factory=dict)
    pool_start: float | None = None


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(
    root: Path,
    repeats: int = 3,
    device: str = "cpu",
    workers: int | None = None,
    with_librosa: bool = True,
    startup_runs: int = 10,
    on_step: Callable[[str], None] | None = None,
) -> PerfResult:
    """Time reading, bench's features and librosa's on the clips under ``root`` (whole clips)."""
    import soundfile as sf

    from bench.environment import resolve_device
    from bench.features.extract import audio_files, featurise_files, read_clip, warm_workers
    from bench.features.fidelity import has_librosa, librosa_features

    device = resolve_device(device)
    workers = max(1, workers or os.cpu_count() or 1)
    files = audio_files(root)
    seconds = sum(sf.info(str(p)).duration for p, _ in files)
    result = PerfResult(Path(root), len(files), seconds, device, workers, repeats)
    step = on_step or (lambda _: None)

    def read_all() -> None:
        for path, _ in files:
            sf.read(str(path), dtype="float32")

    def features(n: int, segment: float | None, parallel: str) -> Callable[[], None]:
        def run() -> None:
            for item in featurise_files(files, segment, device, n, parallel=parallel):
                if isinstance(item, str):
                    raise RuntimeError(item)  # rows arrive as numpy: the device is done

        return run

    step("I/O floor")
    result.timings["io"] = Timing("read every WAV (soundfile)", _timed(read_all, repeats))
    on = f"{workers} worker(s) on {device}"
    if device == "cpu" and workers > 1:
        step("process pool start-up")
        start = time.perf_counter()
        warm_workers(workers)
        result.pool_start = time.perf_counter() - start
        step(f"bench, {workers} processes")
        result.timings["bench"] = Timing(
            f"bench, read + 57 features, {workers} worker processes (warm pool)",
            _timed(features(workers, None, "processes"), repeats),
        )
        result.timings["bench_3s"] = Timing(
            f"bench, 3 s segments (10 rows per clip), {workers} worker processes",
            _timed(features(workers, 3.0, "processes"), repeats),
        )
        step(f"bench, {workers} threads")
        result.timings["bench_threads"] = Timing(
            f"bench, read + 57 features, {workers} worker threads",
            _timed(features(workers, None, "threads"), repeats),
        )
        step("bench, 1 worker")
        result.timings["bench_1"] = Timing(
            "bench, read + 57 features, 1 worker thread (one core)",
            _timed(features(1, None, "threads"), repeats),
        )
    else:
        step(f"bench on {device}")
        result.timings["bench"] = Timing(
            f"bench, read + 57 features, {on}", _timed(features(workers, None, "auto"), repeats)
        )
        result.timings["bench_3s"] = Timing(
            f"bench, 3 s segments (10 rows per clip), {on}",
            _timed(features(workers, 3.0, "auto"), repeats),
        )
    if with_librosa and has_librosa():
        import librosa

        step("librosa clip by clip")

        def librosa_all() -> None:
            for path, _ in files:
                librosa_features(read_clip(path)[0], 22050)

        result.timings["librosa"] = Timing(
            f"librosa {librosa.__version__}, read + 57 features, clip by clip, one process",
            _timed(librosa_all, repeats),
        )
    step("start-up")
    result.startup = startup_times(startup_runs)
    return result


def startup_times(runs: int = 10) -> dict[str, Timing]:
    """Wall time of ``bench --help`` and of a bare interpreter, each in fresh processes."""
    script = shutil.which("bench", path=str(Path(sys.executable).parent)) or shutil.which("bench")
    bench_cmd = [script, "--help"] if script else [sys.executable, "-m", "bench.cli", "--help"]
    commands = {
        "bench --help": bench_cmd,
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    out = {}
    for name, command in commands.items():

        def run(command: list[str] = command) -> None:
            subprocess.run(command, check=True, capture_output=True)

        out[name] = Timing(name, _timed(run, runs))
    return out


def render(result: PerfResult) -> str:
    """The markdown report of :func:`measure`."""
    t = result.timings
    clips, audio = result.clips, result.audio_seconds
    lines = [
        "# bench perf: audio features",
        "",
        f"Written by `bench perf --data-dir {result.root}`. {clips} clips, {audio:.0f} s of "
        f"audio; every figure is the median of {result.repeats} passes over all clips after a "
        f"warm-up pass. Device: {result.device}; {os.cpu_count()} CPU core(s); "
        f"{platform.processor() or platform.machine()}; Python {platform.python_version()}.",
        "",
        "| what | median s (all clips) | ms per clip | clips/s | passes (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for timing in t.values():
        per_clip = 1000 * timing.median / clips
        passes = ", ".join(f"{s:.3f}" for s in timing.seconds)
        lines.append(
            f"| {timing.name} | {timing.median:.3f} | {per_clip:.1f} | "
            f"{clips / timing.median:.1f} | {passes} |"
        )
    lines += ["", "## Ratios (same clips, same run)", ""]
    if "librosa" in t:
        lib = t["librosa"].median
        how = "processes" if "bench_threads" in t else "worker(s)"
        lines.append(
            f"- **bench vs librosa clip by clip: {lib / t['bench'].median:.1f}x** "
            f"({result.workers} {how} on {result.device}; goal >= 20x on 2 CPU cores)."
        )
        if "bench_threads" in t:
            lines.append(
                f"- with {result.workers} threads instead of processes: "
                f"{lib / t['bench_threads'].median:.1f}x (threads share the GIL while torch "
                "dispatches each small operation)."
            )
        if "bench_1" in t:
            lines.append(
                f"- bench on one core vs librosa (one process, which may use a second core in "
                f"BLAS): {lib / t['bench_1'].median:.1f}x."
            )
    else:
        lines.append("- librosa not installed: `pip install -e '.[compare]'` adds the baseline.")
    if "bench_1" in t:
        lines.append(
            f"- {result.workers} workers vs 1: {t['bench_1'].median / t['bench'].median:.2f}x "
            "(processes)"
            + (
                f", {t['bench_1'].median / t['bench_threads'].median:.2f}x (threads)."
                if "bench_threads" in t
                else "."
            )
        )
    if result.pool_start is not None:
        lines.append(
            f"- The process pool starts once per process in {result.pool_start:.1f} s (spawn, "
            "import torch), not included above; `bench features` uses processes from 64 files "
            "on, threads below."
        )
    io = t["io"].median
    lines.append(
        f"- I/O floor: reading the WAVs is {100 * io / t['bench'].median:.1f}% of bench's "
        f"end-to-end time ({1000 * io / clips:.2f} ms per clip)."
    )
    if result.startup:
        help_, bare = result.startup["bench --help"], result.startup["python -c pass"]
        lines += [
            "",
            "## Start-up",
            "",
            f"- `bench --help`: median {1000 * help_.median:.0f} ms over "
            f"{len(help_.seconds)} fresh processes (bare `python -c pass`: "
            f"{1000 * bare.median:.0f} ms), so bench's own imports cost "
            f"{1000 * (help_.median - bare.median):.0f} ms: heavy modules (torch, MLflow, "
            "scikit-learn) are imported only by the commands that need them.",
        ]
    lines.append("")
    return "\n".join(lines)
