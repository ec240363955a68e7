"""A URL's password never reaches the console, a log, an error, MLflow or `bench studies`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import helper_models  # noqa: F401  (registers leaky)
import pytest

from bench.redact import mask

SECRET = "S3cr3tPW"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://bench:S3cr3tPW@db:5432/optuna", "postgresql://bench:***@db:5432/optuna"),
        ("postgres://user:S3cr3tPW@host/db", "postgres://user:***@host/db"),
        ("http://user:p@ss:S3cr3tPW@127.0.0.1:5000/", "http://user:***@127.0.0.1:5000/"),
        ("postgresql+psycopg://u:a/b@S3cr3tPW@h/db x", "postgresql+psycopg://u:***@h/db x"),
        (
            "postgresql://u@h/db?password=S3cr3tPW&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),  # fmt: skip
        ("host=h password=S3cr3tPW dbname=x", "host=h password=*** dbname=x"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("see http://host:5000/runs/1", "see http://host:5000/runs/1"),
    ],
)
def test_mask(text: str, masked: str) -> None:  # noqa: D103
    assert mask(text) == masked


def _bench(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", "-v", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _store_bytes(root: Path) -> bytes:
    """Every byte MLflow wrote: the SQLite store and every artifact file."""
    blobs = [p.read_bytes() for p in root.rglob("*") if p.is_file() and "mlflow" in str(p)]
    blobs += [p.read_bytes() for p in (root / "mlruns").rglob("*") if p.is_file()]
    return b"".join(blobs)


@pytest.mark.slow
def test_tuning_with_a_password_in_the_storage_url_leaks_it_nowhere(
    tabular_gtzan: Path, postgres_url: str, tmp_path: Path
) -> None:
    url = postgres_url.replace("bench:bench@", f"bench:{SECRET}@")  # the server trusts any
    argv = ["tune", "logreg", "--suite", "gtzan", "--data-dir", str(tabular_gtzan)]
    done = _bench(*argv, "--trials", "2", "--workers", "1", "--storage", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bench:***@127.0.0.1" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    studies = _bench("studies", "--storage", url, cwd=tmp_path)
    assert studies.returncode == 0 and "bench:***@127.0.0.1" in studies.stdout
    assert SECRET not in studies.stdout + studies.stderr
    store = _store_bytes(tmp_path)
    assert len(store) > 10_000  # the store was written
    assert SECRET.encode() not in store

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench/gtzan")
    study = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'study'")[0]
    assert "--storage postgresql://bench:***@127.0.0.1" in study.data.tags["bench.command"]


@pytest.mark.parametrize(
    "argv",
    [
        ["tune", "logreg", "--suite", "smoke", "--storage", f"postgres://user:{SECRET}@host/db"],
        ["tune", "logreg", "--suite", "smoke", "--storage", f"mysql://user:{SECRET}@host/db"],
        [
            "tune",
            "logreg",
            "--suite",
            "smoke",
            "--storage",
            f"postgresql://user@127.0.0.1:9/db?password={SECRET}&connect_timeout=2",
        ],
        ["studies", "--storage", f"postgresql://user:{SECRET}@127.0.0.1:9/db"],
        ["run", "--suite", "gtzan", "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:9/"],
        ["report", "--suite", "gtzan", "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:9/"],
        ["doctor", "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:9/"],
    ],
)
def test_errors_and_output_mask_the_password(
    argv: list[str], tmp_path: Path, shared_data: Path
) -> None:
    if argv[0] == "run":
        argv = [*argv, "--data-dir", str(shared_data / "gtzan"), "--models", "logreg"]
    done = _bench(*argv, cwd=tmp_path)
    assert SECRET not in done.stdout + done.stderr
    assert "***" in done.stdout + done.stderr
    if argv[0] != "doctor":
        assert done.returncode == 2
        errors = [line for line in done.stderr.splitlines() if line.startswith("bench: error:")]
        assert len(errors) == 1, done.stderr


def test_a_job_error_holding_a_password_is_masked_in_mlflow(
    tabular_gtzan: Path, tmp_path: Path
) -> None:
    """A model that fails with a URL in its message: the FAILED rows, the parameter that holds
    it and error.txt are all masked."""
    from mlflow.tracking import MlflowClient

    from bench.cli import main
    from bench.tracking import resolve_uri

    suite = tmp_path / "leak.toml"
    suite.write_text(
        '[dataset]\nkind = "gtzan"\n[protocol]\nfolds = 2\n[[models]]\nname = "leaky"\n'
        f'params = {{ message = "cannot reach postgresql://u:{SECRET}@db/x" }}\n'
    )
    argv = ["run", "--suite", str(suite), "--data-dir", str(tabular_gtzan), "--no-report"]
    assert main(argv) == 1
    client = MlflowClient(resolve_uri())
    experiment = client.get_experiment_by_name("bench/leak")
    runs = client.search_runs([experiment.experiment_id], "tags.`bench.kind` = 'job'")
    assert len(runs) == 2
    for run in runs:
        assert run.data.tags["bench.error"] == "RuntimeError: cannot reach postgresql://u:***@db/x"
        assert run.data.params["model.message"] == "cannot reach postgresql://u:***@db/x"
        text = Path(client.download_artifacts(run.info.run_id, "error.txt")).read_text()
        assert "postgresql://u:***@db/x" in text and SECRET not in text
    assert SECRET.encode() not in _store_bytes(tmp_path)
