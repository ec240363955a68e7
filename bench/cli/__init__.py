"""``bench`` command line: parses arguments, calls the library, prints.

One module per group of commands, each command's parser beside its handler; a handler builds
the library's options from the arguments, calls the library and prints. Validation lives in
the library, once. Heavy libraries (torch, MLflow, xgboost, scikit-learn) are imported inside
the handlers, so ``bench --help`` and ``bench models`` start instantly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from bench.cli import data, features, info, report, run, tune, weights


def main(argv: list[str] | None = None) -> int:
    from bench.redact import mask, mask_log_records

    mask_log_records()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = mask(" ".join(["bench", *argv]))  # what bench.command records
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # logs a whole traceback for a database error it then raises: bench reports it in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ours are enough
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    from bench.errors import BenchError

    try:
        return args.func(args) or 0
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)  # masked when it was raised
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: show the traceback, but never a password it may hold
        full = _disk_full(exc)
        if full:
            print(f"bench: error: {mask(full)}", file=sys.stderr)
            return 2
        import traceback

        print(mask(traceback.format_exc()), file=sys.stderr, end="")
        return 1


def _disk_full(exc: BaseException) -> str | None:
    """One line for a full disk or quota anywhere in ``exc``'s chain (MLflow and SQLAlchemy
    wrap the OSError or SQLite's 'database or disk is full'), else None."""
    import errno

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            where = exc.filename2 or exc.filename
            return (
                f"{exc.strerror}{f' writing {where}' if where else ''}; free space and run the "
                "same command again: it goes on from the jobs already recorded"
            )
        if "database or disk is full" in str(exc):
            return (
                "the MLflow store's disk is full (database or disk is full); free space and run "
                "the same command again: it goes on from the jobs already recorded"
            )
        exc = exc.__cause__ or exc.__context__
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark music-genre classifiers: suites of models x folds, "
        "logged to MLflow, summarised in markdown leaderboards.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(metavar="COMMAND")
    for group in (info, run, tune, report, features, data, weights):
        group.add_parsers(sub)
    return parser
