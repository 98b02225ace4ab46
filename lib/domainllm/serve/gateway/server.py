"""Running the gateway: the keys, the signing secret, the route table, the log store (PII
scrubbed before it is written when asked) and the aiohttp apps: user traffic on one port,
metrics and health on the admin port; on uvloop where it is installed."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

BACKEND_KEY_ENV = "DOMAINLLM_BACKEND_API_KEY"
"""The API key the vLLM backends require (their `--api-key`), sent by the gateway alone."""


def load_policy(path: Path | None):
    from domainllm.spec.serving import GatewayPolicy

    if path is None:
        return GatewayPolicy()
    try:
        return GatewayPolicy.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise SystemExit(f"gateway: the policy file {path} cannot be used: {exc}") from None


def run_gateway(routes: Path, log_root: str, *, keys: Path, signing_secret: Path, policy_path: Path | None = None,
                host: str = "127.0.0.1", port: int = 8800, admin_host: str = "127.0.0.1", admin_port: int | None = None,
                scrub_pii: bool = True) -> None:  # fmt: skip
    from aiohttp import web

    from domainllm.serve.gateway.app import build_admin_app, build_app
    from domainllm.serve.gateway.augment import AUGMENT_FILE, AugmentTable
    from domainllm.serve.gateway.auth import KeysError, KeyTable
    from domainllm.serve.gateway.ids import RequestIds, SigningError, read_signing_secrets
    from domainllm.serve.gateway.routes import RouteTable
    from domainllm.serve.gateway.store import LogStore

    policy = load_policy(policy_path)
    try:
        key_table = KeyTable(keys, policy.limits)
        ids = RequestIds(read_signing_secrets(signing_secret), policy.feedback_ttl_s)
    except (KeysError, SigningError) as exc:
        raise SystemExit(f"gateway: {exc}") from None
    table = RouteTable(routes)
    store = LogStore(log_root, scrub_pii=scrub_pii)
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    admin_port = admin_port or policy.admin_port
    log.info("gateway on http://%s:%d/v1 -> %s; %d API keys; admin (metrics, health) on %s:%d; request log: %s (PII scrubbed: %s)",
             host, port, ", ".join(f"{r.name}={r.weight:g}" for r in table.routes) or "no routes yet", len(key_table), admin_host,
             admin_port, log_root, scrub_pii)  # fmt: skip
    augment = AugmentTable(routes.with_name(AUGMENT_FILE))  # retrieval + intent routing, when the rollout wrote it
    augment.get()  # loaded (and warmed) before the first request
    backend_key = os.environ.get(BACKEND_KEY_ENV, "")
    app = build_app(table, store, key_table, ids, policy=policy, augment=augment, backend_key=backend_key)

    async def admin_site(app: web.Application):
        runner = web.AppRunner(build_admin_app(app), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, admin_host, admin_port).start()
        yield
        await runner.cleanup()

    app.cleanup_ctx.append(admin_site)
    web.run_app(app, host=host, port=port, access_log=None, print=None, loop=loop)
