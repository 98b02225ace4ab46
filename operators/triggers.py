"""KubernetesStageTrigger: the wait for a stage's pod or multi-node job (an Indexed Job, a JobSet
or a TrainJob), in Airflow's triggerer.

A StageOperator on the Kubernetes launcher creates (or reattaches to) its pod or job, puts the
handle in XCom and defers to this trigger: no worker slot is held while training runs for
days. The trigger yields one event when waiting is over, and the task resumes on any worker
(`StageOperator.execute_complete`) to read the verdict and the log and clean up.

How it waits: it polls with the launcher's own calls (`_Api`: plain JSON, the launcher's
retries on 429/5xx/dropped connections) in a thread (`asyncio.to_thread`), and judges a pod
that does not start with the launcher's own `_Watch` (unschedulable past `schedule_timeout_s`,
an image that cannot be pulled, a missing Secret, not started after `startup_timeout_s`, a
Kueue job not admitted within `admission_timeout_s`). Not the provider's async hook: that is
a second client with its own calls (RBAC), its own JSON models and its own idea of a verdict;
one GET every `poll_interval_s` per waiting stage is nothing a thread pool notices.

Events (`status`, with the `handle`, `since` and `grace_period_s`): `ended` (the pod or job ended: the resume reads how), `not_started` (with
the `failure`), `gone` (deleted by someone else), `timeout` (the task's execution_timeout,
`deadline`, passed), `error` (the API refuses us: 403, a persistent 401).

Restarts: the kwargs are everything (plain values, no secret: the connection by its id), so a
restarted triggerer re-creates the trigger and reads the state afresh. An API that is down
(429/5xx/no connection, past `_Api`'s retries) never ends the wait: the next poll tries again;
a client that cannot be made (the Airflow connection unreadable while Airflow's API server
restarts) is waited for `CONNECT_GRACE_S`. A job Kueue suspends again (preemption) is waited
for again, admission deadline included.
A stopped task (Airflow 3.3 calls `on_kill` when a person marks the deferred task failed or
success, or clears it) deletes the pod or job; `cleanup`, which runs on every exit of the
trigger, triggerer restarts included, only closes the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from domainllm.k8s.status import job_suspended, pod_state
from domainllm.k8s.workloads import BY_KIND, by_kind, is_rank
from domainllm_operators.launchers.kubernetes import (
    WaitLimits,
    _Api,
    _Watch,
    delete_launched,
    hook,
    transient,
)

AUTH_RETRIES = 3
"""Polls in a row answered 401 (each with a fresh client, which rereads expiring credentials)
before the trigger gives up."""
CONNECT_GRACE_S = 300.0
"""How long the client may fail to be made (the Airflow connection unreadable while Airflow's
API server restarts, a kubeconfig not there yet) before the trigger gives up."""


class _NoClient(Exception):
    """The API client could not be made: the connection or the credentials could not be read."""


MIN_DEFERRAL_S = 10.0
"""No event sooner than this after the task deferred. Airflow 3.3 fails a deferred task whose
resumed attempt is already running when the scheduler drains the executor's "success" of the
attempt that deferred (apache/airflow#72716, #71580; fixes open): seen here with a stage pod
that ended 5 s after its task deferred, while the deferring worker's supervisor took 5.5 s to
exit on a loaded 2-core machine. A stage that ends that fast waits a few seconds more; a
training job never notices."""


class KubernetesStageTrigger(BaseTrigger):
    """Waits in the triggerer for the pod or job of a deferred StageOperator (its `handle`)."""

    def __init__(self, *, handle: dict[str, Any], connection: str | None = None, nodes: int = 1, poll_interval_s: float = 2.0,
                 limits: dict[str, Any], since: float, deadline: float | None = None, grace_period_s: int = 30) -> None:  # fmt: skip
        super().__init__()
        if handle.get("kind") != "pod" and handle.get("kind") not in BY_KIND:
            raise ValueError(f"the handle's kind must be 'pod' or one of {', '.join(map(repr, BY_KIND))} (a multi-node "
                             f"job), got {handle.get('kind')!r}")  # fmt: skip
        self.handle = handle
        """What the operator put in XCom (kind, name, namespace, attempt id): every event carries it
        back, so the resumed task needs nothing else (`airflow dags test` passes only the event)."""
        self.kind: str = handle["kind"]
        self.name: str = handle["name"]
        self.namespace: str = handle["namespace"]
        self.connection = connection
        self.nodes = nodes
        self.poll_interval_s = poll_interval_s
        self.limits = WaitLimits(**limits)
        self.since = since
        """When the task deferred (epoch seconds): a job's admission clock without its own."""
        self.deadline = deadline
        self.grace_period_s = grace_period_s
        self._api: _Api | None = None
        self._watch: _Watch | None = None
        self._started = False
        """Every pod runs: from then on only the end is polled (no events, no start checks)."""
        self._fired = False
        self._auth_failures = 0
        self._down_since: float | None = None
        self._no_client_since: float | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "handle": self.handle, "connection": self.connection, "nodes": self.nodes, "poll_interval_s": self.poll_interval_s,
            "limits": asdict(self.limits), "since": self.since, "deadline": self.deadline, "grace_period_s": self.grace_period_s}  # fmt: skip

    # -- waiting ------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("waiting for %s %s in namespace %s (every %gs%s)", self.kind, self.name, self.namespace,
                      self.poll_interval_s, "" if self.deadline is None else
                      f", until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.deadline))}")  # fmt: skip
        while True:
            if self.deadline is not None and time.time() >= self.deadline:
                event: dict[str, Any] | None = {"status": "timeout"}
            else:
                event = await self._poll_once()
            if event is not None:
                hold = MIN_DEFERRAL_S - (time.time() - self.since)
                if hold > 0:  # Airflow 3.3's stale defer-exit race: see MIN_DEFERRAL_S
                    await asyncio.sleep(hold)
                self._fired = True
                self.log.info("%s %s: %s", self.kind, self.name, event["status"])
                yield TriggerEvent({**event, "handle": self.handle, "since": self.since, "grace_period_s": self.grace_period_s})
                return
            await asyncio.sleep(self.poll_interval_s)

    async def _poll_once(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            event = await asyncio.to_thread(self._poll)
        except _NoClient as exc:
            self._no_client_since = self._no_client_since or time.time()
            if time.time() - self._no_client_since < CONNECT_GRACE_S:
                self.log.warning("no client for the Kubernetes API yet (%s); still waiting, %s %s is left alone", exc,
                                 self.kind, self.name)  # fmt: skip
                return None
            return {"status": "error", "message": f"no client for the Kubernetes API for {CONNECT_GRACE_S:g}s: {exc}"[:500]}
        except Exception as exc:
            if transient(exc):  # past _Api's retries: still nothing to act on; the next poll tries again
                self._down_since = self._down_since or time.time()
                self.log.warning("the Kubernetes API is unavailable (%s) for %.0fs; still waiting, %s %s is left alone",
                                 exc, time.time() - self._down_since, self.kind, self.name)  # fmt: skip
                return None
            if isinstance(exc, ApiException) and exc.status == 401 and self._auth_failures < AUTH_RETRIES:
                self._auth_failures += 1
                self.log.warning("the Kubernetes API answered 401; reconnecting (credentials may have expired)")
                self._api = None
                return None
            what = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else f"{type(exc).__name__}: {exc}"
            return {"status": "error", "message": what[:500]}
        self._down_since = self._no_client_since = None
        self._auth_failures = 0
        return event

    def _client(self) -> _Api:
        if self._api is None:
            try:
                api = _Api(hook(self.connection), self.namespace)
                api.hook.api_client  # noqa: B018 - the connection and the credentials, read now
            except Exception as exc:
                raise _NoClient(f"{type(exc).__name__}: {exc}") from exc
            self._api = api
            if self._watch is None:
                self._watch = _Watch(self.limits, self._api, self.log, since=self.since)
            self._watch.api = self._api  # a new client (after a 401) keeps the clocks and the events seen
        return self._api

    def _poll(self) -> dict[str, Any] | None:
        """One look (in a thread): the event to yield, or None to keep waiting."""
        from kubernetes.client.exceptions import ApiException

        api = self._client()
        try:
            return self._poll_pod(api) if self.kind == "pod" else self._poll_job(api)
        except ApiException as exc:
            if exc.status == 404:
                return {"status": "gone"}
            raise

    def _poll_pod(self, api: _Api) -> dict[str, Any] | None:
        state = pod_state(api.read_pod(self.name))
        if state.phase in ("succeeded", "failed"):
            return {"status": "ended"}
        if self._started:
            return None
        assert self._watch is not None
        self._watch.events(self.name)
        if state.phase == "running":
            self._started = True
            self.log.info("pod %s is running", self.name)
            return None
        return self._not_started(self._watch.pending(state))

    def _poll_job(self, api: _Api) -> dict[str, Any] | None:
        w = by_kind(self.kind)
        job = api.read_workload(w, self.name)
        if w.finished(job):
            return {"status": "ended"}
        if self._started:
            if not job_suspended(job):
                return None
            self._started = False  # its pods are gone: back to waiting for its admission and start
            self.log.warning("%s %s was suspended again (preempted by Kueue?); waiting for its admission again", w.noun,
                             self.name)  # fmt: skip
        assert self._watch is not None
        pods = api.list_pods(w.pod_selector(self.name))
        states = [pod_state(p, w.container) for p in pods]
        for p in pods:
            self._watch.events(p["metadata"]["name"])
        ranks = [s for p, s in zip(pods, states, strict=True) if is_rank(p)]
        if len(ranks) == self.nodes and all(s.phase in ("running", "succeeded", "failed") for s in ranks):
            self._started = True
            self.log.info("%s %s: all %d ranks started", w.noun, self.name, self.nodes)
            return None
        return self._not_started(self._watch.job_pending(job, states, self.nodes, w.noun))

    @staticmethod
    def _not_started(failure: Any) -> dict[str, Any] | None:
        return None if failure is None else {"status": "not_started", "failure": asdict(failure)}

    # -- a stopped task -----------------------------------------------------------------------------

    async def on_kill(self) -> None:
        """A person stopped the deferred task (marked it failed or success, or cleared it): the
        pod or job goes, as a kill of a waiting worker deletes it. Not when the task is still
        deferred (its trigger moved to another triggerer), nor when its state cannot be read:
        a training job is never deleted on a guess."""
        if self._fired:
            return
        what = f"{self.kind} {self.name} in namespace {self.namespace}"
        try:
            state = await self._task_state()
        except Exception as exc:
            self.log.error("the task was stopped, but its state could not be read (%s): %s is left running; delete it "
                           "with kubectl if it should stop", exc, what)  # fmt: skip
            return
        if state == "deferred":
            self.log.info("the task is still deferred (its trigger moved to another triggerer): %s keeps running", what)
            return
        self.log.info("the task was stopped while it waited (now %s): deleting %s", state, what)
        await asyncio.to_thread(lambda: delete_launched(self._client(), self.kind, self.name, self.grace_period_s))

    async def _task_state(self) -> str | None:
        """This task instance's state now, through the triggerer's supervisor."""
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        ti = self.task_instance
        if ti is None:
            raise RuntimeError("no task instance (not running in a triggerer)")
        states = await asyncio.to_thread(RuntimeTaskInstance.get_task_states, dag_id=ti.dag_id, task_ids=[ti.task_id],
                                         run_ids=[ti.run_id], map_index=ti.map_index)  # fmt: skip
        key = f"{ti.task_id}_{ti.map_index}" if ti.map_index >= 0 else ti.task_id
        return states[ti.run_id][key]

    async def cleanup(self) -> None:
        """Every exit (an event, a timeout, a triggerer restart): local resources only."""
        api, self._api = self._api, None
        if api is not None and "api_client" in vars(api.hook):  # made (a cached property): close it, never make one
            api.hook.api_client.close()
