"""``bench doctor``: what this installation can do, and the exact fix for what is broken.

The same facts (less the stores) are recorded on every ``bench run`` parent run as
``bench.env.*`` tags, so a result can be traced to the installation that produced it.
"""

from __future__ import annotations

from bench.environment import Fact, facts


def diagnose(tracking_uri: str | None = None, storage: str | None = None) -> list[Fact]:
    """Every fact of :func:`bench.environment.facts`, plus the MLflow store and the Optuna
    storage that ``bench run`` and ``bench tune`` would use here (passwords masked), each
    asked whether it answers (:func:`bench.reach.problem`; nothing is created)."""
    from bench import reach
    from bench.errors import BenchError
    from bench.redact import mask
    from bench.tracking import resolve_uri

    found = facts()
    uri = resolve_uri(tracking_uri)
    problem = reach.problem(uri)
    found.append(
        Fact("tracking uri", mask(uri), mask(problem), _STORE_FIX)
        if problem
        else Fact("tracking uri", mask(uri))
    )
    try:
        from bench.tuning.storage import parse_storage

        spec = parse_storage(storage)
        problem = reach.problem(str(spec.path) if spec.kind == "journal" else spec.url)
        if problem:
            raise BenchError(mask(problem))
        found.append(Fact("optuna storage", spec.display))
    except BenchError as exc:
        fix = (
            "pass --storage (or set $BENCH_OPTUNA_STORAGE) a journal file path, "
            "sqlite:///FILE or a postgresql:// URL"
        )
        found.append(Fact("optuna storage", "unusable", str(exc), fix))
    return found


_STORE_FIX = (
    "start the server or database, or pass --tracking-uri (or set $MLFLOW_TRACKING_URI) a "
    "store bench can reach; the default sqlite:///mlflow.db needs a writable folder"
)


def render(found: list[Fact]) -> str:
    """Aligned ``name  value`` lines; a broken item adds its problem and its fix."""
    width = max(len(f.name) for f in found)
    lines = []
    for fact in found:
        lines.append(f"{fact.name:<{width}}  {fact.value}")
        if fact.problem:
            lines.append(f"{'':<{width}}  BROKEN: {fact.problem}")
            lines.append(f"{'':<{width}}  fix: {fact.fix}")
    return "\n".join(lines)
