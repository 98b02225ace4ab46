"""Running the gateway: the route table, the log store (PII scrubbed before it is written
when asked) and the aiohttp app on one port, on uvloop where it is installed."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def run_gateway(routes: Path, log_root: str, *, host: str = "127.0.0.1", port: int = 8800, scrub_pii: bool = True) -> None:
    from aiohttp import web

    from domainllm.serve.gateway.app import build_app
    from domainllm.serve.gateway.augment import AUGMENT_FILE, AugmentTable
    from domainllm.serve.gateway.routes import RouteTable
    from domainllm.serve.gateway.store import LogStore

    table = RouteTable(routes)
    store = LogStore(log_root, scrub_pii=scrub_pii)
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    log.info("gateway on http://%s:%d/v1 -> %s; request log: %s (PII scrubbed: %s)", host, port,
             ", ".join(f"{r.name}={r.weight:g}" for r in table.routes) or "no routes yet", log_root, scrub_pii)  # fmt: skip
    augment = AugmentTable(routes.with_name(AUGMENT_FILE))  # retrieval + intent routing, when the rollout wrote it
    augment.get()  # loaded (and warmed) before the first request
    web.run_app(build_app(table, store, augment=augment), host=host, port=port, access_log=None, print=None, loop=loop)
