"""``bench models``, ``bench suites``, ``bench doctor``: what is registered, installed, wrong."""

from __future__ import annotations

import argparse
import sys

from bench.cli.common import tracking_arg


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--family", help="only this family (baseline, bagging, boosting, ...)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("suites", help="list suites (experiments/*.toml)")
    p.set_defaults(func=cmd_suites)

    p = sub.add_parser(
        "doctor",
        help="check the installation: versions, torchaudio, devices, threads, stores",
        description="Print Python, torch, torchaudio (and whether it loads), scikit-learn, "
        "xgboost (and whether it has CUDA), optuna, mlflow, the devices, thread settings, and "
        "the MLflow store and Optuna storage in use (passwords masked). Exit code 1, with the "
        "exact fix, when something is broken.",
    )
    tracking_arg(p)
    p.add_argument("--storage", help="Optuna storage to report (default: as for `bench tune`)")
    p.set_defaults(func=cmd_doctor)


def cmd_models(args: argparse.Namespace) -> int:
    from bench.registry import list_models

    specs = list_models(family=args.family)
    width = max(len(s.name) for s in specs) if specs else 4
    print(f"{'name':<{width}}  {'family':<9}  {'input':<8}  description")
    for s in specs:
        print(f"{s.name:<{width}}  {s.family:<9}  {s.input_kind:<8}  {s.description}")
    return 0


def cmd_suites(args: argparse.Namespace) -> int:
    from bench.suites import list_suites

    suites = list_suites()
    name = max((len(s.name) for s in suites), default=0)
    kind = max((len(s.dataset.kind) for s in suites), default=0)
    protocol = max((len(s.protocol.describe()) for s in suites), default=0)
    for suite in suites:
        models = ", ".join(m.name for m in suite.models)
        print(
            f"{suite.name:<{name}}  {suite.dataset.kind:<{kind}}  "
            f"{suite.protocol.describe():<{protocol}}  {models}"
        )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.doctor import diagnose, render

    found = diagnose(args.tracking_uri, args.storage)
    print(render(found))
    broken = [f.name for f in found if f.problem]
    if broken:
        print(f"bench doctor: {len(broken)} problem(s): {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0
