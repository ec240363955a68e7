"""Saving a fitted model: bench's `save_model` against plain `skops.io.dump`, same settings.

    python benchmarks/model_save.py [--data-dir ../shared/data/gtzan] [--repeats 3]

Fits `rf` (500 trees) and the default `ensemble` (7 members, each bagged 5 times, ~25,000
numpy arrays) on the real Kaggle features of 800 GTZAN tracks, then saves each with both,
alternating, `--repeats` times, and reports the medians and their ratio, with the files'
sizes and members. Both write deflate level 1; bench's save only answers skops's per-array
"is this name in the zip yet" check from a set (see `bench.artifacts.save_model`). Writes
reports/model_save.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "gtzan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "model_save.md")
    args = parser.parse_args()

    import skops.io as sio

    from bench import registry
    from bench.artifacts import load_model, save_model
    from bench.data.gtzan import load_gtzan

    dataset = load_gtzan(args.data_dir)
    X, y = dataset.features.to_numpy()[:800], dataset.labels[:800]
    lines = [
        "# Saving a fitted model: bench's `save_model` against `skops.io.dump`",
        "",
        f"`python benchmarks/model_save.py`: fitted on 800 real GTZAN feature rows; each model "
        f"saved {args.repeats} times by each, alternating, in the same run; medians. Both write "
        "deflate level 1 and the same members; the files load to the same probabilities.",
        "",
        "| model | arrays in the file | MB | skops.io.dump s | bench save_model s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("rf", "ensemble"):
        spec = registry.get(name)
        model = spec.create(**spec.complete({}, 0, "cpu")).fit(X, y)
        times: dict[str, list[float]] = {"skops": [], "bench": []}
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for how in ("skops", "bench"):
                    path = Path(tmp) / f"{how}-{repeat}.skops"
                    start = time.perf_counter()
                    if how == "skops":
                        sio.dump(model, path, compression=zipfile.ZIP_DEFLATED, compresslevel=1)
                    else:
                        save_model(model, path)
                    times[how].append(time.perf_counter() - start)
            ours, theirs = Path(tmp) / "bench-0.skops", Path(tmp) / "skops-0.skops"
            with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
                members = len(a.namelist())
                assert members == len(b.namelist())
            probe = X[:50]
            same = np.array_equal(load_model(ours).predict_proba(probe), model.predict_proba(probe))
            assert same, f"{name}: the saved model predicts differently"
            size = ours.stat().st_size / 1e6
        plain, bench = statistics.median(times["skops"]), statistics.median(times["bench"])
        lines.append(
            f"| `{name}` | {members:,} | {size:.1f} | {plain:.2f} | {bench:.2f} | "
            f"{plain / bench:.2f}x |"
        )
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
