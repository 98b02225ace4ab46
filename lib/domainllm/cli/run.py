"""`domainllm run start|finish`: the pipeline run's parent MLflow run and spec snapshot."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="open or close a pipeline run")
    run_sub = parser.add_subparsers(dest="run_command", required=True, metavar="ACTION")

    start = run_sub.add_parser("start", help="validate the spec, snapshot it, open the parent MLflow run")
    start.add_argument("--spec", required=True)
    start.add_argument("--run-id", required=True)
    start.set_defaults(handler=_start)

    finish = run_sub.add_parser("finish", help="close the parent MLflow run with a status")
    finish.add_argument("--spec", required=True)
    finish.add_argument("--run-id", required=True)
    finish.add_argument("--status", choices=["FINISHED", "FAILED", "KILLED"], default="FINISHED")
    finish.set_defaults(handler=_finish)


def _start(args: argparse.Namespace) -> int:
    from domainllm.artifacts import RunLayout
    from domainllm.artifacts.fs import join, write_bytes_atomic
    from domainllm.spec import load_spec, spec_digest
    from domainllm.tracking import start_pipeline_run, tracking_uri

    spec = load_spec(args.spec)
    layout = RunLayout(spec.artifact_root, args.run_id)
    layout.fs.makedirs(layout.run_dir, exist_ok=True)
    resolved = json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True).encode()
    write_bytes_atomic(layout.fs, join(layout.run_dir, "spec.resolved.json"), resolved + b"\n")
    parent = start_pipeline_run(
        spec, args.run_id, {"spec_digest": spec_digest(spec), "spec_name": spec.name, "run_id": args.run_id}
    )
    print(json.dumps({"run_id": args.run_id, "mlflow_run_id": parent, "run_dir": layout.run_dir,
                      "tracking_uri": tracking_uri(spec)}, sort_keys=True))  # fmt: skip
    return 0


def _finish(args: argparse.Namespace) -> int:
    from domainllm.spec import load_spec
    from domainllm.tracking import finish_pipeline_run

    spec = load_spec(args.spec)
    parent = finish_pipeline_run(spec, args.run_id, args.status)
    print(json.dumps({"run_id": args.run_id, "mlflow_run_id": parent, "status": args.status}))
    return 0
