"""musicnn embedding speed: bench's torch port against the original TensorFlow code, same clips,
same run.

Both sides start from the audio files and end with every patch's outputs (taggram and
embeddings), decoding included, nothing cached:

- bench: :class:`bench.features.pretrained.embed.Embedder` (read_clip at 16 kHz, torch log-mel,
  the ported network, patches of two clips a forward pass);
- original: in a throwaway venv with TensorFlow (``tests/fixtures/README.md`` says how to make
  one), the wheel's ``models.define_model`` graph built once and restored from its checkpoint
  (its own ``extractor()`` rebuilds the graph for every file, ~29 s each), fed by
  ``extractor.batch_data``'s code (librosa load and resample, librosa mel) with the float16
  fix, all of a clip's patches in one ``sess.run``.

The two sides alternate (``--repeats``), each a fresh process, so both see the same machine
load; the table gives each run and the median ratio. It also reports how far the original's
clip embeddings are from bench's: they differ by their resamplers (soxr in librosa,
torchaudio's sinc in bench), not by the network (``tests/test_musicnn.py`` checks that).

    python benchmarks/musicnn_speed.py --tf-python /tmp/tfref/bin/python

Writes ``reports/musicnn_speed.md`` (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_side(paths: list[Path], model: str, device: str) -> dict:

    from bench.features.pretrained.embed import Embedder, layer_columns

    start = time.perf_counter()
    embedder = Embedder(model, device)
    ready = time.perf_counter()
    outputs = list(embedder.files(paths))
    seconds = time.perf_counter() - ready
    layer = "penultimate" if "musicnn" in model else "pool5"
    means = [o[:, layer_columns(model, layer)].mean(axis=0).tolist() for o in outputs]
    return {"setup": ready - start, "seconds": seconds, "means": means}


def original_side(paths: list[Path], model: str) -> dict:
    """Runs in the TensorFlow venv: the wheel's graph, restored once, and its input code."""
    import librosa
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    start = time.perf_counter()
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    training = tf.compat.v1.placeholder(tf.bool)
    outputs = models.define_model(x, training, model, 50)
    fetch = [tf.nn.sigmoid(outputs[0])]
    fetch += [tf.compat.v1.layers.flatten(outputs[5])] if "vgg" in model else list(outputs[7:9])
    means = []
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, f"{Path(models.__file__).parent}/{model}/")
        ready = time.perf_counter()
        for path in paths:
            audio, sr = librosa.load(str(path), sr=16000)
            mel = librosa.feature.melspectrogram(
                y=audio, sr=sr, hop_length=256, n_fft=512, n_mels=96
            ).T
            rep = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
            batch = np.stack([rep[s : s + 187] for s in range(0, rep.shape[0] - 186, 187)])
            values = sess.run(fetch, feed_dict={x: batch, training: False})
            means.append(values[-1].mean(axis=0).tolist())
    return {"setup": ready - start, "seconds": time.perf_counter() - ready, "means": means}


def _run(side: str, python: str, args: argparse.Namespace, paths: list[Path]) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = str(ROOT)
    command = [python, __file__, "--side", side, "--model", args.model, "--device", args.device]
    command += [str(p) for p in paths]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--side", choices=("bench", "original"), help=argparse.SUPPRESS)
    parser.add_argument("--clips", type=Path, default=ROOT.parent / "shared/data/gtzan")
    parser.add_argument("--model", default="MSD_musicnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tf-python", help="python of a venv with tensorflow and musicnn")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "musicnn_speed.md")
    args = parser.parse_args(argv)
    if args.side:
        side = bench_side if args.side == "bench" else original_side
        extra = (args.device,) if args.side == "bench" else ()
        print(json.dumps(side(args.paths, args.model, *extra)))
        return
    paths = args.paths or sorted((args.clips / "genres_original").glob("*/*.wav"))
    load = os.getloadavg()
    runs: dict[str, list[dict]] = {"bench": [], "original": []}
    for _ in range(args.repeats):
        runs["bench"].append(_run("bench", sys.executable, args, paths))
        if args.tf_python:
            runs["original"].append(_run("original", args.tf_python, args, paths))
    print(report(runs, paths, args, load))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(runs, paths, args, load))


def report(runs: dict[str, list[dict]], paths: list[Path], args, load) -> str:
    n = len(paths)
    lines = [
        f"# musicnn embeddings: bench's torch port against the original ({args.model})",
        "",
        f"`python benchmarks/musicnn_speed.py --model {args.model} --device {args.device} "
        f"--repeats {args.repeats}{' --tf-python PY' if args.tf_python else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} at the start (the machine is shared). "
        f"{n} real 30 s GTZAN clips (22,050 Hz WAV), from the file to every patch's outputs, "
        "decoding and resampling included, nothing cached; each run a fresh process, sides "
        "alternating. Rates exclude the one-off setup (loading weights; building the graph).",
        "",
        "| run | implementation | setup s (weights, graph) | clips s | clips/s | s a clip |",
        "|---|---|---|---|---|---|",
    ]
    for side, label in (("bench", f"bench (torch, {args.device})"), ("original", "original (TF)")):
        for i, run in enumerate(runs[side], 1):
            s = run["seconds"]
            setup = run["setup"]
            lines.append(f"| {i} | {label} | {setup:.1f} | {s:.1f} | {n / s:.2f} | {s / n:.2f} |")
    if runs["original"]:
        ratios = [
            o["seconds"] / b["seconds"]
            for b, o in zip(runs["bench"], runs["original"], strict=True)
        ]
        mine = np.array(runs["bench"][-1]["means"])
        theirs = np.array(runs["original"][-1]["means"])
        lines += [
            "",
            f"bench is **{statistics.median(ratios):.2f}x** as fast as the original (median of "
            f"{', '.join(f'{r:.2f}' for r in ratios)}).",
            "",
            f"Clip embeddings (mean over patches), original against bench, largest absolute "
            f"difference {np.abs(mine - theirs).max():.2e} (values up to "
            f"{np.abs(theirs).max():.1f}): the resamplers differ (librosa's soxr, torchaudio's "
            "sinc); on the same 16 kHz samples the port matches to 1e-4 "
            "(`tests/test_musicnn.py`).",
        ]
    bench_rate = statistics.median(n / r["seconds"] for r in runs["bench"])
    lines += [
        "",
        f"At {bench_rate:.2f} clips/s, 1,000 thirty-second clips take about "
        f"{1000 / bench_rate:.0f} s here.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
