#!/usr/bin/env bash
# First GPU measurements of bench, in one short run on a lent GPU machine (one NVIDIA H200).
#
#   bash benchmarks/gpu_check.sh                                  # there: results under $OUT
#   DEVICE=cpu OUT=/tmp/gpu-out CLIPS=60 bash benchmarks/gpu_check.sh    # dry run on a CPU
#
# Run from the repository root. Needs the 20 real GTZAN clips (and features_30_sec.csv) in
# .gpu-data/gtzan (ignored by git, carried) and, where soundfile is not installed, the wheels in
# .whl/ (soundfile, cffi, pycparser; carried), which are installed into /tmp/site.
# Writes at most 7 files into $OUT: log.txt, summary.md, features_cuda.md, torch_cuda.md,
# perf.md, cnn_throughput.md, pytest.txt. Each step runs under `timeout`, and the steps left
# when BUDGET seconds have gone are skipped, so the script ends in about BUDGET seconds at most.
#
# Knobs (environment): DEVICE (cuda), PY (python3), DATA (.gpu-data/gtzan), CLIPS (1000: clips of
# the features-at-scale step), EPOCHS (5: torch-estimator step), TP_CLIPS (100) and TP_EPOCHS (5):
# benchmarks/cnn_throughput.py, REPEATS (5: bench perf), BUDGET (330 s), WORK (/tmp/gpu-check).
set -u -o pipefail

export DEVICE=${DEVICE:-cuda}
export PY=${PY:-python3}
export DATA=${DATA:-.gpu-data/gtzan}
export CLIPS=${CLIPS:-1000}
export EPOCHS=${EPOCHS:-5}
export TP_CLIPS=${TP_CLIPS:-100}
export TP_EPOCHS=${TP_EPOCHS:-5}
export REPEATS=${REPEATS:-5}
BUDGET=${BUDGET:-330}
export WORK=${WORK:-/tmp/gpu-check}
OUT=${OUT:?set OUT to the folder that comes back}
export OUT
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export BENCH_CACHE=$WORK/cache            # bench's feature cache and checkpoints, off the repo
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
START=$SECONDS
SUMMARY=$OUT/summary.md
FAILED=0

step() {  # step NAME TIMEOUT COMMAND...: run under a timeout, record rc and seconds
    local name=$1 limit=$2 left rc t0
    shift 2
    left=$((BUDGET - (SECONDS - START)))
    if ((left < 15)); then
        echo "| $name | skipped: budget of ${BUDGET}s spent | |" >>"$SUMMARY"
        echo "=== $name: SKIPPED (budget spent)"
        return
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (limit ${limit}s, $((SECONDS - START))s elapsed)"
    t0=$SECONDS
    timeout -k 5 "$limit" bash -c "set -o pipefail; $*"  # the functions are exported
    rc=$?
    ((rc != 0)) && FAILED=$((FAILED + 1))
    ((rc == 124 || rc == 137)) && rc="$rc (timed out at ${limit}s)"
    echo "| $name | $rc | $((SECONDS - t0)) |" >>"$SUMMARY"
    echo "=== $name: rc $rc, $((SECONDS - t0))s"
}

