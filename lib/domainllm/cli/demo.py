"""`domainllm demo corpora`: build the demo's input corpora from local files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="demo helpers")
    demo_sub = parser.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    corpora = demo_sub.add_parser("corpora", help="copy Perl (domain) and Python stdlib (general) corpora")
    corpora.add_argument("--out", required=True, help="output folder (replaced)")
    corpora.add_argument("--max-domain-mb", type=float, default=12.0)
    corpora.add_argument("--max-general-mb", type=float, default=6.0)
    corpora.set_defaults(handler=_corpora)


def _corpora(args: argparse.Namespace) -> int:
    from domainllm.demo.corpora import build_corpora

    summary = build_corpora(Path(args.out), max_domain_mb=args.max_domain_mb, max_general_mb=args.max_general_mb)
    print(json.dumps(summary, sort_keys=True))
    return 0
