"""`domainllm stage run|list`: the one command every stage is launched with."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stage", help="run pipeline stages")
    stage_sub = parser.add_subparsers(dest="stage_command", required=True, metavar="ACTION")

    run = stage_sub.add_parser(
        "run",
        help="run one stage for a pipeline run (a no-op when its output is up to date)",
        description="Example: domainllm stage run ingest --spec examples/demo/spec.yaml --run-id demo",
    )
    run.add_argument("stage", help="stage name (see `domainllm stage list`)")
    run.add_argument("--spec", required=True, help="pipeline spec YAML")
    run.add_argument("--run-id", required=True, help="pipeline run id (names the run's artifact folder)")
    run.add_argument("--force", action="store_true", help="rerun even if the output is up to date")
    run.add_argument("--shard", type=int, default=None,
                     help="sharded stages: run only this shard (0-based); without it, run all missing shards "
                          "and publish the stage")  # fmt: skip
    run.add_argument("--reuse-shards", action="store_true",
                     help="with --force on a sharded stage: keep shards that are current (the shard tasks "
                          "just reran them) and only collect")  # fmt: skip
    run.set_defaults(handler=_run)

    lst = stage_sub.add_parser("list", help="list stages in pipeline order")
    lst.set_defaults(handler=_list)


def _run(args: argparse.Namespace) -> int:
    from domainllm.artifacts import validate_run_id
    from domainllm.spec import load_spec
    from domainllm.stages.registry import get_stage
    from domainllm.stages.runner import StageError, run_stage

    spec = load_spec(args.spec)
    try:
        validate_run_id(args.run_id)
        get_stage(args.stage)
    except (ValueError, KeyError) as exc:
        raise StageError(str(exc).strip("\"'")) from None
    outcome = run_stage(spec, args.stage, args.run_id, force=args.force, shard=args.shard,
                        reuse_shards=args.reuse_shards)  # fmt: skip
    summary = {"skipped": outcome.skipped, **outcome.manifest.summary()}
    print(json.dumps(summary, sort_keys=True))
    return 0


def _list(args: argparse.Namespace) -> int:
    from domainllm.stages.names import SHARDED_STAGES, STAGE_IMAGES

    for name, image in STAGE_IMAGES.items():
        print(f"{name}\t(image: {image}{', sharded' if name in SHARDED_STAGES else ''})")
    return 0
