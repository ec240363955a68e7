"""The installation: an exact torch/torchaudio pair, a lock file, and `bench doctor`."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench import environment
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _base(version: str) -> str:
    return version.split("+", 1)[0]


def test_installed_torch_and_torchaudio_are_one_matched_pair() -> None:
    torch_version = _base(importlib.metadata.version("torch"))
    audio_version = _base(importlib.metadata.version("torchaudio"))
    assert torch_version == audio_version, (
        f"torchaudio {audio_version} does not match torch {torch_version}: it fails at import "
        f'with an OSError. Fix: pip install "torch=={torch_version}" "torchaudio=={torch_version}"'
        " (or reinstall with -c requirements.lock)"
    )

    assert environment.torchaudio_problem() is None


def test_pyproject_pins_the_pair_and_the_lock_agrees() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {d.split("==")[0]: d.split("==")[1] for d in project["dependencies"] if "==" in d}
    assert pins["torch"] == pins["torchaudio"]
    lock = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    assert lock["torch"] == pins["torch"] and lock["torchaudio"] == pins["torchaudio"]
    for requirement in ("mlflow", "optuna", "scikit-learn", "xgboost", "skops", "numpy"):
        assert requirement in lock, f"{requirement} is not locked"
    for name in ("torch", "torchaudio", "mlflow", "optuna", "scikit-learn", "xgboost", "numpy"):
        installed = _base(importlib.metadata.version(name))
        assert installed == lock[name], f"{name} {installed} installed, {lock[name]} locked"


def test_ci_runs_the_readme_test_command_verbatim_through_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    test_command = ci_lines[-1]  # .ci/run ends with the README's test command
    assert test_command.startswith('pip install -c requirements.lock -e ".[test]" && ')
    assert test_command.endswith("python -m pytest")
    assert f"\n{test_command}\n" in readme
    assert "pip install -c requirements.lock -e . && bench run --suite smoke" in readme


def test_doctor_passes_here_and_prints_every_fact(capsys) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "torchaudio", "scikit-learn", "xgboost", "optuna", "mlflow"):
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name
    assert re.search(r"^torchaudio\s+\S+, loads$", out, re.M)
    assert re.search(r"^xgboost\s+\S+, (with CUDA|CPU only)$", out, re.M)
    assert re.search(r"^(device|cuda:0)\s", out, re.M)
    assert "tracking uri" in out and "optuna storage" in out


def _broken_torchaudio(root: Path) -> Path:
    """A torchaudio 2.11.1 that fails to load the way the real one does beside torch 2.11.0."""
    package = root / "torchaudio"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise OSError("libtorchaudio.so: undefined symbol: '
        'torch_exception_get_what_without_backtrace")\n'
    )
    meta = root / "torchaudio-2.11.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: torchaudio\nVersion: 2.11.1\n")
    return root


def test_doctor_names_the_fix_when_torchaudio_does_not_match(tmp_path: Path) -> None:
    shadow = _broken_torchaudio(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    torch_version = _base(importlib.metadata.version("torch"))
    assert "torchaudio      2.11.1, broken" in done.stdout
    torch_full = importlib.metadata.version("torch")
    assert f"BROKEN: torchaudio 2.11.1 does not match torch {torch_full}" in done.stdout
    assert f'fix: pip install "torch=={torch_version}" "torchaudio=={torch_version}"' in (
        done.stdout
    )
    assert done.stderr.strip() == "bench doctor: 1 problem(s): torchaudio"


def test_audio_models_are_skipped_with_one_reason_when_torchaudio_is_broken(
    tabular_gtzan: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import numpy as np
    import soundfile as sf
    from mlflow.tracking import MlflowClient

    from bench import evaluate
    from bench.tracking import resolve_uri

    for name in ("blues.00000", "rock.00000", "jazz.00001"):
        folder = tabular_gtzan / "genres_original" / name.split(".")[0]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{name}.wav", np.zeros(22050, dtype=np.float32), 22050)
    reason = "torchaudio 2.11.1 does not match torch 2.11.0"
    monkeypatch.setattr(evaluate, "torchaudio_problem", lambda: reason)
    argv = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--folds", "2"]
    assert main([*argv, "--models", "logreg,cnn_ref,cnn"]) == 0
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/gtzan")
    skips = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'skip'")
    assert sorted(r.data.tags["bench.model"] for r in skips) == ["cnn", "cnn_ref"]
    for run in skips:
        assert run.data.tags["bench.skip_reason"] == f"{reason}; `bench doctor` names the fix"
    jobs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    assert sorted(r.data.tags["bench.model"] for r in jobs) == ["logreg", "logreg"]
    board = (Path("reports") / "gtzan" / "leaderboard.md").read_text()
    assert f"| cnn_ref | {reason}; `bench doctor` names the fix |" in board
    parent = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'parent'")[0]
    assert parent.data.tags["bench.env.torchaudio"].endswith(", loads")
    assert parent.data.tags["bench.env.torch"].startswith(
        _base(importlib.metadata.version("torch"))
    )


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_doctor_checks_that_the_store_and_the_storage_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    url = f"http://bench:s3cret@127.0.0.1:{_closed_port()}"
    storage = tmp_path / "missing-folder" / "optuna.journal"
    assert main(["doctor", "--tracking-uri", url, "--storage", str(storage)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^tracking uri\s+http://bench:\*\*\*@127\.0\.0\.1:\d+$", out, re.M)
    assert re.search(r"BROKEN: no answer from http://127\.0\.0\.1:\d+ \(.*refused", out)
    assert f"BROKEN: folder {storage.parent} does not exist" in out
    assert "s3cret" not in out
    assert not storage.parent.exists()  # asking created nothing
    (tmp_path / "mlflow.db").write_text("not a database, but a file of the same name")
    assert main(["doctor", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 1
    assert "is not a SQLite database" in capsys.readouterr().out


def test_an_unreachable_tracking_server_is_one_line_at_once(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    """MLflow's client retries a refused connection for about 250 s; bench asks once first
    (the subprocess's timeout only keeps a regression from hanging the suite)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    argv = ["run", "--suite", "gtzan", "--data-dir", str(tabular_gtzan), "--models", "logreg"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv, "--tracking-uri", url],
        capture_output=True, text=True, timeout=150, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"bench: error: MLflow store {url} is not reachable: no answer from {url} "
        "([Errno 111] Connection refused); start it, or pass another --tracking-uri"
    )
