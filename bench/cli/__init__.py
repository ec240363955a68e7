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
    except Exception:  # a bug: show the traceback, but never a password it may hold
        import traceback

        print(mask(traceback.format_exc()), file=sys.stderr, end="")
        return 1


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
