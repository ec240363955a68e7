"""Featurising many clips into the HDF5 feature cache keeps memory bounded.

Generates (once) synthetic GTZAN clips of 30 s into a scratch folder outside the repository,
then, for each clip count, starts a *fresh* Python process that streams the 57 features of that
many clips into an empty :class:`~bench.features.cache.FeatureCache` and reports its peak
resident memory (``ru_maxrss``) and throughput. Worker threads are used (not the process pool
bench picks from 64 files on), so one process's ``ru_maxrss`` is the whole footprint. Bounded
memory means the peak does not grow with the number of clips.

To keep generation short, ``--unique`` clips are rendered and then linked under further names
(``blues.00300.wav`` -> ``blues.00000.wav``); each name is a separate cache entry computed from
its own read of the file, so the featurisation work and the memory profile are those of as many
distinct clips.

    python benchmarks/features_scale.py --scratch /tmp/bench-scale       # 300 vs 3,000 clips

Writes ``reports/features_scale.md`` (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
from pathlib import Path
import numpy as np
from bench.features.cache import FeatureCache
from bench.features.extract import TableParams
paths = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
values = FeatureCache(Path(sys.argv[2])).get(paths, TableParams(parallel="threads"), device="cpu")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"clips": len(values), "seconds": seconds, "peak_kib": peak,
                  "import_kib": before, "finite": all(bool(np.isfinite(v).all()) for v in values)}))
"""


def clips(scratch: Path, unique: int, total: int) -> list[Path]:
    """``total`` clip paths: ``unique`` rendered synthetic clips, linked under more names."""
    from bench.data.gtzan import GENRES
    from bench.features.synthetic import synth_gtzan

    source = scratch / f"synthetic-{unique}"
    if not (source / ".complete").is_file():
        start = time.perf_counter()
        synth_gtzan(source, per_genre=unique // len(GENRES), duration=30.0, progress=True)
        (source / ".complete").write_text(f"{time.perf_counter() - start:.1f}")
    rendered = sorted((source / "genres_original").glob("*/*.wav"))
    linked = scratch / "linked" / "genres_original"
    out = []
    for k in range(total):
        original = rendered[k % len(rendered)]
        genre = original.parent.name
        name = linked / genre / f"{genre}.{k:05d}.wav"
        if not name.exists():
            name.parent.mkdir(parents=True, exist_ok=True)
            name.symlink_to(original)
        out.append(name)
    return out


def measure(paths: list[Path], cache: Path) -> dict:
    """Featurise ``paths`` into an empty cache in a fresh interpreter; its peak RSS and time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listing = cache.with_suffix(".json")  # 3,000 paths are too long for a command line
    listing.write_text(json.dumps([str(p) for p in paths]))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(listing), str(cache)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--counts", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--unique", type=int, default=300, help="clips actually rendered")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "features_scale.md")
    args = parser.parse_args()

    paths = clips(args.scratch, args.unique, max(args.counts))
    rows = []
    for count in args.counts:
        cache = args.scratch / f"cache-{count}"
        for stale in cache.glob("*"):
            stale.unlink()
        result = measure(paths[:count], cache)
        size = sum(f.stat().st_size for f in cache.glob("*.h5"))
        rows.append({**result, "cache_mib": size / 2**20})
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "# Featurising into the HDF5 cache: memory at scale",
        "",
        "Written by `python benchmarks/features_scale.py`. Each row: a fresh Python process "
        "streams the 57 features of N synthetic 30 s clips (22050 Hz, 16-bit) into an empty "
        "`FeatureCache` (`TableParams(parallel='threads')`, whole clips) on the CPU with one "
        "worker thread per "
        f"core ({os.cpu_count()} here). {args.unique} clips were rendered by "
        "`bench.data.synthetic` and linked under further names; every name is read and "
        "featurised on its own. Peak RSS is `ru_maxrss` of that process (it includes the "
        "interpreter, torch and the other imports).",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}.",
        "",
        "| clips | peak RSS (MiB) | RSS after imports (MiB) | seconds | clips/s | cache file (MiB) "
        "| all finite |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['clips']:,} | {row['peak_kib'] / 1024:.0f} | {row['import_kib'] / 1024:.0f} "
            f"| {row['seconds']:.1f} | {row['clips'] / row['seconds']:.1f} "
            f"| {row['cache_mib']:.1f} | {row['finite']} |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        lines += [
            "",
            f"Peak RSS at {last['clips']:,} clips is {last['peak_kib'] / first['peak_kib']:.2f}x "
            f"that at {first['clips']:,} clips ({last['clips'] // first['clips']}x the clips).",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
