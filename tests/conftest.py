"""Shared fixtures: real data location, small learnable datasets, an isolated MLflow store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.data.gtzan import GENRES
from bench.features.pretrained.weights import weights_home

SHARED_DATA = Path(
    os.environ.get("BENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
WEIGHTS = weights_home().resolve()
"""Where `bench weights fetch musicnn` put the weights before the tests isolated BENCH_CACHE."""


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "gtzan" / "features_30_sec.csv").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set BENCH_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder: its own mlflow.db, reports/ and cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_WEIGHTS", str(WEIGHTS))  # fetched once, read-only, shared
    monkeypatch.delenv("BENCH_DATA", raising=False)


def write_tabular_gtzan(
    root: Path, per_genre: int = 12, n_features: int = 8, seed: int = 0, artists: int = 3
) -> Path:
    """A Kaggle-layout folder with a learnable features CSV, split lists and artist groups.

    Genre sets the feature means; each synthetic artist adds an offset, as in real GTZAN.
    """
    rng = np.random.default_rng(seed)
    rows, groups, lists = [], [], {"train": [], "valid": [], "test": []}
    centers = rng.normal(0, 2.0, size=(len(GENRES), n_features))
    for g, genre in enumerate(GENRES):
        offsets = rng.normal(0, 0.5, size=(artists, n_features))
        for i in range(per_genre):
            artist = i % artists
            x = centers[g] + offsets[artist] + rng.normal(0, 1.0, n_features)
            name = f"{genre}.{i:05d}.wav"
            rows.append(
                {
                    "filename": name,
                    "length": 661794,
                    **{f"f{j}": x[j] for j in range(n_features)},
                    "label": genre,
                }
            )
            groups.append(f"{genre}/{name}\t{g * artists + artist}")
            lists[("train", "valid", "test")[artist % 3]].append(f"{genre}/{name}")
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "features_30_sec.csv", index=False)
    (root / "splits").mkdir(exist_ok=True)
    for side, names in lists.items():
        (root / "splits" / f"{side}_filtered.txt").write_text("\n".join(names) + "\n")
    (root / "splits" / "artist_groups.txt").write_text("\n".join(groups) + "\n")
    return root


@pytest.fixture
def tabular_gtzan(tmp_path: Path) -> Path:
    return write_tabular_gtzan(tmp_path / "gtzan")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package).

    `.ci/run` installs the package; where it is absent the tests that need it are skipped
    with the reason.
    """
    import glob
    import shutil
    import socket
    import subprocess
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = Path(found[-1]).parent
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*as_postgres, *cmd], check=True, capture_output=True, text=True, timeout=120
    )
    run(str(bin_dir / "initdb"), "-D", str(root / "db"), "-A", "trust", "-U", "bench")
    options = f"-h 127.0.0.1 -p {port} -k {root}"
    run(str(bin_dir / "pg_ctl"), "-D", str(root / "db"), "-o", options, "-l", str(root / "log"),
        "-w", "start")  # fmt: skip
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "optuna")
        yield f"postgresql://bench:bench@127.0.0.1:{port}/optuna"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(root / "db"), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Service markers follow what a test starts: its module (``cluster``, ``browser``) or the
    ``postgres_url`` fixture; each of them is slow too."""
    by_module = {
        "test_cluster": "cluster",
        "test_readme_dask": "cluster",
        "test_browser": "browser",
    }
    for item in items:
        module = getattr(item, "module", None)  # doctests have none
        names = [by_module.get(module.__name__ if module else "", "")]
        names.append("postgres" if "postgres_url" in getattr(item, "fixturenames", ()) else "")
        for name in filter(None, names):
            item.add_marker(name)
            item.add_marker("slow")
