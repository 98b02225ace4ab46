"""`domainllm`: the stage runner plus standalone data and demo commands."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from domainllm import lifecycle
from domainllm.cli import capabilities, data, demo, k8s, plan, run, serve, spec, stage
from domainllm.env import apply_offline_defaults
from domainllm.launch import USER_ERROR


def _user_errors() -> tuple[type[BaseException], ...]:
    from domainllm.data.records import InputError
    from domainllm.spec import SpecError
    from domainllm.stages.runner import StageError

    return (SpecError, InputError, StageError, FileExistsError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="domainllm", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (stage, run, spec, data, plan, demo, serve, k8s, capabilities):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()
    args = build_parser().parse_args(argv)
    lifecycle.install()
    # Under a launcher the task log already timestamps every line.
    launched = lifecycle.PARENT_PID_ENV in os.environ
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=("" if launched else "%(asctime)s ") + "%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow.store", "urllib3", "matplotlib", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
