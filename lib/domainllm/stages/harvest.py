"""Stage `harvest` (data_flywheel): the gateway's request log of the run's window (run
parameters `window_start`, `window_end`) with the users' feedback on those answers. Lines
that cannot be read are quarantined with the reason; requests that are not user traffic or
were not answered are counted and left out. Per principal (pseudonymous): what was harvested,
capped and flagged, in `principals.json`; the flags also in the manifest's info."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import QUARANTINE, write_rows
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)


def window_of(layout):
    from domainllm.flywheel.window import Window, WindowError

    params = layout.read_params()
    if "window_start" not in params or "window_end" not in params:
        raise StageError(f"run {layout.run_id} has no window: start it with `domainllm run start --param window_start=... "
                         f"--param window_end=...` (the data_flywheel DAG does)")  # fmt: skip
    try:
        return Window.parse(params["window_start"], params["window_end"])
    except WindowError as exc:
        raise StageError(f"run {layout.run_id}: {exc}") from None


class HarvestStage(StageDefaults):
    name: ClassVar[str] = "harvest"
    version: ClassVar[str] = "2"
    requires: ClassVar[tuple[str, ...]] = ()

    def config(self, spec: Spec) -> dict[str, Any]:
        from domainllm.stages.rollout import log_root

        return {"log_root": log_root(spec), "harvest": spec.flywheel.harvest.model_dump(mode="json")}

    def run_inputs(self, spec: Spec, layout) -> dict[str, str]:
        """The window, and the log files it covers as they are now (a rerun after more
        feedback arrived harvests again)."""
        import datetime as dt

        from domainllm.flywheel.harvest import FEEDBACK, REQUESTS, files_fingerprint, log_files
        from domainllm.stages.rollout import log_root

        window, root = window_of(layout), log_root(spec)
        now = dt.datetime.now(dt.UTC)
        files = log_files(root, REQUESTS, window) + log_files(root, FEEDBACK, window, until=max(now, window.end))
        return {"window": f"{window.start.isoformat()}/{window.end.isoformat()}", "logs": files_fingerprint(root, files)}

    def run(self, ctx: StageContext) -> StageResult:
        import json
        from dataclasses import asdict

        from domainllm.flywheel.harvest import harvest
        from domainllm.stages.rollout import log_root

        window = window_of(ctx.layout)
        result = harvest(log_root(ctx.spec), window, cfg=ctx.spec.flywheel.harvest)
        write_rows(ctx, result.rows)
        write_rows(ctx, result.quarantine, QUARANTINE)
        with ctx.out.fs.open(ctx.out.file(PRINCIPALS), "w") as fh:
            json.dump({p: asdict(s) for p, s in sorted(result.principals.items(), key=lambda kv: -kv[1].requests)}, fh, indent=1)
        for principal, why in result.flags.items():
            log.warning("harvest: principal %s flagged: %s", principal, "; ".join(why))
        log.info("harvest: %s to %s: %d answered user requests (%d with feedback); %s", window.start.isoformat(),
                 window.end.isoformat(), len(result.rows), result.counts["with_feedback"],
                 ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))  # fmt: skip
        return StageResult(counts=dict(result.counts), info={"window": window.as_dict(), "flags": result.flags},
                           reports=[PRINCIPALS])  # fmt: skip


PRINCIPALS = "principals.json"