environment() {
    {
        echo "# bench GPU check: environment"
        echo
        echo '```'
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
            2>&1 || echo "nvidia-smi: not available"
        echo "/proc/driver/nvidia present: $([ -e /proc/driver/nvidia ] && echo yes || echo no)"
        echo "cores: $(nproc); $(uname -srm)"
        git rev-parse HEAD 2>/dev/null || echo "git: no repository here"
        git status --short 2>/dev/null | head -20
        "$PY" - <<'EOF'
import importlib.metadata as md, platform, sys
import torch
print("python", platform.python_version(), sys.executable)
for name in ("torch", "torchaudio", "numpy", "scipy", "scikit-learn", "pandas", "h5py",
             "soundfile", "cffi", "pytest"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
print("cuda available:", torch.cuda.is_available(), "| torch cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
EOF
        echo '```'
        echo
        echo "| step | exit status | seconds |"
        echo "|---|---|---|"
    } >"$SUMMARY" 2>&1
    cat "$SUMMARY"
}

wheels() {  # soundfile (and its cffi, pycparser) where the image lacks it
    if "$PY" -c "import soundfile" 2>/dev/null; then
        echo "soundfile importable: no wheels installed"
        return 0
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || return
    export PYTHONPATH=/tmp/site:$PYTHONPATH
    "$PY" -c "import soundfile; print('soundfile', soundfile.__version__, soundfile.__libsndfile_version__)"
}

cuda_shim() {  # bench.environment.cuda_present looks for /proc/driver/nvidia before torch
    [ "$DEVICE" = cpu ] && return 0
    [ -e /proc/driver/nvidia ] && return 0
    if "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
        echo "NOTE: torch sees CUDA but /proc/driver/nvidia is missing, so bench's cuda_present()"
        echo "would refuse --device cuda; patching it for this run through a sitecustomize."
        mkdir -p "$WORK/shim"
        cat >"$WORK/shim/sitecustomize.py" <<'EOF'
import bench.environment as _environment
_environment.cuda_present = lambda: __import__("torch").cuda.is_available()
EOF
        export PYTHONPATH=$WORK/shim:$PYTHONPATH
        echo "- /proc/driver/nvidia missing: bench.environment.cuda_present patched (sitecustomize)" >>"$WORK/notes"
    else
        echo "WARNING: torch sees no CUDA device; the cuda steps will fail"
    fi
}

features_scale() {  # the 57 features of CLIPS clips on DEVICE: the 1,000-clips-in-10-s goal
    "$PY" - <<'EOF'
import os, subprocess, sys, time
from pathlib import Path
import numpy as np, torch
from bench.features.extract import audio_files, featurise_files
from bench.features.cache import FeatureCache
from bench.features.extract import TableParams

device, clips, work, out = os.environ["DEVICE"], int(os.environ["CLIPS"]), Path(os.environ["WORK"]), Path(os.environ["OUT"])
real = audio_files(Path(os.environ["DATA"]))
root = work / "scale"
for k in range(clips):  # the 20 real clips under `clips` names: each name is read and featurised
    source, genre = real[k % len(real)]
    link = root / "genres_original" / genre / f"{genre}.{k:05d}.wav"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source.resolve())
files = audio_files(root)
assert len(files) == clips, len(files)
workers = os.cpu_count()
sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
lines, rows = [], []
failed = False

def save():  # after every row, so a run cut short still brings its rows back
    text = "\n".join([
        f"# The 57 GTZAN features at scale on {device}",
        "",
        f"`featurise_files(..., device={device!r}, workers={workers}, batched=True)` (threads read and "
        "decode, the device gets batches of ~30 clips). Clips: the 20 real GTZAN clips of "
        "`../shared/data/gtzan`, repeated under distinct names (symbolic links, `<genre>.NNNNN.wav`); "
        "every name is read, decoded and featurised on its own, but the 20 files sit in the page cache, "
        "so disk reads of 1,000 distinct files are not in these times. "
        f"{os.cpu_count()} CPU cores; torch {torch.__version__}"
        + (f"; {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else "") + ".",
        "",
        "| what | clips | rows | seconds | clips/s | ms per clip | all finite | skipped |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
        *rows, "", *lines, ""])
    (out / "features_cuda.md").write_text(text)
    return text

def timed(what, items, segment=None):
    sync()
    start = time.perf_counter()
    results = list(featurise_files(items, segment, device, workers, batched=True))
    sync()
    seconds = time.perf_counter() - start
    bad = [r for r in results if isinstance(r, str)]
    values = np.concatenate([r.values for r in results if not isinstance(r, str)])
    finite = bool(np.isfinite(values).all())
    rows.append(f"| {what} | {len(items)} | {values.shape[0]} | {seconds:.2f} | "
                f"{len(items) / seconds:.1f} | {1000 * seconds / len(items):.1f} | {finite} | {len(bad)} |")
    print(rows[-1], flush=True)
    save()
    return results, seconds

first, _ = timed("20 real clips, first call (device start-up and warm-up included)", real)
reference = {r.path.name: r.values for r in first}
_, warm = timed("20 real clips, again (warm)", real)
projected = clips * warm / 20
if projected > 100:
    print(f"projected {projected:.0f} s for {clips} clips: too slow for this run, skipped", flush=True)
    lines.append(f"- {clips} clips skipped: 20 warm clips took {warm:.2f} s "
                 f"(projected {projected:.0f} s).")
else:
    results, seconds = timed(f"{clips} clips, whole (the 20 real ones repeated)", files)
    # each name must give the values of the real clip it points to (batched with other lengths)
    worst = max(float(np.max(np.abs(r.values - reference[r.path.resolve().name])
                              / (np.abs(reference[r.path.resolve().name]) + 1e-6)))
                for r in results)
    lines.append(f"- Largest relative difference between a repeated clip's row and the same clip's "
                 f"row from the 20-clip call: {worst:.2e}.")
    lines.append(f"- **Goal: 1,000 clips in < 10 s on the H200: {clips} clips in {seconds:.2f} s"
                 + (f" ({'met' if seconds < 10 else 'NOT met'})" if device.startswith("cuda")
                    else " (CPU dry run, not the goal)") + ".**")
    if seconds > 25:
        lines.append("- The segment, cache and `bench features` passes were skipped: the whole-clip "
                     "pass took over 25 s.")
    else:
        try:
            timed(f"{clips} clips, 3 s segments (10 rows per clip)", files, segment=3.0)
        except Exception as exc:  # report it and go on
            import traceback
            traceback.print_exc()
            failed = True
            lines.append(f"- **3 s segments FAILED**: {type(exc).__name__}: {exc}")
        cache = work / "scale-cache"
        start = time.perf_counter()
        got = FeatureCache(cache).get([p for p, _ in files], TableParams(), device=device)
        seconds = time.perf_counter() - start
        rows.append(f"| {clips} clips into an empty HDF5 FeatureCache (TableParams, whole) | {clips} | "
                    f"{len(got)} | {seconds:.2f} | {clips / seconds:.1f} | {1000 * seconds / clips:.1f} | "
                    f"{all(np.isfinite(g).all() for g in got)} | 0 |")
        print(rows[-1], flush=True)
        save()
        csv = work / "scale.csv"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bench.cli", "features", "--data-dir", str(root),
                               "--device", device, "--out", str(csv)], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        print(done.stdout, done.stderr[-2000:], flush=True)
        written = len(csv.read_text().splitlines()) - 1 if csv.is_file() else 0
        failed = failed or done.returncode != 0
        rows.append(f"| `bench features --device {device}` on the {clips} names, a fresh process "
                    f"(interpreter start, imports, CSV; exit status {done.returncode}) | {clips} | "
                    f"{written} | {seconds:.2f} | {clips / seconds:.1f} | {1000 * seconds / clips:.1f} | | |")
        print(rows[-1], flush=True)
if device.startswith("cuda"):
    lines.append(f"- Peak GPU memory allocated by torch: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB.")
print(save())
sys.exit(1 if failed else 0)
EOF
}

torch_estimator() {  # cnn_ref and cnn fitted on DEVICE; a CUDA checkpoint and pickle on the CPU
    "$PY" - <<'EOF'
import os, pickle, shutil, sys, time
from pathlib import Path
import numpy as np, torch
from bench.features.cache import FeatureCache
from bench.features.extract import audio_files
from bench.registry import create

device, epochs, work, out = os.environ["DEVICE"], int(os.environ["EPOCHS"]), Path(os.environ["WORK"]), Path(os.environ["OUT"])
files = audio_files(Path(os.environ["DATA"]))
paths = np.array([str(p) for p, _ in files], dtype=object)
labels = np.array([label for _, label in files])
sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
rows, notes = [], []
devices = [device] if device == "cpu" else [device, "cpu"]

def save():  # after every model, so a run cut short still brings its rows back
    text = "\n".join([
        f"# Torch estimators on {device}: `cnn_ref` and `cnn` fitted on the 20 real GTZAN clips",
        "",
        f"`bench.registry.create(name, device=..., epochs={epochs}, patience=None, random_state=0, "
        "cache_dir=..., checkpoint_dir=...)`, then `fit(paths, genres)` on the 20 real clips "
        "(2 per genre) and `predict_proba` on the same clips: training accuracy, a sanity check that "
        "it learns, not a score. The feature cache is filled first on the same device (its own "
        f"column); fit seconds exclude it. torch {torch.__version__}, {os.cpu_count()} CPU cores"
        + (f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else "") + ".",
        "",
        "| model | device | inputs | cache fill s | fit s | epoch seconds | predict s | last train loss | training accuracy |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
        *rows, "", *notes, ""])
    (out / "torch_cuda.md").write_text(text)
    return text

def one(name, dev):
    ckpt_dir = work / "ckpt" / f"{name}-{dev}"
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    params = dict(device=dev, epochs=epochs, patience=None, random_state=0,
                  cache_dir=str(work / f"feat-{dev}"), checkpoint_dir=str(ckpt_dir))
    model = create(name, **params)
    start = time.perf_counter()
    FeatureCache(Path(params["cache_dir"])).get(list(paths), model._spectrogram_params(), device=dev)
    fill = time.perf_counter() - start
    sync(); start = time.perf_counter()
    model.fit(paths, labels)
    sync(); fit = time.perf_counter() - start
    start = time.perf_counter()
    proba = model.predict_proba(paths)
    predict = time.perf_counter() - start
    train_acc = float((model.classes_[proba.argmax(1)] == labels).mean())
    where = next(model.module_.parameters()).device
    epoch_s = [h["seconds"] for h in model.history_]
    x, _ = model._to_tensor(paths, fit=False)
    rows.append(f"| `{name}` | {dev} (weights on {where}) | {len(x)} | {fill:.2f} | {fit:.2f} | "
                f"{', '.join(f'{s:.3f}' for s in epoch_s)} | {predict:.2f} | "
                f"{model.history_[-1]['train_loss']:.3f} | {train_acc:.2f} |")
    print(rows[-1], flush=True)
    save()
    if dev == "cpu" and device != "cpu":
        return
    # 1. best.pt written on `dev` loads on the CPU, and its weights reproduce the fitted model
    best = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=True)
    last = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=True)
    on_cpu = all(t.device.type == "cpu" for t in best["model"].values())
    net = model._build_module(tuple(best["input_shape"]), len(best["classes"]))
    net.load_state_dict(best["model"])
    net.eval()
    with torch.no_grad():
        cpu_logits = torch.cat([net(x[i:i + 256]) for i in range(0, len(x), 256)])
    cpu_proba = torch.softmax(cpu_logits.double(), 1).numpy()
    from bench.models.torch_estimator import _logits, autocast
    dev_logits = _logits(model.module_, x, autocast(where), 256, where).cpu()
    dev_proba = torch.softmax(dev_logits.double(), 1).numpy()
    agree = float((cpu_proba.argmax(1) == dev_proba.argmax(1)).mean())
    diff = float(np.abs(cpu_proba - dev_proba).max())
    notes.append(f"- `{name}` on {dev}: best.pt (epoch {best['best_epoch']}) and last.pt "
                 f"(epoch {last['epoch']}) load with `map_location='cpu', weights_only=True`; "
                 f"all tensors on cpu: {on_cpu}; cuda RNG state saved: {last['rng']['cuda'] is not None}. "
                 f"Its weights on the CPU (fp32) vs the fitted model on {where} "
                 f"({'bf16 autocast' if where.type == 'cuda' else 'fp32'}), per input: argmax agreement "
                 f"{agree:.3f}, largest probability difference {diff:.4f}.")
    # 2. pickling keeps numpy weights and rebuilds the module on the CPU
    clone = pickle.loads(pickle.dumps(model))
    clone.device = "cpu"
    pickled = clone.predict_proba(paths)
    notes.append(f"- `{name}` on {dev}: pickled and loaded, the module is on "
                 f"{next(clone.module_.parameters()).device}; per-track argmax agreement with the "
                 f"fitted model {float((pickled.argmax(1) == proba.argmax(1)).mean()):.3f}, "
                 f"largest probability difference {float(np.abs(pickled - proba).max()):.4f}.")
    # 3. the same training resumes from the checkpoint: on `dev`, and on the CPU
    for again in dict.fromkeys([dev, "cpu"]):
        copy = work / "ckpt" / f"{name}-{dev}-resume-{again}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(ckpt_dir, copy)
        resumed = create(name, **{**params, "device": again, "checkpoint_dir": str(copy)})
        resumed.fit(paths, labels)
        notes.append(f"- `{name}` checkpoint written on {dev}, fit again on {again}: resumed from "
                     f"epoch {resumed.resumed_from_epoch_} of {epochs} "
                     f"({'OK' if resumed.resumed_from_epoch_ == epochs else 'NOT resumed'}).")
    print(*notes[-4:], sep="\n", flush=True)
    save()

