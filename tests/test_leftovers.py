"""``kill -9`` of ``bench run`` leaves one folder in the system's temporary folder, which the next
run removes: the forkserver's ``pymp-*`` folder and the jobs' and logged models' temporary
folders all live in it."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def _finished_jobs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute(
                "SELECT count(*) FROM runs WHERE status = 'FINISHED' AND name LIKE '%/fold%'"
            ).fetchone()[0]
    except sqlite3.Error:  # the schema is still being made
        return 0


@pytest.mark.slow
def test_kill_9_leaves_nothing_in_tmp_and_the_next_run_reaps_the_rest(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # short: a socket path in it may be at most 107 bytes
    system_tmp = Path(tempfile.mkdtemp(prefix="bt-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(system_tmp), "BENCH_CACHE": str(cache)}
    data = ["--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--folds", "3"]
    argv = [sys.executable, "-m", "bench.cli", "run", *data, "--models", "logreg,mlp"]
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            [*argv, "--no-report"], env=env, cwd=tmp_path, start_new_session=True, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while _finished_jobs(tmp_path / "mlflow.db") < 1 and run.poll() is None:
        assert time.monotonic() < deadline, "no job finished in 300 s"
        time.sleep(0.2)
    assert run.poll() is None, log.read_text()[-2000:]
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    time.sleep(1)  # the process group's last members go

    try:
        assert sorted(p.name for p in system_tmp.iterdir()) == [f"bench-{run.pid}-tmp"]
        assert list(system_tmp.glob("bench-*-tmp/pymp-*"))  # the forkserver's, held there

        again = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-2000:]
        assert sorted(p.name for p in system_tmp.iterdir()) == []
        assert sorted(p.name for p in (cache / "scratch").iterdir()) == []
    finally:
        shutil.rmtree(system_tmp, ignore_errors=True)
