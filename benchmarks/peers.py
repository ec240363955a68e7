"""bench against two AutoML peers, AutoGluon and FLAML, on the very same GTZAN folds.

    python benchmarks/peers.py --setup      # once: a venv per peer, pinned, under .cache/peers
    python benchmarks/peers.py [--data-dir ../shared/data/gtzan] [--protocols ...]
        [--ag-time 300] [--flaml-time 60] [--peers autogluon,flaml]
        [--bench-models ensemble,stack,xgboost,logreg] [--folds-limit N] [--out reports/peers.md]

The folds come from bench's own split code (``make_folds`` on the ``gtzan`` suite, Kaggle's
57 tabular features of the 1000 tracks): 5 stratified folds (seed 0) and the artist-filtered
split (train+valid -> test). In one invocation, on the same fold objects:

- bench's registry models (the suite's parameters; tuned ones too where ``bench tune`` left
  parameters for that protocol), fitted in this process and scored by ``score_fold``;
- each peer, in a subprocess of its own venv (bench's dependencies never move), through a
  runner script in ``benchmarks/peers/`` that reads the fold's train/test CSVs and writes
  the test-side probabilities. Peers run one at a time: their budgets are wall-clock.

Every row is scored by the same metric code (``bench.metrics``) on the same test tracks.
Writes ``--out`` (markdown: per-fold accuracy and wall time, the peers' chosen models, and a
paired comparison of bench's best row with each peer: paired t-tests over folds and an exact
McNemar test on the pooled per-track predictions) and, beside it, the raw per-fold results
as JSON (``reports/peers.json`` by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = Path(__file__).resolve().parent / "peers"
DEFAULT_VENVS = ROOT / ".cache" / "peers"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan"
SUITE = ROOT / "experiments" / "gtzan.toml"
LABEL = "genre"
"""The label column of the CSVs handed to the peers (a name no GTZAN feature has)."""
DEVICE = "cpu"
"""bench's models run on the CPU, as the peers do (``num_gpus=0``)."""
BENCH_LIBS = ("numpy", "pandas", "scipy", "scikit-learn", "xgboost", "lightgbm", "catboost")


@dataclass(frozen=True)
class Peer:
    """An AutoML library bench is compared with, run in a venv of its own."""

    name: str
    title: str
    requirements: tuple[str, ...]
    runner: str
    """The script in ``benchmarks/peers/`` that fits and predicts one fold."""
    packages: tuple[str, ...]
    """Distributions whose versions the report names (the first is the pinned peer)."""
    setting: str
    """How the runner calls it, for the report."""


PEERS = {
    "autogluon": Peer(
        "autogluon",
        "AutoGluon",
        ("autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3",),
        "autogluon_fold.py",
        ("autogluon.tabular", "lightgbm", "catboost", "xgboost", "scikit-learn", "numpy"),
        '`TabularPredictor(eval_metric="accuracy").fit(presets="best_quality", '
        "time_limit=T, num_cpus=C, num_gpus=0, "
        'ag_args_ensemble={"model_random_seed": 0})`',
    ),
    "flaml": Peer(
        "flaml",
        "FLAML",
        ("flaml[automl]==2.8.0",),
        "flaml_fold.py",
        ("flaml", "lightgbm", "xgboost", "scikit-learn", "numpy"),
        '`AutoML().fit(task="classification", metric="accuracy", time_budget=T, n_jobs=C, seed=0)`',
    ),
}


# --------------------------------------------------------------------------- venvs


def venv_python(venvs: Path, peer: Peer) -> Path:
    return venvs / peer.name / "bin" / "python"


def setup(venvs: Path, peers: list[Peer]) -> None:
    """Create (or complete) each peer's venv with its pinned requirements."""
    for peer in peers:
        folder = venvs / peer.name
        python = venv_python(venvs, peer)
        if not python.is_file():
            print(f"{peer.name}: creating {folder}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        print(f"{peer.name}: pip install {' '.join(peer.requirements)}", flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, *peer.requirements], check=True)
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True
        ).stdout
        (folder / "peer-freeze.txt").write_text(frozen)
        print(f"{peer.name}: ready in {folder} ({len(frozen.splitlines())} packages)", flush=True)