failed = []
for name in ("cnn_ref", "cnn"):
    for dev in devices:
        try:
            one(name, dev)
        except Exception as exc:  # report it and go on with the next model
            import traceback
            traceback.print_exc()
            failed.append(f"{name} on {dev}")
            notes.append(f"- **`{name}` on {dev} FAILED**: {type(exc).__name__}: {exc}")
            save()
print(save())
sys.exit(f"failed: {failed}" if failed else 0)
EOF
}

perf() {
    "$PY" -m bench.cli perf --data-dir "$DATA" --device "$DEVICE" --no-librosa \
        --repeats "$REPEATS" --out "$OUT/perf.md"
}

throughput() {
    "$PY" benchmarks/cnn_throughput.py --device "$DEVICE" --clips "$TP_CLIPS" \
        --epochs "$TP_EPOCHS" --workdir "$WORK/throughput" --out "$OUT/cnn_throughput.md"
}

tests() {  # test_cuda_matches_cpu is skipped without CUDA; the rest of the file uses real data
    BENCH_SHARED_DATA=$PWD/.gpu-data "$PY" -m pytest -q -ra -p no:cacheprovider \
        tests/test_handcrafted.py 2>&1 | tee "$OUT/pytest.txt"
}

main() {
    rm -f "$WORK/notes"
    rm -rf "$WORK"/{scale,scale-cache,scale.csv,feat-cpu,feat-cuda,ckpt,cache,shim}  # a warm rerun
    echo "bench GPU check: DEVICE=$DEVICE CLIPS=$CLIPS EPOCHS=$EPOCHS BUDGET=${BUDGET}s"
    wheels || echo "WARNING: wheel install failed (rc $?)"
    environment
    echo "=== bench doctor (before any shim)"
    "$PY" -m bench.cli doctor || echo "bench doctor: rc $?"
    cuda_shim
    step "features at scale ($CLIPS clips)" 150 features_scale
    step "torch estimators (cnn_ref, cnn; $EPOCHS epochs)" 120 torch_estimator
    step "pytest tests/test_handcrafted.py" 90 tests
    step "bench perf (20 real clips)" 90 perf
    step "cnn_throughput ($TP_CLIPS synthetic clips, $TP_EPOCHS epochs)" 180 throughput
    [ -f "$WORK/notes" ] && { echo; cat "$WORK/notes"; } >>"$SUMMARY"
    echo >>"$SUMMARY"
    echo "Total: $((SECONDS - START)) s." >>"$SUMMARY"
    echo "=== done in $((SECONDS - START))s; $FAILED step(s) failed"
    cat "$SUMMARY"
    ((FAILED == 0))
}

export -f features_scale torch_estimator perf throughput tests
mkdir -p "$OUT" "$WORK"
main 2>&1 | tee "$OUT/log.txt"
