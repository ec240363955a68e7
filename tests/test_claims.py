"""Job claims in the MLflow store: what lets several commands share one store."""

from __future__ import annotations

import time

import pytest

from bench.tracking import CLAIM_GRACE_SECONDS, Status, Tag, Tracker


@pytest.fixture
def tracker() -> Tracker:
    return Tracker("claims")


def _claim(tracker: Tracker, key: str = "logreg|fold0|abc") -> str | None:
    parent = tracker.start_parent("p", params={}, tags={})
    return tracker.claim_job(parent, "logreg/fold0", key, {Tag.MODEL: "logreg"})


def test_a_job_is_claimed_once(tracker: Tracker) -> None:
    first = _claim(tracker)
    assert first is not None
    assert tracker.client.get_run(first).info.status == Status.RUNNING
    assert _claim(tracker) is None  # live claim: another command does not take it
    tracker.finish_job(first, status=Status.FINISHED, params={}, metrics={"accuracy": 0.5})
    assert _claim(tracker) is None  # finished: nobody runs it again
    assert _claim(tracker, "logreg|fold1|abc") is not None  # another job is free


def test_a_failed_job_can_be_claimed_again(tracker: Tracker) -> None:
    first = _claim(tracker)
    tracker.finish_job(first, status=Status.FAILED, params={}, metrics={}, error="boom")
    assert _claim(tracker) is not None


def test_claims_of_dead_commands_are_reaped(tracker: Tracker) -> None:
    here = _claim(tracker)
    tracker.client.set_tag(here, Tag.PID, "999999")  # this host, a process that is gone
    again = _claim(tracker)
    assert again is not None and again != here
    assert tracker.client.get_run(here).info.status == Status.KILLED


@pytest.mark.parametrize(("age", "reaped"), [(CLAIM_GRACE_SECONDS + 60, True), (5, False)])
def test_claims_from_other_hosts_live_by_heartbeat(
    tracker: Tracker, age: float, reaped: bool
) -> None:
    there = _claim(tracker)
    tracker.client.set_tag(there, Tag.HOST, "another-host")
    tracker.client.set_tag(there, Tag.HEARTBEAT, f"{time.time() - age:.0f}")
    again = _claim(tracker)
    assert (again is not None) == reaped
    status = tracker.client.get_run(there).info.status
    assert status == (Status.KILLED if reaped else Status.RUNNING)


def test_heartbeats_keep_a_claim_alive(tracker: Tracker) -> None:
    there = _claim(tracker)
    tracker.client.set_tag(there, Tag.HOST, "another-host")
    tracker.client.set_tag(there, Tag.HEARTBEAT, f"{time.time() - 2 * CLAIM_GRACE_SECONDS:.0f}")
    tracker.beat([there])
    assert _claim(tracker) is None
    assert tracker.reap_stale_runs() == 0


def test_parent_runs_elsewhere_are_never_reaped_by_age(tracker: Tracker) -> None:
    parent = tracker.start_parent("p", params={}, tags={Tag.HOST: "another-host"})
    assert tracker.reap_stale_runs() == 0
    assert tracker.client.get_run(parent).info.status == Status.RUNNING


class _Workers:
    """A stand-in Dask client whose one worker reports ``versions`` and ``daemon``."""

    def __init__(self, versions: dict[str, str], daemon: bool = False) -> None:
        self.versions, self.daemon = versions, daemon

    def nthreads(self) -> dict[str, int]:
        return {"tcp://10.0.0.7:4000": 1}

    def get_versions(self, check: bool = False) -> dict:
        return {}

    def run(self, function) -> dict:
        value = self.versions if function.__name__ == "package_versions" else self.daemon
        return {"tcp://10.0.0.7:4000": value}


def test_a_cluster_with_other_versions_is_refused_and_daemon_workers_are_not() -> None:
    from bench.cluster import check, package_versions
    from bench.errors import BenchError

    here = package_versions()
    check(_Workers(dict(here)))  # the same versions, able to start processes: accepted
    with pytest.raises(BenchError, match=r"worker tcp://10.0.0.7:4000 runs torch 2.10.0 \(here"):
        check(_Workers({**here, "torch": "2.10.0"}))
    check(_Workers(dict(here), daemon=True))  # plain `dask worker`: jobs start by subprocess
