"""What bench says and whom it calls: no password on stdout, even in the lines MLflow prints
itself, and no address beyond loopback contacted by a purely local run (telemetry off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import services

PASSWORD = "Pa55-w0rd-on-stdout"

_AUDIT = """
import json, os, sys

_LOG = os.environ["BENCH_TEST_CONTACTS"]
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")


def _note(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if not isinstance(address, tuple):  # a unix socket: a path on this machine
            return
        host = address[0]
    else:
        return
    host = host.decode() if isinstance(host, bytes) else str(host or "")
    if host and not host.startswith(_LOCAL):
        with open(_LOG, "a") as f:
            f.write(json.dumps([os.getpid(), event, host]) + "\\n")


sys.addaudithook(_note)
"""


def _bench(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_no_password_reaches_stdout_with_an_mlflow_server(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    """MLflow writes ``View run ... at: URL`` to stdout itself, outside logging."""
    with services.mlflow_server(tmp_path) as (url, _):
        secret_url = url.replace("http://", f"http://bench:{PASSWORD}@")
        data = ["--suite", "gtzan", "--data-dir", str(tabular_gtzan)]
        env = services.env()
        runs = [
            _bench("run", *data, "--folds", "2", "--models", "logreg", "--no-report",
                   "--tracking-uri", secret_url, env=env, cwd=tmp_path),
            _bench("tune", "logreg", *data, "--trials", "2", "--workers", "1", "--storage",
                   f"sqlite:///{tmp_path / 'optuna.db'}",
                   env={**env, "MLFLOW_TRACKING_URI": secret_url}, cwd=tmp_path),
        ]  # fmt: skip
    for done in runs:
        assert done.returncode == 0, done.stderr[-2000:]
        assert PASSWORD not in done.stdout + done.stderr
    assert f"browse: {url}/#/experiments/" in runs[0].stdout  # a link without credentials


@pytest.mark.slow
def test_a_local_run_contacts_no_address_beyond_loopback(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    """An audit hook in every Python process bench starts (a ``sitecustomize``) notes each
    name lookup and connection; MLflow's telemetry would look up its config host and write
    ``~/.config/mlflow/telemetry.json``. The markers that make MLflow skip telemetry under
    test or CI are removed, so this measures bench's own setting."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_AUDIT)
    contacts = tmp_path / "contacts.jsonl"
    skip = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY",
            "DO_NOT_TRACK"}  # fmt: skip
    env = {k: v for k, v in services.env().items() if k not in skip}
    env.update(
        PYTHONPATH=os.pathsep.join([str(hook), env["PYTHONPATH"]]),
        BENCH_TEST_CONTACTS=str(contacts),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
    )
    data = ["--suite", "gtzan", "--data-dir", str(tabular_gtzan)]
    run = _bench("run", *data, "--models", "logreg,rf", "--folds", "2", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    report = _bench("report", "--suite", "gtzan", env=env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "reports" / "gtzan" / "leaderboard.md").is_file()
    seen = (
        [json.loads(line) for line in contacts.read_text().splitlines()]
        if contacts.exists()
        else []
    )
    assert seen == []
    assert not (tmp_path / "home" / ".config" / "mlflow" / "telemetry.json").exists()


@pytest.mark.parametrize("value", ["false"])
def test_telemetry_stays_the_users_choice(value: str) -> None:
    """bench turns MLflow's telemetry off only where the user has not said otherwise."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": value}
    code = "import bench, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == value
    env.pop("MLFLOW_DISABLE_TELEMETRY")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "true"
