"""Picklable task functions for tests/test_processes.py (importable by spawned workers)."""

from __future__ import annotations

import os
import time


def square(x: int) -> int:
    return x * x


def pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def fail(message: str) -> None:
    raise RuntimeError(message)


def abort() -> None:
    os.abort()


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def die_in_a_worker(task: tuple[int, int]) -> tuple[int, bool]:
    """Task 3 kills its process when that is a worker (not ``parent``); returns (x, here)."""
    x, parent = task
    if x == 3 and os.getpid() != parent:
        os._exit(9)
    return x, os.getpid() == parent


def touch(path: str) -> str:
    """Create ``path`` (the task has started) and return it."""
    open(path, "w").close()
    return path