def _pinned(peer: Peer) -> tuple[str, str]:
    """The pinned distribution of a peer and its version: ``("flaml", "2.8.0")``."""
    name, _, version = peer.requirements[0].partition("==")
    return name.split("[")[0], version


def peer_versions(venvs: Path, peer: Peer) -> dict[str, str]:
    """The versions installed in the peer's venv; exits with how to fix a missing or stale one."""
    python = venv_python(venvs, peer)
    setup_hint = "run python benchmarks/peers.py --setup" + (
        f" --venvs {venvs}" if venvs != DEFAULT_VENVS else ""
    )
    if not python.is_file():
        raise SystemExit(f"{peer.name}: no venv at {venvs / peer.name}; {setup_hint}")
    probe = (
        "import json, platform, sys\nfrom importlib import metadata\nout = "
        "{'python': platform.python_version()}\nfor n in sys.argv[1:]:\n"
        "    for d in (n, n + '-cpu'):  # AutoGluon pulls xgboost-cpu, FLAML xgboost\n"
        "        try:\n            out[d] = metadata.version(d)\n            break\n"
        "        except metadata.PackageNotFoundError:\n            pass\n"
        "    else:\n        out[n] = 'not installed'\nprint(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe, *peer.packages], capture_output=True, text=True, env=_peer_env()
    )
    if done.returncode:
        broken = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{peer.name}: {python} does not run ({broken[0]}); {setup_hint}")
    found = json.loads(done.stdout)
    name, version = _pinned(peer)
    if found.get(name) != version:
        raise SystemExit(
            f"{peer.name}: {venvs / peer.name} has {name} {found.get(name)}, this benchmark pins "
            f"{version}; {setup_hint}"
        )
    return found


def _peer_env() -> dict[str, str]:
    """This process's environment without what would leak bench's venv into a peer's."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


# --------------------------------------------------------------------------- rows and folds


@dataclass
class FoldResult:
    """One row's outcome on one fold: metrics, test predictions (class codes), seconds."""

    fold: str
    metrics: dict[str, float] = field(default_factory=dict)
    pred: list[int] = field(default_factory=list)
    seconds: float = float("nan")
    """Fit + predict wall seconds."""
    fit_seconds: float = float("nan")
    predict_seconds: float = float("nan")
    process_seconds: float | None = None
    """A peer's whole subprocess, imports and CSV reading included."""
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Row:
    """A bench model (default or tuned parameters) or a peer, over a protocol's folds."""

    label: str
    kind: str  # "bench", "tuned" or "peer"
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    folds: list[FoldResult] = field(default_factory=list)

    def scored(self) -> list[FoldResult]:
        return [f for f in self.folds if f.error is None]

    def accuracies(self) -> list[float]:
        return [f.metrics["accuracy"] for f in self.scored()]


