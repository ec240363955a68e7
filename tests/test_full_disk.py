"""A disk that fills during ``bench run``: one line, and the same command run again once there is
room records every job exactly once and leaves nothing RUNNING. The store lives on a 3 MB
tmpfs mounted in a private mount namespace (``unshare -m``, root), grown afterwards."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
set -u
mount -t tmpfs -o size=3m tmpfs "$STORE" || exit 99
cd "$STORE"
run() { "$PYTHON" -m bench.cli run --suite gtzan --data-dir "$DATA" --models logreg,rf \
    --folds 2 --no-report; }
run > "$OUT/1.out" 2> "$OUT/1.err"; echo $? > "$OUT/1.rc"
mount -o remount,size=64m "$STORE"
run > "$OUT/2.out" 2> "$OUT/2.err"; echo $? > "$OUT/2.rc"
cp mlflow.db "$OUT/mlflow.db"
"""


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_rerun_records_each_job_once(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    store, out = tmp_path / "store", tmp_path / "out"
    store.mkdir()
    out.mkdir()
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": sys.executable, "STORE": str(store),
        "OUT": str(out), "DATA": str(tabular_gtzan), "BENCH_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }  # fmt: skip
    done = subprocess.run(
        ["unshare", "-m", "bash", "-c", SCRIPT], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    if done.returncode == 99 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr

    err = (out / "1.err").read_text()
    assert (out / "1.rc").read_text().strip() == "2", err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "bench: error:" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0], err
    assert errors[0].endswith(
        "run the same command again: it goes on from the jobs already recorded"
    )

    assert (out / "2.rc").read_text().strip() == "0", (out / "2.err").read_text()
    db = sqlite3.connect(out / "mlflow.db")
    rows = db.execute(
        "SELECT r.name, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
        "WHERE t.key = 'bench.kind' AND t.value = 'job'"
    ).fetchall()
    finished = sorted(name for name, status in rows if status == "FINISHED")
    assert finished == ["logreg/fold0", "logreg/fold1", "rf/fold0", "rf/fold1"], rows
    statuses = {status for _, status in db.execute("SELECT name, status FROM runs")}
    assert "RUNNING" not in statuses
