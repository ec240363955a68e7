"""Arguments and output shared by several commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def default_workers() -> int:
    """The number of cores, at most 4."""
    return min(os.cpu_count() or 1, 4)


def interactive() -> bool:
    """Progress bars only where someone watches them."""
    return sys.stderr.isatty()


def tracking_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )


def cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster",
        help="run on the Dask scheduler at this address, e.g. tcp://10.0.0.5:8786 "
        "(default: $BENCH_CLUSTER; neither: local processes); needs pip install '.[dask]'",
    )


def system_metrics_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--system-metrics",
        action="store_true",
        help=f"record MLflow's system metrics (CPU, memory, disk, network; GPU with "
        f"nvidia-ml-py) on {what}, every 5 s ($MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL)",
    )


def labels_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels",
        type=Path,
        help="MSD suites: genre label file (track_id<TAB>genre, or a CSV with track_id/song_id "
        "and genre columns) instead of genres derived from artist terms",
    )


def protocol_arg(p: argparse.ArgumentParser, help: str) -> None:
    from bench.data.protocols import PROTOCOLS

    p.add_argument("--protocol", choices=PROTOCOLS, help=help)


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def options_from(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """``cls`` (a library's options dataclass) from the arguments of the same names."""
    from dataclasses import fields

    known = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**known, **given})


class LazyBar:
    """A progress bar on stderr, made on first use (when its total is known), closed on exit."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def start(self, total: int, desc: str, unit: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
