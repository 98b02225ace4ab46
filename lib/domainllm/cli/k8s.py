"""`domainllm k8s render|validate`: the manifests a run would create, for review before a
cluster sees them."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from domainllm.data.records import InputError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("k8s", help="render and validate the Kubernetes objects of a run")
    k8s_sub = parser.add_subparsers(dest="k8s_command", required=True, metavar="ACTION")
    render = k8s_sub.add_parser(
        "render", help="write every pod, job and service a run creates (plus the specs ConfigMap)",
        description="Example: domainllm k8s render --spec examples/demo/spec.k8s.yaml --out manifests/ --validate",
    )  # fmt: skip
    render.add_argument("--spec", required=True)
    render.add_argument("--run-id", default="example", help="run id the manifests are for (default: example)")
    render.add_argument("--out", required=True, help="folder for the YAML files (one per launch, in DAG order)")
    render.add_argument("--validate", action="store_true", help="validate what was written, as `domainllm k8s validate`")
    render.add_argument("--kubernetes-version", action="append", dest="versions", metavar="X.Y.Z",
                        help="with --validate: a version to validate against (repeatable)")  # fmt: skip
    render.set_defaults(handler=_render)
    validate = k8s_sub.add_parser("validate", help="check manifests against the Kubernetes schemas (strict)")
    validate.add_argument("path", help="a folder of YAML manifests (as rendered) or one file")
    validate.add_argument("--kubernetes-version", action="append", dest="versions", metavar="X.Y.Z",
                          help="version to validate against (repeatable; default: 1.32.0 and 1.37.0)")  # fmt: skip
    validate.set_defaults(handler=_validate)


def _render(args: argparse.Namespace) -> int:
    from domainllm.artifacts import validate_run_id
    from domainllm.k8s.render import render_run, specs_config_map, write
    from domainllm.spec import load_spec
    from domainllm.spec.loader import spec_files

    spec = load_spec(args.spec)
    validate_run_id(args.run_id)
    if spec.runtime.launcher != "kubernetes":
        print(f"note: {args.spec} runs stages with the {spec.runtime.launcher!r} launcher; these are the objects "
              f"`runtime.launcher: kubernetes` would create")  # fmt: skip
    try:
        rendered = render_run(spec, args.spec, args.run_id)
    except ValueError as exc:
        raise InputError(f"cannot render {args.spec}: {exc}") from None
    written = write(rendered, specs_config_map(spec, spec_files(args.spec)), Path(args.out))
    kinds = Counter(obj["kind"] for item in rendered for obj in item.objects)
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + " + 1 ConfigMap")
    if args.validate:
        return _check(Path(args.out), args.versions)
    return 0


def _validate(args: argparse.Namespace) -> int:
    return _check(Path(args.path), args.versions)


def _check(path: Path, versions: list[str] | None) -> int:
    from domainllm.k8s.validate import DEFAULT_VERSIONS, load_dir, validate_objects

    try:
        objects = load_dir(path)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc)) from None
    findings = validate_objects(objects, versions or DEFAULT_VERSIONS)
    invalid = [f for f in findings if f.status == "invalid"]
    unchecked = sorted({(f.kind, f.message.split(":")[0]) for f in findings if f.status == "unchecked"})
    for f in invalid:
        print(f"INVALID {f.source} ({f.kind} {f.name}, Kubernetes {f.version}): {f.message}")
    for kind, why in unchecked:
        print(f"not checked: {kind} ({why})")
    valid = sum(f.status == "valid" for f in findings)
    print(f"{len(objects)} objects x {len(versions or DEFAULT_VERSIONS)} Kubernetes versions: {valid} valid, "
          f"{len(invalid)} invalid, {len(findings) - valid - len(invalid)} custom resources not checked")  # fmt: skip
    return 1 if invalid else 0
