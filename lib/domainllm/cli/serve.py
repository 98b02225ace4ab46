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
    st = cmds.add_parser("status", help="what serves locally: the gateway, its routes and each deployment")
    st.add_argument("--spec", required=True, help="pipeline spec (its name names the deployments)")
    st.set_defaults(handler=_status)
    sp = cmds.add_parser("stop", help="stop the local gateway and every deployment of the pipeline")
    sp.add_argument("--spec", required=True)
    sp.set_defaults(handler=_stop)


def _gateway(args: argparse.Namespace) -> int:
    from domainllm.serve.gateway.server import run_gateway

    run_gateway(args.routes, args.log_root, host=args.host, port=args.port, scrub_pii=args.scrub_pii)
    return 0


def _status(args: argparse.Namespace) -> int:
    from domainllm.serve.gateway.routes import RoutesError, read_routes
    from domainllm.serve.local import LocalDeployments
    from domainllm.serve.local_gateway import LocalGateway
    from domainllm.spec import load_spec

    spec = load_spec(args.spec)
    gateway = LocalGateway(spec.name).get()
    if gateway is None:
        print(f"{spec.name}: no local gateway running")
    else:
        print(f"{spec.name}: gateway at {gateway.url}/v1 (model {spec.name!r}), logs under {gateway.log_root}")
        try:
            for route in read_routes(Path(gateway.routes_path)):
                print(f"  route {route.name}: version {route.version}, {route.weight:g}% -> {route.base_url}")
        except RoutesError:
            print("  no routes yet")
    deployments = LocalDeployments(spec.name, spec.serving)
    for name, d in deployments.all().items():
        state = deployments.supervisor_state(name).get("state", "?")
        print(f"  deployment {name}: version {d.version} at {d.base_url} ({state}); log {d.log_path}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from domainllm.serve.local import LocalDeployments
    from domainllm.serve.local_gateway import LocalGateway
    from domainllm.spec import load_spec

    spec = load_spec(args.spec)
    deployments = LocalDeployments(spec.name, spec.serving)
    for name in deployments.all():
        deployments.stop(name)
    LocalGateway(spec.name).stop()
    print(f"{spec.name}: local serving stopped")
    return 0
