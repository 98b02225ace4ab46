"""`domainllm serve ...`: the serving side run locally (the gateway in front of vLLM)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serving: the gateway in front of vLLM deployments")
    cmds = p.add_subparsers(dest="serve_command", required=True, metavar="SUBCOMMAND")
    g = cmds.add_parser("gateway", help="run the OpenAI-compatible gateway until stopped",
                        description="Routes /v1/chat/completions and /v1/completions by weight between the backends of a "
                                    "routes file, logs every exchange under LOG_ROOT, takes /v1/feedback, serves /metrics.")  # fmt: skip
    g.add_argument("--routes", type=Path, required=True, help="routes JSON file (rewritten by the rollout; reread on change)")
    g.add_argument("--log-root", required=True, help="folder or object-store URI for the request and feedback logs")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=8800)
    g.add_argument("--no-scrub-pii", dest="scrub_pii", action="store_false", help="log prompts and answers unscrubbed")
    g.set_defaults(handler=_gateway)


def _gateway(args: argparse.Namespace) -> int:
    from domainllm.serve.gateway.server import run_gateway

    run_gateway(args.routes, args.log_root, host=args.host, port=args.port, scrub_pii=args.scrub_pii)
    return 0