def bench_entries(suite: Any, dataset: Any, names: list[str], notes: list[str]) -> list[Any]:
    """The suite's entries for ``names`` (its parameters where it gives some), and tuned
    entries where ``bench tune`` left parameters for the suite's protocol."""
    from bench import registry
    from bench.data.splits import dev_split
    from bench.suites import ModelEntry
    from bench.tuned import load_tuned, tuned_path

    known = {spec.name: spec for spec in registry.list_models()}
    kept = []
    for name in names:
        if name not in known:
            notes.append(f"`{name}` is not in bench.registry: skipped")
        elif known[name].input_kind != "tabular":
            notes.append(f"`{name}` takes {known[name].input_kind} input, not features: skipped")
        else:
            kept.append(name)
    entries = list(suite.with_overrides(models=kept).models) if kept else []
    for entry in entries:
        registry.get(entry.name).check(entry.params)
    protocol = suite.protocol.name
    tuned = load_tuned(suite.name)
    dev = None
    with_tuned: list[Any] = []
    untuned = []
    for entry in entries:
        with_tuned.append(entry)
        found = tuned.get(entry.name, {}).get(protocol)
        if found is None:
            untuned.append(f"`{entry.name}`")
            continue
        if dev is None:
            tuning = suite.tuning
            dev = dev_split(dataset, suite.protocol, suite.seed, tuning.dev_fraction, tuning.folds)
        where = tuned_path(suite.name)
        if found.get("dev_split") != dev.signature or found.get("data") != dataset.fingerprint:
            notes.append(
                f"`{entry.name}`: its tuned parameters in {where} were tuned on another "
                "development split or data: no tuned row"
            )
        elif dev.held_out:
            notes.append(
                f"`{entry.name}`: tuned on development tracks that lie in these {protocol} test "
                "sides (`bench run --tuned` holds them out, so its folds differ): no tuned row"
            )
        else:
            params = {**entry.params, **found["params"]}
            with_tuned.append(ModelEntry(entry.name, params, variant="tuned"))
    if untuned:
        notes.append(
            f"no tuned parameters for {', '.join(untuned)} under {protocol} in "
            f"{tuned_path(suite.name)} (`bench tune`): no tuned rows for them"
        )
    return with_tuned


def run_bench(entry: Any, dataset: Any, folds: list[Any], seed: int, cores: int, tag: str) -> Row:
    """Fit and score one bench entry on every fold, in this process, as bench's runner does."""
    from threadpoolctl import threadpool_limits

    from bench import registry
    from bench.evaluate import model_inputs, score_fold, servable_folds, with_resources

    spec = registry.get(entry.name)
    params = spec.complete(entry.params, seed, DEVICE)
    label = entry.name if entry.variant == "default" else f"{entry.name} ({entry.variant})"
    kind = "bench" if entry.variant == "default" else entry.variant
    row = Row(label, kind, entry.name, params)
    servable, reason = servable_folds(spec, params, dataset, folds)
    served = {f.name for f in servable}
    inputs = model_inputs(dataset, spec.input_kind)
    for fold in folds:
        if fold.name not in served:
            row.folds.append(FoldResult(fold.name, error=reason or "not servable"))
            print(f"[{tag}] {label} {fold.name}: skipped ({reason})", flush=True)
            continue
        model = spec.create(**with_resources(spec.parameters, params, cores))
        start = time.perf_counter()
        with threadpool_limits(cores):
            score = score_fold(model, dataset, inputs, fold)
        seconds = time.perf_counter() - start
        metrics = score.metrics
        predict = metrics["predict_seconds_per_item"] * len(fold.test)
        result = FoldResult(
            fold.name,
            metrics={k: float(metrics[k]) for k in _METRICS},
            pred=[int(p) for p in score.proba.argmax(axis=1)],
            seconds=seconds,
            fit_seconds=float(metrics["fit_seconds"]),
            predict_seconds=predict,
        )
        row.folds.append(result)
        print(f"[{tag}] {label} {fold.name}: {_said(result)}", flush=True)
    return row


_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")


def run_peer(
    peer: Peer,
    venvs: Path,
    dataset: Any,
    folds: list[Any],
    limit: float,
    seed: int,
    cores: int,
    scratch: Path,
    tag: str,
) -> Row:
    """Run the peer's runner on every fold, one subprocess at a time, in the peer's venv."""
    row = Row(peer.title, "peer", peer.name, {"time_limit": limit})
    for fold in folds:
        print(f"[{tag}] {peer.title} {fold.name}: fitting (limit {limit:g} s) ...", flush=True)
        result = _peer_fold(peer, venvs, dataset, fold, limit, seed, cores, scratch)
        row.folds.append(result)
        print(f"[{tag}] {peer.title} {fold.name}: {_said(result)}", flush=True)
    return row


