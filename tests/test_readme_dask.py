"""The README's Dask recipe, run as written with its two addresses set to 127.0.0.1: every
process it starts listens on that address only (a worker port on 0.0.0.0 accepts pickled
tasks from anyone who can reach it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
from support import services

README = Path(__file__).resolve().parents[1] / "README.md"


def _recipe() -> tuple[list[str], list[str]]:
    """The README's assignments (``NAME=value`` lines) and its ``dask`` commands, with
    continuation lines joined, from the block that starts the scheduler."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "dask scheduler" in b]
    lines = re.sub(r"\\\n\s*", "", block).splitlines()
    lines = [line.split("#", 1)[0].strip() for line in lines]
    assignments = [line for line in lines if re.fullmatch(r"[A-Z_]+=\S+", line)]
    commands = [line for line in lines if re.search(r"\bdask (scheduler|worker)\b", line)]
    return assignments, commands


def _tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_the_readme_dask_recipe_listens_only_on_the_address_given(tmp_path: Path) -> None:
    assignments, commands = _recipe()
    names = {a.split("=", 1)[0] for a in assignments}
    assert names == {"SCHEDULER", "WORKER"} and len(commands) == 2, (assignments, commands)
    scheduler_port, dashboard_port = services.free_port(), services.free_port()
    env = services.env(
        SCHEDULER="127.0.0.1", WORKER="127.0.0.1", BENCH_CACHE=str(tmp_path / "cache"),
        PATH=f"{services.BIN}{os.pathsep}{os.environ['PATH']}",
    )  # fmt: skip
    started = []
    try:
        for command in commands:  # the addresses come from the environment, as in a shell
            command = command.replace("8786", str(scheduler_port))
            command = command.replace("8787", str(dashboard_port))
            command = re.sub(r"\bBENCH_CACHE=\S+ ", "", command)  # a folder of this test's
            log = open(tmp_path / f"dask-{len(started)}.log", "w")  # noqa: SIM115
            started.append(subprocess.Popen(
                ["bash", "-c", f"exec env {command}"], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
            if len(started) == 1:
                services.wait_for_port(scheduler_port, started[0])
        listening: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # scheduler + dashboard, nanny + worker + dashboard
            listening = [
                (proc.pid, conn.laddr)
                for server in started
                for proc in _tree(server.pid)
                for conn in proc.net_connections(kind="inet")
                if conn.status == psutil.CONN_LISTEN
            ]
            if len(listening) >= 5:
                break
            time.sleep(0.5)
        assert len(listening) >= 5, (listening, (tmp_path / "dask-1.log").read_text()[-2000:])
        assert {laddr.ip for _, laddr in listening} == {"127.0.0.1"}, listening
    finally:
        for server in reversed(started):  # workers before the scheduler
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
