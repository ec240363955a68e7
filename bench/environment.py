"""Facts about where a run happens: device, code version, package versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError

PACKAGES = ("bench", "torch", "torchaudio", "scikit-learn", "xgboost", "optuna", "mlflow", "numpy")


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
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def run_tags() -> dict[str, str]:
    tags = {"bench.git_commit": git_commit()}
    tags.update({f"bench.version.{k}": v for k, v in package_versions().items()})
    return tags
