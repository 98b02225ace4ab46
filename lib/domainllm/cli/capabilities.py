"""`domainllm capabilities`: this machine as kernel libraries see it, and what the probes
found it can and cannot run (each tried in a child process and cached per machine), with
the evidence; `--check-serving MODEL` probes vLLM on a model now."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capabilities", help="what this machine can run: the probes' outcomes, with their evidence")
    p.add_argument("--check-serving", metavar="MODEL", help="probe now whether this machine's vLLM serves MODEL (a local folder)")
    p.add_argument("--refresh", action="store_true", help="with --check-serving: try again even if an outcome is cached")
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.set_defaults(handler=_capabilities)


def _capabilities(args: argparse.Namespace) -> int:
    from domainllm.capabilities import Probes
    from domainllm.capabilities.machine import describe

    if args.check_serving:
        from domainllm.serve.check import serve_check
        from domainllm.spec.serving import ServingConfig

        record = serve_check(args.check_serving, ServingConfig(), refresh=args.refresh)
        records = [record]
    else:
        records = Probes().all()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(f"this machine: {describe()}")
    if not records:
        print("no probe has run here yet (the serve checks of eval_quantized, `--check-serving MODEL`, training's op checks)")
    for r in records:
        subject = ", ".join(f"{k}={v}" for k, v in r.get("subject", {}).items() if k != "model")
        cached = " (cached)" if r.get("cached") else ""
        print(f"\n{r.get('probe', '?')}: {r['status']}{cached}  {r.get('probed_at', '')}  {subject}")
        if r.get("reason"):
            print(f"  reason: {r['reason']}")
        crash = (r.get("evidence") or {}).get("crash")
        if crash:
            print(f"  crash:  {crash['signal']} in " + " <- ".join(crash["frames"][:4]))
    return 1 if args.check_serving and records[0]["status"] == "failed" else 0
