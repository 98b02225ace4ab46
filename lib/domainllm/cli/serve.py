"""`domainllm serve ...`: the serving side run locally (the gateway in front of vLLM)."""

from __future__ import annotations

import argparse
from pathlib import Path

LIMIT_NAMES = ("requests_per_minute", "concurrency", "requests_per_day", "tokens_per_day", "feedback_per_day")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serving: the gateway in front of vLLM deployments")
    cmds = p.add_subparsers(dest="serve_command", required=True, metavar="SUBCOMMAND")
    g = cmds.add_parser("gateway", help="run the OpenAI-compatible gateway until stopped",
                        description="Routes /v1/chat/completions and /v1/completions by weight between the backends of a "
                                    "routes file, logs every exchange under LOG_ROOT, takes /v1/feedback, serves /metrics.")  # fmt: skip
    g.add_argument("--routes", type=Path, required=True, help="routes JSON file (rewritten by the rollout; reread on change)")
    g.add_argument("--log-root", required=True, help="folder or object-store URI for the request and feedback logs")
    g.add_argument("--keys", type=Path, required=True, help="API keys file (hashed keys; `domainllm serve keys add` makes one)")
    g.add_argument("--signing-secret", type=Path, required=True,
                   help="file with the secret that signs answer ids (the same on every replica)")  # fmt: skip
    g.add_argument("--policy", type=Path, help="JSON of the spec's serving.gateway (caps and default limits); default: the defaults")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=8800)
    g.add_argument("--admin-host", default="127.0.0.1", help="where /metrics and the detailed /health listen")
    g.add_argument("--admin-port", type=int, help="default: the policy's admin_port (8801)")
    g.add_argument("--no-scrub-pii", dest="scrub_pii", action="store_false", help="log prompts and answers unscrubbed")
    g.set_defaults(handler=_gateway)
    k = cmds.add_parser("keys", help="the gateway's API keys")
    kc = k.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    ka = kc.add_parser("add", help="add a key to a keys file and print it (the only time it is shown)")
    ka.add_argument("--keys", type=Path, required=True, help="the keys file (created with mode 0600)")
    ka.add_argument("--id", required=True, help="a name for the key (stays in the keys file; logs carry a pseudonymous id)")
    ka.add_argument("--role", choices=("user", "platform"), default="user")
    ka.add_argument("--principal", help="an existing principal id (p-...), to rotate that principal's key")
    for name in LIMIT_NAMES:
        ka.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name, help="this key's own limit")
    ka.set_defaults(handler=_keys_add)
    st = cmds.add_parser("status", help="what serves locally: the gateway, its routes and each deployment")
    st.add_argument("--spec", required=True, help="pipeline spec (its name names the deployments)")
    st.set_defaults(handler=_status)
    sp = cmds.add_parser("stop", help="stop the local gateway and every deployment of the pipeline")
    sp.add_argument("--spec", required=True)
    sp.set_defaults(handler=_stop)


def _gateway(args: argparse.Namespace) -> int:
    from domainllm.serve.gateway.server import run_gateway

    run_gateway(args.routes, args.log_root, keys=args.keys, signing_secret=args.signing_secret, policy_path=args.policy,
                host=args.host, port=args.port, admin_host=args.admin_host, admin_port=args.admin_port, scrub_pii=args.scrub_pii)  # fmt: skip
    return 0


def _keys_add(args: argparse.Namespace) -> int:
    from domainllm.serve.gateway.auth import KeysError, add_key

    limits = {n: getattr(args, n) for n in LIMIT_NAMES if getattr(args, n) is not None}
    try:
        key = add_key(args.keys, args.id, role=args.role, principal=args.principal, limits=limits)
    except KeysError as exc:
        print(f"error: {exc}")
        return 2
    print(key)
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
        print(f"  admin (metrics, health): {gateway.admin_url}; this machine's API keys: {gateway.keys_dir}/client-keys.json")
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
