"""Installed versions of a peer's packages, read inside the peer's own venv by its runner."""

from __future__ import annotations

import platform
from importlib import metadata


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    """``{distribution: version}`` plus Python's; xgboost may come as the xgboost-cpu wheel."""
    found = {"python": platform.python_version()}
    for name in packages:
        for dist in (name, f"{name}-cpu"):
            try:
                found[dist] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            found[name] = "not installed"
    return found
