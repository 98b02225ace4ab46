"""StageOperator and PipelineRunOperator: build a launch request, hand it to the launcher
the spec names, and return the stage manifest's summary through XCom.

On the Kubernetes launcher a StageOperator defers (`runtime.kubernetes.deferrable`, on by
default): it creates or reattaches to its pod or job, then Airflow's triggerer waits for it
(`domainllm_operators.triggers`) and the worker slot is free; the task resumes on any worker
in `execute_complete` for the verdict and the log. PipelineRunOperator (seconds of work)
always waits in its worker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.sdk import BaseOperator, Context
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    AirflowTaskTimeout,
)

from domainllm.launch import USER_ERROR, LaunchRequest, run_control_request, stage_request
from domainllm_operators.launchers import DeferrableLauncher, Launcher, LaunchResult, get_launcher


class _LaunchingOperator(BaseOperator):
    template_fields: Sequence[str] = ("spec_path", "run_id")
    ui_color = "#e8f0fe"

    def __init__(self, *, spec_path: str, run_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.run_id = run_id
        self._launcher: Launcher | None = None
        self._killed = threading.Event()
        self._handle_seen = False
        self._kill_once = threading.Lock()

    def _load_spec(self):
        from domainllm.artifacts import validate_run_id
        from domainllm.spec import load_spec

        spec = load_spec(self.spec_path)  # an invalid spec fails here, before any work
        validate_run_id(self.run_id)
        return spec

    def _launch(self, context: Context, spec, request: LaunchRequest) -> LaunchResult:
        launcher = self._prepare(context, spec, request)
        return launcher.launch(request, self.log, on_handle=self._on_handle(context))

    def _prepare(self, context: Context, spec, request: LaunchRequest) -> Launcher:
        """XCom `launch` (identifiers first, so even a failed attempt leaves a trail), then the
        launcher; refuses once the task was killed."""
        from domainllm.artifacts import RunLayout

        mlflow_run_id = RunLayout(spec.artifact_root, request.run_id).mlflow_run_id()
        context["ti"].xcom_push(
            key="launch",
            value={"run_id": request.run_id, "name": request.name, "command": list(request.command),
                   "attempt_id": request.attempt_id, "launcher": spec.runtime.launcher, "mlflow_run_id": mlflow_run_id},
        )  # fmt: skip
        self._launcher = get_launcher(spec, self.spec_path, mlflow_run_id)
        if self._killed.is_set():
            # Airflow's task process goes on after on_kill: a stage launched now would run
            # unwatched until the SIGKILL that ends the task process.
            raise AirflowException(f"the task was killed before its stage started ({request.name}, run {request.run_id})")
        return self._launcher

    def _on_handle(self, context: Context):
        ti = context["ti"]

        def on_handle(handle: dict[str, Any]) -> None:
            self._handle_seen = True
            if self._killed.is_set():  # on_kill came while it was starting, before there was anything to kill
                self._stop_launched()
            ti.xcom_push(key="handle", value=handle)

        return on_handle

    def on_kill(self) -> None:
        """Stops the stage; one not launched yet never will be. Airflow calls this from its
        SIGTERM handler (in the middle of `execute`) or on a timeout."""
        self._killed.set()
        self._stop_launched()

    def _stop_launched(self) -> None:
        # Once something runs (its handle was seen), and only once: a second SIGTERM would
        # interrupt the stage's own clean-up. on_kill and on_handle both set their flag
        # before they check the other's, so one of them always gets here with both set.
        if self._launcher is not None and self._handle_seen and self._kill_once.acquire(blocking=False):
            self._launcher.kill()


class StageOperator(_LaunchingOperator):
    """Runs `domainllm stage run STAGE` through the configured launcher.

    `selected_stages` (templated, e.g. from the DAG's params form) skips this task when
    its stage is not listed; downstream stages then reuse the existing output.
    For a sharded stage, map one task per `shard` (`.expand(shard=...)`) and follow them
    with one task with `reuse_shards=True`, which publishes the stage.
    """

    template_fields: Sequence[str] = ("spec_path", "run_id", "force", "selected_stages")

    def __init__(
        self,
        *,
        stage: str,
        force: bool | str = False,
        selected_stages: list[str] | str | None = None,
        shard: int | None = None,
        reuse_shards: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", stage)
        super().__init__(**kwargs)
        self.stage = stage
        self.force = force
        self.selected_stages = selected_stages
        self.shard = shard
        self.reuse_shards = reuse_shards

    def execute(self, context: Context) -> dict[str, Any]:
        if self.selected_stages is not None and self.stage not in self.selected_stages:
            raise AirflowSkipException(f"stage {self.stage} not selected in this run's params")
        spec = self._load_spec()
        attempt_id = uuid.uuid4().hex
        force = self.force in (True, "True", "true", "1")
        request = stage_request(spec, self.spec_path, self.stage, self.run_id, force=force, attempt_id=attempt_id,
                                shard=self.shard, reuse_shards=self.reuse_shards)  # fmt: skip
        launcher = self._prepare(context, spec, request)
        if isinstance(launcher, DeferrableLauncher) and launcher.deferrable:
            self._defer(context, launcher, request)
        result = launcher.launch(request, self.log, on_handle=self._on_handle(context))
        return self._complete(spec, result, result.attempt_id or attempt_id)  # a reattached pod ran with its own attempt's id

    def _defer(self, context: Context, launcher: DeferrableLauncher, request: LaunchRequest) -> NoReturn:
        """Starts (or finds) the pod or job, then hands the wait to the triggerer. The task's
        execution_timeout, which Airflow 3.3 does not apply while a task is deferred, becomes the
        trigger's own deadline (an absolute time: it survives triggerer restarts)."""
        handle = launcher.start(request, self.log, on_handle=self._on_handle(context))
        if self._killed.is_set():
            raise AirflowException(f"the task was killed while its stage started ({request.name}, run {request.run_id}); "
                                   f"{handle['kind']} {handle['name']} was deleted")  # fmt: skip
        timeout = self.execution_timeout
        deadline = time.time() + timeout.total_seconds() if timeout else None
        self.log.info("deferring: the triggerer waits for %s %s; this worker slot is free until it ends",
                      handle["kind"], handle["name"])  # fmt: skip
        self.defer(trigger=launcher.trigger(handle, request, deadline), method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Resumes after the trigger's event, on any worker (a fresh process: nothing of
        `execute` is left but the event, which carries the handle): the launcher, rebuilt from
        the spec, reads the verdict, puts the container's log in the task log and cleans up;
        then as `execute`."""
        from domainllm.artifacts import RunLayout

        handle, deferred_at = event["handle"], event["since"]
        spec = self._load_spec()
        launcher = get_launcher(spec, self.spec_path, RunLayout(spec.artifact_root, self.run_id).mlflow_run_id())
        if not isinstance(launcher, DeferrableLauncher):
            raise AirflowFailException(f"runtime.launcher is {spec.runtime.launcher!r} now, but this task deferred on "
                                       f"{handle.get('launcher')!r} ({handle.get('kind')} {handle.get('name')}); clear it")  # fmt: skip
        self._launcher = launcher
        self._handle_seen = True  # a kill from now on deletes it (on_kill)
        self.log.info("resumed: %s %s %s (it waited %.0fs in the triggerer)", handle["kind"], handle["name"],
                      event.get("status"), time.time() - deferred_at)  # fmt: skip
        result = launcher.finish(handle, event, self.log, time.time() - deferred_at, int(event.get("grace_period_s", 30)))
        if result.failure is not None and result.failure.reason == "Timeout":
            raise AirflowTaskTimeout(f"stage {self.stage} ran past the task's execution_timeout ({self.execution_timeout}) "
                                     f"for run {self.run_id}: {result.failure.message}; deleted")  # fmt: skip
        return self._complete(spec, result, handle.get("attempt_id"))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context):
        """As Airflow resumes; when the trigger itself failed (it raised, or the triggerer could
        not load it), says what became of the pod or job before Airflow fails the task."""
        if next_method == TRIGGER_FAIL_REPR:
            try:
                handle = context["ti"].xcom_pull(task_ids=self.task_id, key="handle", map_indexes=context["ti"].map_index)
            except Exception:  # what is said here must not hide the trigger's failure
                handle = None
            if isinstance(handle, dict) and handle.get("launcher") == "kubernetes":
                self.log.error("the trigger waiting for %s %s failed; it is left running (never deleted on a guess): a "
                               "retry reattaches to it, or delete it: kubectl -n %s delete %s %s", handle["kind"],
                               handle["name"], handle["namespace"], handle["kind"], handle["name"])  # fmt: skip
        return super().resume_execution(next_method, next_kwargs, context)

    def _complete(self, spec, result: LaunchResult, attempt_id: str | None) -> dict[str, Any]:
        """What the stage's end means: its manifest's summary, or the task failed (`failed`)."""
        from domainllm.artifacts import RunLayout, read_manifest

        layout = RunLayout(spec.artifact_root, self.run_id)
        manifest = None
        if self.shard is not None:  # a shard's own manifest; none if the stage was already published
            manifest = read_manifest(layout.fs, layout.shard_dir(self.stage, self.shard, spec.data.shards))
        manifest = manifest or layout.read_manifest(self.stage)
        if result.exit_code != 0:
            if manifest is not None and manifest.attempt_id == attempt_id:
                # Outputs and manifest were published by this attempt; the process died
                # afterwards (seen with DeepSpeed at interpreter exit). The work is done.
                self.log.warning("stage %s exited with %s after publishing its outputs", self.stage, result.exit_code)
            else:
                self.failed(result)
        if manifest is None:
            raise AirflowException(f"stage {self.stage} exited 0 but published no manifest for run {self.run_id}")
        self.log.info("stage %s outputs: %s", self.stage, layout.stage_dir(self.stage))
        if manifest.info.get("report_html"):
            self.log.info("report: %s (also under the stage's MLflow run %s)", manifest.info["report_html"],
                          manifest.mlflow_run_id)  # fmt: skip
        return self.succeeded(manifest.summary())

    def succeeded(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The stage's summary when it succeeded (after `execute`, or after resuming): what the
        task returns. Subclasses say what it means for the DAG."""
        return summary

    def failed(self, result: LaunchResult) -> None:
        """Fails the task. What a retry cannot change (a bad spec or input, an image that
        cannot be pulled, out of memory) fails it for good; the rest (a lost node, a
        preemption, a crash) is retried, and training resumes from its last checkpoint."""
        why = result.failure.message if result.failure else "the reason is in the log above"
        message = f"stage {self.stage} failed (exit code {result.exit_code}) for run {self.run_id}: {why}"
        retryable = result.failure.retryable if result.failure else result.exit_code != USER_ERROR
        if not retryable:
            raise AirflowFailException(message)
        raise AirflowException(message)


class ShardPlanOperator(_LaunchingOperator):
    """Returns `[0, ..., data.shards - 1]` from the spec: what the sharded stage tasks are
    mapped over. Runs in the Airflow worker (reads the spec; launches nothing)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "plan_shards")
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[int]:
        return list(range(self._load_spec().data.shards))


class PipelineRunOperator(_LaunchingOperator):
    """Opens (`start`) or closes (`finish`) the pipeline run: spec snapshot and the parent
    MLflow run. `finish` marks the run FAILED when any upstream task failed. `run_params`
    (templated) are the run's parameters the stages read, e.g. the flywheel's window."""

    template_fields: Sequence[str] = ("spec_path", "run_id", "run_params")

    def __init__(self, *, action: str, run_params: dict[str, str] | None = None, **kwargs: Any) -> None:
        if action not in ("start", "finish"):
            raise ValueError(f"action must be 'start' or 'finish', got {action!r}")
        kwargs.setdefault("task_id", f"run_{action}")
        super().__init__(**kwargs)
        self.action = action
        self.run_params = run_params

    def execute(self, context: Context) -> dict[str, Any]:
        spec = self._load_spec()
        status = None
        if self.action == "finish":
            ti = context["ti"]
            failed = ti.get_ti_count(
                dag_id=ti.dag_id, run_ids=[ti.run_id], states=["failed", "upstream_failed"]
            )
            status = "FAILED" if failed else "FINISHED"
        run_params = {k: str(v) for k, v in (self.run_params or {}).items()} if self.action == "start" else None
        request = run_control_request(spec, self.spec_path, self.action, self.run_id, status, run_params)
        result = self._launch(context, spec, request)
        if result.exit_code != 0:
            why = result.failure.message if result.failure else "see the log above"
            raise AirflowException(f"`domainllm run {self.action}` failed for run {self.run_id}: {why}")
        return {"run_id": self.run_id, "action": self.action, "status": status}
