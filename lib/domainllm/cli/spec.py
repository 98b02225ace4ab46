"""`domainllm spec validate|show`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("spec", help="check or print a pipeline spec")
    spec_sub = parser.add_subparsers(dest="spec_command", required=True, metavar="ACTION")
    validate = spec_sub.add_parser("validate", help="validate a spec; exit 2 with every problem listed")
    validate.add_argument("spec")
    validate.set_defaults(handler=_validate)
    show = spec_sub.add_parser("show", help="print the spec with every default filled in")
    show.add_argument("spec")
    show.set_defaults(handler=_show)


def _validate(args: argparse.Namespace) -> int:
    from domainllm.spec import load_spec

    spec = load_spec(args.spec)
    print(f"ok: {args.spec} ({spec.name}: {len(spec.sources)} sources)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from domainllm.spec import load_spec

    print(json.dumps(load_spec(args.spec).model_dump(mode="json"), indent=2))
    return 0
