"""Facts about where a run happens: device, code version, package versions, what loads."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

PACKAGES = ("bench", "torch", "torchaudio", "scikit-learn", "xgboost", "optuna", "mlflow", "numpy")
REINSTALL = 'pip install -c requirements.lock -e ".[test]"'
"""The fix for a missing or broken package: the locked install of the README."""


@dataclass(frozen=True)
class Fact:
    """One line of ``bench doctor``: a name, what was found, and what is wrong (with the fix)."""

    name: str
    value: str
    problem: str | None = None
    fix: str | None = None


def _base_version(version: str) -> str:
    """``2.11.0+cu130`` -> ``2.11.0``: the local build tag does not change the API."""
    return version.split("+", 1)[0]


@functools.cache
def torchaudio_problem() -> str | None:
    """Why torchaudio cannot be used beside this torch, or None when it loads and matches.

    A torchaudio built for another torch release fails at import with an ``OSError`` from its
    compiled library (``undefined symbol ...``); the versions are compared first, so the reason
    names them.
    """
    try:
        torch_version = importlib.metadata.version("torch")
        audio_version = importlib.metadata.version("torchaudio")
    except importlib.metadata.PackageNotFoundError as exc:
        return f"{exc.name} is not installed"
    if _base_version(torch_version) != _base_version(audio_version):
        return f"torchaudio {audio_version} does not match torch {torch_version}"
    try:
        import torchaudio.functional  # noqa: F401  (loads the compiled library)
    except (OSError, ImportError) as exc:
        return f"torchaudio {audio_version} does not load: {str(exc).splitlines()[0]}"
    return None


def torchaudio_fix() -> str:
    """The exact command that installs the torchaudio matching the installed torch."""
    try:
        torch_version = _base_version(importlib.metadata.version("torch"))
    except importlib.metadata.PackageNotFoundError:
        return REINSTALL
    return f'pip install "torch=={torch_version}" "torchaudio=={torch_version}"'


def facts() -> list[Fact]:
    """What ``bench doctor`` prints and ``bench run`` records on its parent run."""
    found = [Fact("python", sys.version.split()[0])]
    versions = package_versions()
    for name in ("bench", "torch", "scikit-learn", "optuna", "mlflow", "numpy", "skops"):
        version = versions[name] if name in versions else _version(name)
        problem = None if version != "absent" else f"{name} is not installed"
        if name == "torch" and not problem:
            version += _torch_build()
        found.append(Fact(name, version, problem, REINSTALL if problem else None))
    audio = torchaudio_problem()
    value = f"{versions['torchaudio']}, " + ("broken" if audio else "loads")
    found.append(Fact("torchaudio", value, audio, torchaudio_fix() if audio else None))
    found.append(_xgboost())
    found += _devices()
    found.append(_threads())
    return found


def _torch_build() -> str:
    import torch

    return f" (CUDA {torch.version.cuda} build)" if torch.version.cuda else " (CPU build)"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _xgboost() -> Fact:
    try:
        import xgboost
    except Exception as exc:  # an absent or broken build
        return Fact("xgboost", "absent", f"xgboost does not import: {exc}", REINSTALL)
    cuda = "with CUDA" if xgboost.build_info().get("USE_CUDA") else "CPU only"
    return Fact("xgboost", f"{xgboost.__version__}, {cuda}")


def _devices() -> list[Fact]:
    if not cuda_present():
        return [Fact("device", f"cpu ({os.cpu_count()} cores), no CUDA GPU")]
    import torch

    rows = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16"
        rows.append(
            Fact(
                f"cuda:{index}",
                f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                f"capability {props.major}.{props.minor}, {bf16}",
            )
        )
    return rows


def _threads() -> Fact:
    import torch

    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return Fact(
        "threads",
        f"torch {torch.get_num_threads()} intra-op, OMP_NUM_THREADS={omp}, "
        f"{os.cpu_count()} cores (jobs pin 1 thread per worker process)",
    )


def data_home() -> Path:
    """``$BENCH_DATA`` when set, else ``./data``: where suites look for their datasets."""
    return Path(os.environ.get("BENCH_DATA", "data"))


def cache_home() -> Path:
    """``$BENCH_CACHE`` when set, else ``./.cache/bench``: features, checkpoints, scratch."""
    return Path(os.environ.get("BENCH_CACHE", Path(".cache") / "bench"))


def cuda_present() -> bool:
    """Whether an NVIDIA GPU is usable, without importing torch when there is no driver."""
    if not Path("/proc/driver/nvidia").exists():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if cuda_present() else "cpu"
    if device.startswith("cuda") and not cuda_present():
        raise BenchError("--device cuda was asked for, but no CUDA GPU is usable here")
    if device != "cpu" and not device.startswith("cuda"):
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (process-wide); None leaves it alone.

    bench pins CPU work to one thread: OpenMP barriers stall whenever another process holds a
    core, so on a busy 2-core machine two threads ran 7-20x slower than one (a 30 s log-mel:
    136 ms vs 19 ms; the 57 features of a clip: 20x). Parallelism belongs across processes.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a stale run's owner, after ``kill -9``)."""
    import os

    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_with_owner(owner: int) -> None:
    """End this process when process ``owner`` is gone (e.g. ``bench run`` after ``kill -9``).

    Jobs and tuning workers are children of a forkserver, not of the command, so nothing else
    stops an orphan from training on and writing where the resumed command will.
    """
    import os
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if not pid_alive(owner):
                os._exit(1)

    threading.Thread(target=watch, name="bench-owner-watch", daemon=True).start()


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    return {name: _version(name) for name in PACKAGES}