def _peer_fold(
    peer: Peer,
    venvs: Path,
    dataset: Any,
    fold: Any,
    limit: float,
    seed: int,
    cores: int,
    scratch: Path,
) -> FoldResult:
    from bench.metrics import classification_metrics

    folder = Path(tempfile.mkdtemp(prefix=f"{peer.name}-{fold.name}-", dir=scratch))
    try:
        train = dataset.features.iloc[fold.train].reset_index(drop=True)
        train[LABEL] = [dataset.classes[c] for c in dataset.labels[fold.train]]
        train.to_csv(folder / "train.csv", index=False)
        dataset.features.iloc[fold.test].to_csv(folder / "test.csv", index=False)
        spec = {"label": LABEL, "time_limit": limit, "seed": seed, "cpus": cores}
        (folder / "spec.json").write_text(json.dumps(spec))
        hard = 2 * limit + 600  # far past any overrun seen; only a hung peer meets it
        command = [str(venv_python(venvs, peer)), str(RUNNERS / peer.runner), str(folder)]
        start = time.perf_counter()
        with open(folder / "log.txt", "w") as log:
            process = subprocess.Popen(
                command,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_peer_env(),
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=hard)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                code = None
        process_seconds = time.perf_counter() - start
        tail = "\n".join((folder / "log.txt").read_text(errors="replace").splitlines()[-15:])
        if code is None:
            return FoldResult(fold.name, error=f"killed after {hard:g} s", detail={"log": tail})
        if code or not (folder / "result.json").is_file():
            return FoldResult(fold.name, error=f"exit status {code}", detail={"log": tail})
        out = json.loads((folder / "result.json").read_text())
        proba = _aligned(out["proba"], out["classes"], dataset.classes)
        y_true = dataset.labels[fold.test]
        metrics = classification_metrics(y_true, proba)
        pred = proba.argmax(axis=1)
        own = np.array([dataset.classes.index(p) for p in out["pred"]])
        detail = {
            **out["detail"],
            "versions": out["versions"],
            "own_predict_disagrees": int(np.sum(own != pred)),
            "warnings": _warnings(folder / "log.txt"),
            "models_failed": _failed_models(folder / "log.txt"),
        }
        return FoldResult(
            fold.name,
            metrics={k: float(metrics[k]) for k in _METRICS},
            pred=[int(p) for p in pred],
            seconds=out["fit_seconds"] + out["predict_seconds"],
            fit_seconds=out["fit_seconds"],
            predict_seconds=out["predict_seconds"],
            process_seconds=process_seconds,
            detail=detail,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _aligned(proba: list[list[float]], classes: list[str], names: tuple[str, ...]) -> np.ndarray:
    """A peer's probability columns, in the dataset's class order (absent classes get 0)."""
    raw = np.asarray(proba, dtype=float)
    full = np.zeros((raw.shape[0], len(names)))
    for column, name in enumerate(classes):
        full[:, names.index(name)] = raw[:, column]
    return full


def _warnings(log: Path) -> list[str]:
    """Distinct warning lines of a peer's log (the first 10)."""
    seen: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if "warning" in line.lower() and line.strip() not in seen:
            seen.append(line.strip())
    return seen[:10]


_FAILED_MODEL = re.compile(r"Exception caused (\S+) to fail during training \((\w+)\)")


def _failed_models(log: Path) -> dict[str, str]:
    """Models AutoGluon logged as failed (``NeuralNetFastAI_BAG_L1``: ``ImportError``)."""
    return dict(_FAILED_MODEL.findall(log.read_text(errors="replace")))


def _families(failed: dict[str, str]) -> str:
    """``NeuralNetFastAI, NeuralNetTorch (ImportError)``: failed models without bag/level."""
    by_error: dict[str, set[str]] = {}
    for model, error in failed.items():
        by_error.setdefault(error, set()).add(re.sub(r"(_r\d+)?_BAG_L\d+$", "", model))
    return "; ".join(f"{', '.join(sorted(m))} ({e})" for e, m in sorted(by_error.items())) or "—"


def _said(result: FoldResult) -> str:
    if result.error:
        return f"FAILED ({result.error})"
    extra = ""
    if "best_model" in result.detail:
        extra = f", best {result.detail['best_model']}"
    elif "best_estimator" in result.detail:
        extra = f", chose {result.detail['best_estimator']}"
    return f"acc {result.metrics['accuracy']:.3f}, {result.seconds:.1f} s{extra}"


# --------------------------------------------------------------------------- statistics


def compare(best: Row, other: Row, folds: list[Any], dataset: Any) -> dict[str, Any]:
    """Paired comparison on the folds both rows scored: t-tests over folds (plain, and
    Nadeau-Bengio corrected for overlapping training sides) and exact McNemar on the pooled
    per-track predictions."""
    from bench.stats import corrected_resampled_ttest, mcnemar_exact

    mine = {f.fold: f for f in best.scored()}
    theirs = {f.fold: f for f in other.scored()}
    shared = [f for f in folds if f.name in mine and f.name in theirs]
    a = [mine[f.name].metrics["accuracy"] for f in shared]
    b = [theirs[f.name].metrics["accuracy"] for f in shared]
    y_true = np.concatenate([dataset.labels[f.test] for f in shared]) if shared else np.array([])
    pred_a = np.concatenate([mine[f.name].pred for f in shared]) if shared else np.array([])
    pred_b = np.concatenate([theirs[f.name].pred for f in shared]) if shared else np.array([])
    right_a, right_b = pred_a == y_true, pred_b == y_true
    out: dict[str, Any] = {
        "bench": best.label,
        "peer": other.label,
        "folds": [f.name for f in shared],
        "mean_bench": float(np.mean(a)) if a else float("nan"),
        "mean_peer": float(np.mean(b)) if b else float("nan"),
        "tracks": int(len(y_true)),
        "both_right": int(np.sum(right_a & right_b)),
        "only_bench_right": int(np.sum(right_a & ~right_b)),
        "only_peer_right": int(np.sum(~right_a & right_b)),
        "both_wrong": int(np.sum(~right_a & ~right_b)),
        "mcnemar_p": mcnemar_exact(right_a, right_b) if len(y_true) else float("nan"),
        "ttest_p": None,
        "corrected_ttest_p": None,
    }
    if len(shared) >= 2:
        n_test = float(np.mean([len(f.test) for f in shared]))
        n_train = float(np.mean([len(f.train) for f in shared]))
        out["ttest_p"] = corrected_resampled_ttest(a, b, 0, n_train)  # n_test=0: plain paired t
        out["corrected_ttest_p"] = corrected_resampled_ttest(a, b, n_test, n_train)
    return out


def best_bench_row(rows: list[Row], n_folds: int) -> Row | None:
    """The bench row (default or tuned) with the highest mean accuracy over all folds."""
    complete = [r for r in rows if r.kind != "peer" and len(r.scored()) == n_folds]
    return max(complete, key=lambda r: statistics.mean(r.accuracies()), default=None)


# --------------------------------------------------------------------------- report


def _mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "—"
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a (needs ≥ 2 folds)"
    return f"{value:.3g}"


def _machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else ""
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total = meminfo.read_text().splitlines()[0].split()[1]
        memory = f", {int(total) / 2**20:.0f} GiB RAM"
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores ({model or platform.processor()}){memory}, {platform.platform()}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def render(run: dict[str, Any], rows_by: dict[str, list[Row]], dataset: Any) -> str:
    """The markdown report."""
    limits = run["limits"]
    lines = [
        "# bench against AutoML peers (AutoGluon, FLAML) on GTZAN features",
        "",
        f"Command: `{run['command']}`  ",
        f"Started {run['started']}, took {run['elapsed_s'] / 60:.1f} min.  ",
        f"Machine: {run['machine']}; every row on the CPU with {run['cores']} threads; "
        "one row at a time (peers' budgets are wall-clock).  ",
        f"Data: `{run['data']}`, {len(dataset)} tracks x {dataset.features.shape[1]} Kaggle "
        f"features, {len(dataset.classes)} genres; folds from bench's `make_folds` (suite "
        f"`gtzan`, seed {run['seed']}), the same fold objects for every row.  ",
        f"bench {run['bench_version']} (git {run['git']}), its libraries: "
        + ", ".join(f"{k} {v}" for k, v in run["bench_libs"].items())
        + ".",
        "",
        "| peer | versions (own venv) | call | time limit per fold |",
        "|---|---|---|---|",
    ]
    for name, versions in run["peer_versions"].items():
        peer = PEERS[name]
        shown = ", ".join(f"{k} {v}" for k, v in versions.items())
        lines.append(f"| {peer.title} | {shown} | {peer.setting} | {limits[name]:g} s |")
    lines += [
        "",
        "Accuracy is the argmax of each row's test-side class probabilities, scored by "
        "`bench.metrics` for every row. Seconds are fit + predict wall time per fold (a peer's "
        "subprocess start, imports and CSV reading are not in them; its whole process time is "
        "in the JSON). Peers see the test features only, never the test labels.",
    ]
    if "autogluon" in run["peer_versions"]:
        lines += [
            "",
            "AutoGluon is installed as `autogluon.tabular[lightgbm,catboost,xgboost]`: no torch, "
            "fastai or ray. Its `best_quality` portfolio still lists neural nets, which fail to "
            "import and are skipped (column *failed to train*); bag folds are fitted one after "
            "another, and DyStack's sub-fit runs in-process. When that sub-fit raises (no model "
            "trained in its quarter of the time), AutoGluon 1.6.3 leaves its learner marked as "
            "fit and the main fit fails; the runner then does what AutoGluon had decided, the "
            "main fit with `num_stack_levels=1`, in the time left (column *DyStack*).",
        ]
    if run["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in run["notes"]]
    for protocol, rows in rows_by.items():
        info = run["protocols"][protocol]
        lines += ["", f"## {protocol}: {info['description']}", ""]
        sizes = ", ".join(f"{f['name']} {f['n_train']} -> {f['n_test']}" for f in info["folds"])
        lines += [f"Folds (train -> test tracks): {sizes}.", ""]
        lines += [
            "| row | accuracy per fold | mean ± std | macro-F1 | log loss | "
            "fit+predict s per fold | mean s |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            acc = ", ".join(
                "failed" if f.error else f"{f.metrics['accuracy']:.3f}" for f in row.folds
            )
            secs = ", ".join("—" if f.error else f"{f.seconds:.1f}" for f in row.folds)
            scored = row.scored()
            f1 = [f.metrics["f1_macro"] for f in scored]
            loss = [f.metrics["log_loss"] for f in scored]
            mean_s = f"{statistics.mean(f.seconds for f in scored):.1f}" if scored else "—"
            name = f"**{row.label}**" if row.kind == "peer" else row.label
            lines.append(
                f"| {name} | {acc} | {_mean_std(row.accuracies())} | "
                f"{_mean_std(f1)} | {_mean_std(loss)} | {secs} | {mean_s} |"
            )
        lines += _choices(rows)
        failures = [(r, f) for r in rows for f in r.folds if f.error]
        if failures:
            lines += ["", "Failed folds:", ""]
            lines += [f"- {r.label} {f.fold}: {f.error}" for r, f in failures]
        lines += _comparisons(info.get("comparisons", []), info.get("best_bench"))
    return "\n".join(lines) + "\n"


def _choices(rows: list[Row]) -> list[str]:
    """What each peer settled on, per fold."""
    lines: list[str] = []
    for row in rows:
        if row.kind != "peer":
            continue
        limit = row.params["time_limit"]
        lines += ["", f"{row.label}, per fold:", ""]
        if row.name == "autogluon":
            lines += [
                "| fold | best model (leaderboard) | stack level | val accuracy | models "
                "trained | failed to train | DyStack | fit s / limit |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for f in row.scored():
                d = f.detail
                dystack = "sub-fit failed: stack levels 1" if d["dystack_failed"] else "ran"
                lines.append(
                    f"| {f.fold} | {d['best_model']} | {d['best_stack_level']} | "
                    f"{d['best_score_val']:.3f} | {d['models_trained']} | "
                    f"{_families(d['models_failed'])} | {dystack} | "
                    f"{f.fit_seconds:.0f} / {limit:g} |"
                )
        else:
            lines += [
                "| fold | chosen estimator | its config | val accuracy | trials | fit s / budget |",
                "|---|---|---|---|---|---|",
            ]
            for f in row.scored():
                d = f.detail
                config = ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in (d.get("best_config") or {}).items()
                )
                lines.append(
                    f"| {f.fold} | {d['best_estimator']} | {config} | "
                    f"{d['best_val_accuracy']:.3f} | {d['trials']} | "
                    f"{f.fit_seconds:.0f} / {limit:g} |"
                )
    return lines


def _comparisons(found: list[dict[str, Any]], best: str | None) -> list[str]:
    if not found:
        return ["", "No paired comparison: no bench row scored every fold, or no peer did."]
    lines = [
        "",
        f"Paired comparison: bench's best row here, **{best}** (picked by its mean accuracy on "
        "these same test folds, so its figure is slightly optimistic), against each peer, on "
        "the folds both scored. t-tests over the per-fold accuracies: plain paired, and "
        "Nadeau-Bengio corrected for the overlapping training sides (`bench.stats`); exact "
        "McNemar (`bench.stats.mcnemar_exact`) on the per-track predictions, pooled over the "
        "folds (each track is tested once).",
        "",
        "| bench vs peer | folds | mean acc bench | mean acc peer | difference | paired t p | "
        "corrected t p | tracks | only bench right | only peer right | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in found:
        lines.append(
            f"| {c['bench']} vs {c['peer']} | {len(c['folds'])} | {c['mean_bench']:.3f} | "
            f"{c['mean_peer']:.3f} | {c['mean_bench'] - c['mean_peer']:+.3f} | "
            f"{_p(c['ttest_p'])} | {_p(c['corrected_ttest_p'])} | {c['tracks']} | "
            f"{c['only_bench_right']} | {c['only_peer_right']} | {c['mcnemar_p']:.3g} |"
        )
    return lines


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "label": row.label,
        "kind": row.kind,
        "name": row.name,
        "params": row.params,
        "folds": [
            {
                "fold": f.fold,
                "error": f.error,
                **f.metrics,
                "seconds": f.seconds,
                "fit_seconds": f.fit_seconds,
                "predict_seconds": f.predict_seconds,
                "process_seconds": f.process_seconds,
                "detail": f.detail,
                "pred": f.pred,
            }
            for f in row.folds
        ],
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from bench.data.protocols import PROTOCOLS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="create the peers' venvs and exit")
    parser.add_argument(
        "--venvs", type=Path, default=DEFAULT_VENVS, help="where the peers' venvs live"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="GTZAN folder")
    parser.add_argument(
        "--protocols",
        default="stratified-kfold,fault-filtered",
        help=f"comma-separated, of {', '.join(PROTOCOLS)} (default: the first two)",
    )
    parser.add_argument("--peers", default="autogluon,flaml", help="comma-separated peers")
    parser.add_argument(
        "--bench-models",
        default="ensemble,stack,xgboost,logreg",
        help="comma-separated bench registry models (names not registered are skipped)",
    )
    parser.add_argument("--ag-time", type=float, default=300, help="AutoGluon s per fold")
    parser.add_argument("--flaml-time", type=float, default=60, help="FLAML s per fold")
    parser.add_argument("--folds-limit", type=int, help="only the first N folds (smoke runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "peers.md")
    args = parser.parse_args(argv)
    split = {k: [v.strip() for v in getattr(args, k).split(",") if v.strip()]
             for k in ("protocols", "peers", "bench_models")}  # fmt: skip
    for key, allowed in (("protocols", PROTOCOLS), ("peers", tuple(PEERS))):
        unknown = [v for v in split[key] if v not in allowed]
        if unknown:
            choices = ", ".join(allowed)
            parser.error(f"--{key}: unknown {', '.join(unknown)} (choose from {choices})")
    if args.folds_limit is not None and args.folds_limit < 1:
        parser.error("--folds-limit must be at least 1")
    for key, values in split.items():
        setattr(args, key, values)
    for key in ("venvs", "data_dir", "out"):  # main() works from the repository root
        setattr(args, key, getattr(args, key).resolve())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    peers = [PEERS[p] for p in args.peers]
    if args.setup:
        setup(args.venvs, peers)
        return 0
    os.chdir(ROOT)  # the suite's tuned file (experiments/tuned) and reports/ are repo-relative
    from bench import __version__ as bench_version
    from bench.catalog import open_dataset
    from bench.data.splits import make_folds
    from bench.suites import load_suite

    versions = {p.name: peer_versions(args.venvs, p) for p in peers}  # fail early, before fits
    if not args.data_dir.is_dir():
        raise SystemExit(f"{args.data_dir}: no such folder; pass --data-dir")
    cores = len(os.sched_getaffinity(0))
    limits = {"autogluon": args.ag_time, "flaml": args.flaml_time}
    base = load_suite(str(SUITE))
    dataset = open_dataset(base.dataset, args.data_dir)
    notes: list[str] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    clock = time.perf_counter()
    run: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/peers.py", *sys.argv[1:]]),
        "started": started,
        "machine": _machine(),
        "cores": cores,
        "data": str(args.data_dir),
        "seed": base.seed,
        "bench_version": bench_version,
        "git": _git(),
        "bench_libs": {name: _version(name) for name in BENCH_LIBS},
        "peer_versions": versions,
        "limits": {p.name: limits[p.name] for p in peers},
        "notes": notes,
        "protocols": {},
    }
    out_json = args.out.with_suffix(".json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows_by: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        for protocol in args.protocols:
            suite = base.with_overrides(protocol=protocol)
            folds = make_folds(dataset, suite.protocol, suite.seed)
            description = suite.protocol.describe()
            if args.folds_limit and args.folds_limit < len(folds):
                description += f", only the first {args.folds_limit} (--folds-limit)"
                folds = folds[: args.folds_limit]
            info: dict[str, Any] = {
                "description": description,
                "folds": [
                    {
                        "name": f.name,
                        "n_train": len(f.train),
                        "n_test": len(f.test),
                        "test_tracks": [str(t) for t in dataset.tracks[f.test]],
                        "y_true": [int(y) for y in dataset.labels[f.test]],
                    }
                    for f in folds
                ],
            }
            run["protocols"][protocol] = info
            before = len(notes)
            entries = bench_entries(suite, dataset, args.bench_models, notes)
            for note in notes[before:]:
                print(f"[{protocol}] note: {note}", flush=True)
            notes[before:] = [f"{protocol}: {n}" for n in notes[before:]]
            rows = rows_by.setdefault(protocol, [])
            for entry in entries:
                rows.append(run_bench(entry, dataset, folds, suite.seed, cores, protocol))
                _save(out_json, run, rows_by)
            for peer in peers:
                row = run_peer(
                    peer, args.venvs, dataset, folds, limits[peer.name], suite.seed, cores,
                    Path(scratch), protocol,
                )  # fmt: skip
                rows.append(row)
                _save(out_json, run, rows_by)
            best = best_bench_row(rows, len(folds))
            info["best_bench"] = best.label if best else None
            info["comparisons"] = [
                compare(best, row, folds, dataset)
                for row in rows
                if best is not None and row.kind == "peer" and row.scored()
            ]
    run["elapsed_s"] = time.perf_counter() - clock
    _save(out_json, run, rows_by)
    args.out.write_text(render(run, rows_by, dataset))
    print(f"wrote {args.out} and {out_json}")
    return 0


def _save(path: Path, run: dict[str, Any], rows_by: dict[str, list[Row]]) -> None:
    """The raw results so far (rewritten after every row, so an interrupted run keeps them)."""
    protocols = {
        name: {**info, "rows": [_row_json(r) for r in rows_by.get(name, [])]}
        for name, info in run["protocols"].items()
    }
    path.write_text(json.dumps({**run, "protocols": protocols}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
