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
    start.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a run parameter the stages read (e.g. window_start=2026-11-25); fixed for the run id")
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
    _write_params(layout, args.param)
    parent = start_pipeline_run(
        spec, args.run_id, {"spec_digest": spec_digest(spec), "spec_name": spec.name, "run_id": args.run_id}
    )
    record = {"run_id": args.run_id, "mlflow_run_id": parent, "run_dir": layout.run_dir, "tracking_uri": tracking_uri(spec)}
    write_bytes_atomic(layout.fs, layout.tracking_path(), json.dumps(record, sort_keys=True).encode())
    print(json.dumps(record, sort_keys=True))
    return 0


def _finish(args: argparse.Namespace) -> int:
    from domainllm.spec import load_spec
    from domainllm.tracking import finish_pipeline_run

    spec = load_spec(args.spec)
    parent = finish_pipeline_run(spec, args.run_id, args.status)
    print(json.dumps({"run_id": args.run_id, "mlflow_run_id": parent, "status": args.status}))
    return 0


def _write_params(layout, pairs: list[str]) -> None:
    """Stores the run's parameters once: a run id keeps the parameters it started with (its
    finished stages were made from them), so different ones need another run id."""
    from domainllm.artifacts.fs import write_bytes_atomic
    from domainllm.stages.runner import StageError

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StageError(f"--param {pair!r}: give KEY=VALUE")
        params[key] = value
    existing = layout.read_params()
    if existing and params and existing != params:
        raise StageError(f"run {layout.run_id} was started with parameters {existing}, not {params}: "
                         f"use another run id for other parameters")  # fmt: skip
    if params and not existing:
        write_bytes_atomic(layout.fs, layout.params_path(), json.dumps(params, sort_keys=True).encode())
