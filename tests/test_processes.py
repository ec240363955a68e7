"""bench.processes: the one way work fans out to processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import helper_tasks  # noqa: E402

from bench import processes  # noqa: E402
from bench.processes import Task, isolated, mapped  # noqa: E402


def test_isolated_turns_every_ending_into_an_outcome() -> None:
    tasks = [
        Task("ok", helper_tasks.square, (7,)),
        Task("raises", helper_tasks.fail, ("password=hunter2 at postgresql://u:pw@db/x",)),
        Task("crashes", helper_tasks.abort),
        Task("overruns", helper_tasks.sleep, (60.0,), seconds=1.0),
    ]
    polls = []
    outcomes = {o.key: o for o in isolated(tasks, 2, on_poll=lambda: polls.append(1))}
    assert set(outcomes) == {"ok", "raises", "crashes", "overruns"}
    assert outcomes["ok"].ok and outcomes["ok"].value == 49
    raised = outcomes["raises"]
    assert raised.status == "error"
    assert raised.value.startswith("RuntimeError: ")
    assert "pw@" not in raised.value and "pw@" not in raised.trace  # masked in the child
    assert "helper_tasks.py" in raised.trace
    assert outcomes["crashes"].status == "died"
    assert "exit code -6" in outcomes["crashes"].value  # SIGABRT
    assert outcomes["overruns"].status == "timeout"
    assert polls  # the caller was polled while tasks ran


def test_isolated_starts_the_next_task_before_the_caller_handles_an_outcome(
    tmp_path: Path,
) -> None:
    """A slot freed by an ended task takes the next one before its outcome is handed over,
    so the caller's recording (MLflow writes) overlaps the next task instead of idling it."""
    import time

    first, second = tmp_path / "first", tmp_path / "second"
    tasks = iter(
        [Task(1, helper_tasks.touch, (str(first),)), Task(2, helper_tasks.touch, (str(second),))]
    )
    taken = []

    def source():
        for task in tasks:
            taken.append(task.key)
            yield task

    outcomes = isolated(source(), 1)
    ended = next(outcomes)
    assert ended.key == 1 and ended.ok
    assert taken == [1, 2]  # the second task was taken before the first outcome came back
    deadline = time.monotonic() + 60
    while not second.exists() and time.monotonic() < deadline:  # it runs while we hold this
        time.sleep(0.05)
    assert second.exists()
    assert [o.key for o in outcomes] == [2]


def test_mapped_keeps_order_and_its_workers() -> None:
    tasks = list(range(12))
    first = list(mapped(helper_tasks.pid_and_square, tasks, 2, keep=True))
    assert [square for _, square in first] == [x * x for x in tasks]
    workers = {pid for pid, _ in first}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2
    pool = processes._KEPT[(2, None)]
    again = list(mapped(helper_tasks.pid_and_square, tasks, 2, keep=True))
    # the same kept pool; it may start its second process only now (a busy machine ran the
    # whole first map on one), but never more than two
    assert processes._KEPT[(2, None)] is pool
    assert len(workers | {pid for pid, _ in again}) <= 2
    inline = list(mapped(helper_tasks.pid_and_square, tasks, 1))
    assert {pid for pid, _ in inline} == {os.getpid()}  # one worker: no process at all


def test_mapped_finishes_here_when_a_worker_dies(caplog: pytest.LogCaptureFixture) -> None:
    """A killed worker breaks the pool: the tasks left run in this process, with a warning."""
    tasks = [(x, os.getpid()) for x in range(8)]
    results = list(mapped(helper_tasks.die_in_a_worker, tasks, 2))
    assert [x for x, _ in results] == list(range(8))  # every task once, in order
    assert results[3] == (3, True)  # the task that killed a worker was run again, here
    assert "worker processes failed" in caplog.text


def test_in_subprocess_reports_each_outcome_as_isolated_does(monkeypatch) -> None:
    """What a daemon process (a Dask nanny's worker) uses instead of multiprocessing."""
    import multiprocessing

    from bench.processes import Task, in_subprocess

    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    with pytest.raises(AssertionError, match="daemonic processes"):
        multiprocessing.get_context("spawn").Process(target=print).start()

    assert in_subprocess(Task("a", helper_tasks.pid_and_square, (7,))).value[1] == 49
    assert in_subprocess(Task("a", helper_tasks.pid_and_square, (7,))).value[0] != os.getpid()
    failed = in_subprocess(Task("b", helper_tasks.fail, ("no",)))
    assert (failed.status, failed.value) == ("error", "RuntimeError: no")
    assert "helper_tasks.py" in failed.trace
    died = in_subprocess(Task("c", helper_tasks.abort))
    assert died.status == "died" and "exit code" in died.value
    slow = in_subprocess(Task("d", helper_tasks.sleep, (60,), seconds=2))
    assert (slow.status, slow.value) == ("timeout", "exceeded its 2 s budget")
