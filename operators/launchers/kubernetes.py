"""Kubernetes launcher: a stage as a pod, a multi-node training stage as an Indexed Job plus a
headless Service, a JobSet or a Kubeflow Trainer TrainJob (`runtime.kubernetes.training.backend`,
`domainllm.k8s.workloads`), through the cncf.kubernetes provider's hook (connection, clients)
and its PodManager (log following).

The objects come from `domainllm.k8s` (the same code `domainllm k8s render` uses). An attempt
first looks for a live pod or job of the same pipeline, run and step (labels) and reattaches
to it instead of starting a duplicate (a restarted scheduler or worker). It then waits for the
pods to start, failing early with a clear reason for what cannot resolve (an image that cannot
be pulled, a missing Secret) and after `schedule_timeout_s` for what the cluster cannot place
(naming the missing resource); streams the container's (rank 0's) log into the task log;
reads the end state (exit code, OOMKilled, evicted, preempted, which rank failed) and cleans
up per `runtime.kubernetes.cleanup`. A task kill deletes everything the attempt created.

That is the blocking path (`launch`). With `runtime.kubernetes.deferrable` (the default) the
operator calls its pieces instead: `start` (find or create), `trigger` (what waits in
Airflow's triggerer: `domainllm_operators.triggers`) and, once the task resumes, `finish`
(verdict, log, clean-up). Both read the same verdicts from the same `_Watch`.

The API server may answer a read with 429 or a 5xx, or drop the connection, while it is
upgraded or overloaded: reads (and deletes, which are idempotent) are retried with backoff
(`READ_RETRIES`, about a minute in all, longer when a 429 says so) before the attempt gives up
on what it runs; one bad answer never deletes a running training job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from domainllm.k8s.api import TRANSIENT, retried
from domainllm.k8s.jobs import INDEX_ANNOTATION, MULTUS_ANNOTATION, training_objects
from domainllm.k8s.names import random_suffix
from domainllm.k8s.pod import CONTAINER, LABEL_CHECKED, PodTarget, identity_labels, stage_pod
from domainllm.k8s.render import is_multi_node, launch_name
from domainllm.k8s.status import (
    Failure,
    PodState,
    job_failure,
    job_suspended,
    pod_state,
    rank_name,
    suspended_since,
)
from domainllm.k8s.workloads import BY_BACKEND, Workload, by_kind, is_rank
from domainllm.launch import LaunchRequest
from domainllm.spec.kubernetes import KubernetesConfig
from domainllm_operators.launchers.base import LaunchResult, OnHandle

FAILED_RANK_LOG_LINES = 40
RESUMED_LOG_LINES = 10_000
"""A resumed task puts this many of the container's last lines in the task log (it cannot
follow a log that has ended; a long training log is in the stage's MLflow run and metrics)."""
NEVER_RAN = ("Unschedulable", "ImagePull", "Config", "StartTimeout", "AdmissionTimeout")
"""Verdicts of what never started: deleted whatever `cleanup` says (nothing in them to inspect)."""
READ_RETRIES = 6
BACKOFF_S = 1.0
"""The first retry's wait; doubled each time up to 30 s (a 429's Retry-After wins when longer)."""

_log = logging.getLogger(__name__)


def _selector(labels: dict[str, str]) -> str:
    return ",".join([*(f"{k}={v}" for k, v in sorted(labels.items())), f"{LABEL_CHECKED}!=true"])


def _created(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def hook(connection: str | None) -> Any:
    """The provider's hook for `runtime.kubernetes.connection` (None: in-cluster or kubeconfig)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=connection)


def transient(exc: BaseException) -> bool:
    """An API error that waiting can cure (what `_Api._retried` retries)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


@dataclass(frozen=True)
class WaitLimits:
    """How long a pod or job may wait before waiting cannot help: `_Watch`'s verdicts. Plain
    numbers, so the trigger carries them in its kwargs."""

    schedule_timeout_s: float
    startup_timeout_s: float
    admission_timeout_s: float
    queue: str | None = None

    @classmethod
    def of(cls, k8s: KubernetesConfig) -> WaitLimits:
        return cls(k8s.schedule_timeout_s, k8s.startup_timeout_s, k8s.training.admission_timeout_s, k8s.training.queue)


class _Api:
    """The few API calls we make, answering plain JSON dicts (as the API server sends them)."""

    def __init__(self, hook: Any, namespace: str) -> None:
        self.hook = hook
        self.ns = namespace

    @property
    def core(self) -> Any:
        return self.hook.core_v1_client

    @property
    def batch(self) -> Any:
        return self.hook.batch_v1_client

    @property
    def custom(self) -> Any:
        return self.hook.custom_object_client

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return json.loads(resp.data)

    @staticmethod
    def _retried(call: Any, *args: Any, **kwargs: Any) -> Any:
        """`call(...)`, again after a transient failure (429, 5xx, a dropped connection)."""
        return retried(call, *args, _retries=READ_RETRIES, _backoff_s=BACKOFF_S, **kwargs)

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        return self._json(self._retried(self.core.list_namespaced_pod, self.ns, label_selector=selector, _preload_content=False))["items"]

    def read_pod(self, name: str) -> dict[str, Any]:
        return self._json(self._retried(self.core.read_namespaced_pod, name, self.ns, _preload_content=False))

    def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.core.create_namespaced_pod(self.ns, body, _preload_content=False))

    def delete_pod(self, name: str, grace: int) -> None:
        self._ignore_404(self.core.delete_namespaced_pod, name, self.ns, grace_period_seconds=grace)

    def label_pod(self, name: str, labels: dict[str, str]) -> None:
        self._ignore_404(self.core.patch_namespaced_pod, name, self.ns, {"metadata": {"labels": labels}})

    def events(self, name: str) -> list[dict[str, Any]]:
        return self._json(self._retried(self.core.list_namespaced_event, self.ns, field_selector=f"involvedObject.name={name}",
                                        _preload_content=False))["items"]  # fmt: skip

    def pod_log_tail(self, name: str, lines: int, container: str = CONTAINER) -> str:
        resp = self._retried(self.core.read_namespaced_pod_log, name, self.ns, container=container, tail_lines=lines, _preload_content=False)
        return resp.data.decode("utf-8", "replace")

    # multi-node workloads: a batch/v1 Job, or a JobSet or TrainJob through the custom objects API

    def _on(self, w: Workload, verb: str) -> tuple[Any, dict[str, Any]]:
        """The client method for `verb` on `w`'s kind and the keyword arguments that place it."""
        if w.custom:
            return getattr(self.custom, f"{verb}_namespaced_custom_object"), {
                "group": w.group, "version": w.version, "namespace": self.ns, "plural": w.plural}  # fmt: skip
        return getattr(self.batch, f"{'read' if verb == 'get' else verb}_namespaced_job"), {"namespace": self.ns}

    def list_workloads(self, w: Workload, selector: str) -> list[dict[str, Any]]:
        call, where = self._on(w, "list")
        return self._json(self._retried(call, **where, label_selector=selector, _preload_content=False))["items"]

    def read_workload(self, w: Workload, name: str) -> dict[str, Any]:
        call, where = self._on(w, "get")
        return self._json(self._retried(call, **where, name=name, _preload_content=False))

    def create_workload(self, w: Workload, body: dict[str, Any]) -> dict[str, Any]:
        call, where = self._on(w, "create")
        return self._json(call(**where, body=body, _preload_content=False))

    def delete_workload(self, w: Workload, name: str, grace: int) -> None:
        # Foreground: it goes once what it owns is gone (the API's default for Jobs orphans their
        # pods); a JobSet's Jobs, pods and Service, a TrainJob's JobSet, are owned by it
        call, where = self._on(w, "delete")
        self._ignore_404(call, **where, name=name, grace_period_seconds=grace, propagation_policy="Foreground")

    def label_workload(self, w: Workload, name: str, labels: dict[str, str]) -> None:
        call, where = self._on(w, "patch")
        self._ignore_404(call, **where, name=name, body={"metadata": {"labels": labels}})

    def create_service(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.core.create_namespaced_service(self.ns, body, _preload_content=False))

    def delete_service(self, name: str) -> None:
        self._ignore_404(self.core.delete_namespaced_service, name, self.ns)

    @classmethod
    def _ignore_404(cls, call: Any, *args: Any, **kwargs: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            cls._retried(call, *args, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise


def delete_launched(api: _Api, kind: str, name: str, grace: int) -> None:
    """Deletes a pod, a job with its pods and Service, or a JobSet or TrainJob with what it
    owns (a 404 is fine: it is gone)."""
    if kind == "pod":
        api.delete_pod(name, grace)
        return
    api.delete_workload(by_kind(kind), name, grace)
    if kind == "job":  # we made its Service (the JobSet controller makes a JobSet's, owned by it)
        api.delete_service(name)


def label_launched(api: _Api, kind: str, name: str, labels: dict[str, str]) -> None:
    if kind == "pod":
        api.label_pod(name, labels)
    else:
        api.label_workload(by_kind(kind), name, labels)


class KubernetesLauncher:
    def __init__(self, target: PodTarget, hook: Any = None) -> None:
        self.target = target
        self.k8s = target.k8s
        self._hook = hook
        self._lock = threading.Lock()
        self._current: tuple[str, str] | None = None
        """(kind, name) of what this attempt runs: `pod`, `job`, `jobset` or `trainjob`."""
        self._killed = threading.Event()
        self._grace = 30

    @property
    def deferrable(self) -> bool:
        """Whether the operator hands the wait to the triggerer (`runtime.kubernetes.deferrable`)."""
        return self.k8s.deferrable

    @property
    def api(self) -> _Api:
        if self._hook is None:
            self._hook = hook(self.k8s.connection)
        return _Api(self._hook, self.k8s.namespace)

    # -- the attempt -------------------------------------------------------------------------------

    def start(self, request: LaunchRequest, log: logging.Logger, on_handle: OnHandle | None = None) -> dict[str, Any]:
        """Creates the pod or multi-node job that runs the request, or finds the one an earlier
        attempt started (reattach); returns its handle (kind, name, namespace, attempt id)."""
        kind = BY_BACKEND[self.k8s.training.backend].kind if is_multi_node(request) else "pod"
        name, attempt_id, reattached = self._find_or_create(self.api, request, log, kind)
        with self._lock:
            self._current = (kind, name)
        if self._killed.is_set():  # killed while it was being created
            self.kill()
        handle = {"launcher": "kubernetes", "kind": kind, "name": name, "namespace": self.k8s.namespace,
                  "reattached": reattached, "attempt_id": attempt_id}  # fmt: skip
        if on_handle is not None:
            on_handle(handle)
        return handle

    def launch(self, request: LaunchRequest, log: logging.Logger, on_handle: OnHandle | None = None) -> LaunchResult:
        """The blocking path: start, wait in this process (the log followed live), finish."""
        t0 = time.monotonic()
        handle = self.start(request, log, on_handle)
        kind, name = handle["kind"], handle["name"]
        api = self.api
        try:
            failure = self._run_pod(api, name, log) if kind == "pod" else self._run_job(api, by_kind(kind), request, name, log)
        except Exception:
            if not self._killed.is_set():  # what we cannot follow must not run on unwatched
                self._cleanup(api, kind, name, None, log, abandon=True)
                raise
            failure = None  # killed: what we read may be gone already
        if self._killed.is_set():
            failure = Failure("Killed", f"{kind} {name} was deleted: the task was stopped", True)
        else:
            self._cleanup(api, kind, name, failure, log)
        return self._result(kind, name, failure, time.monotonic() - t0, handle["attempt_id"], log)

    def trigger(self, handle: dict[str, Any], request: LaunchRequest, deadline: float | None) -> Any:
        """What waits for the handle's pod or job in the triggerer, from plain values only (no
        secret: the connection by its id). `deadline` (epoch seconds): the task's execution_timeout."""
        from domainllm_operators.triggers import KubernetesStageTrigger

        return KubernetesStageTrigger(handle=handle, connection=self.k8s.connection, nodes=request.resources.nodes,
                                      poll_interval_s=self.k8s.poll_interval_s, limits=asdict(WaitLimits.of(self.k8s)),
                                      since=time.time(), deadline=deadline, grace_period_s=int(request.grace_period_s))  # fmt: skip

    def finish(self, handle: dict[str, Any], event: dict[str, Any], log: logging.Logger, duration_s: float,
               grace_s: int = 30) -> LaunchResult:  # fmt: skip
        """After the trigger's event, in the resumed task (any worker, maybe a fresh process): the
        verdict, the container's log, the clean-up, as `launch` ends."""
        kind, name = handle["kind"], handle["name"]
        with self._lock:
            self._current, self._grace = (kind, name), grace_s
        api = self.api
        status = event.get("status")
        abandon = False
        if status == "ended":
            failure = self._ended(api, kind, name, log)
        elif status == "not_started":
            failure = Failure(**event["failure"])
        elif status == "gone":
            failure = Failure("Deleted", f"{kind} {name} was deleted while the task waited for it (not by this task: a "
                                         f"person, or a controller); a retry starts it again", True)  # fmt: skip
        elif status == "timeout":
            failure, abandon = Failure("Timeout", f"{kind} {name} still ran at the task's execution_timeout", True), True
        else:  # the triggerer could not watch it: nothing would follow it, and nothing must run on unwatched
            failure = Failure("WatchFailed", f"the triggerer could not watch {kind} {name}: {event.get('message', status)} "
                                             f"(its access to the Kubernetes API: connection, service account, RBAC)", False)
            abandon = True
        self._cleanup(api, kind, name, failure, log, abandon=abandon)
        return self._result(kind, name, failure, duration_s, handle.get("attempt_id"), log)

    def _ended(self, api: _Api, kind: str, name: str, log: logging.Logger) -> Failure | None:
        """The end state of what ran, its (rank 0's) log in the task log; failed ranks' tails."""
        from kubernetes.client.exceptions import ApiException

        gone = Failure("Deleted", f"{kind} {name} ended but was deleted before the task read its result; a retry "
                                  f"starts it again", True)  # fmt: skip
        try:
            if kind == "pod":
                state = pod_state(api.read_pod(name))
                self._print_log(api, name, log)
                return state.failure if state.phase == "failed" else None
            w = by_kind(kind)
            job = api.read_workload(w, name)
            pods = api.list_pods(w.pod_selector(name))
        except ApiException as exc:
            if exc.status == 404:
                return gone
            raise
        rank0 = _rank0(pods)
        if rank0 is not None:
            self._print_log(api, rank0["metadata"]["name"], log, "rank 0 ", w.container)
        if w.finished(job) == "succeeded":
            return None
        self._log_failed_ranks(api, pods, log, w.container)
        return job_failure(job, pods, w.container, w.noun)

    def _print_log(self, api: _Api, pod: str, log: logging.Logger, who: str = "", container: str = CONTAINER) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            lines = api.pod_log_tail(pod, RESUMED_LOG_LINES, container).splitlines()
        except ApiException as exc:
            log.warning("the log of %spod %s could not be read: %s %s", who, pod, exc.status, exc.reason)
            return
        if len(lines) >= RESUMED_LOG_LINES:
            log.info("the last %d lines of the %slog of pod %s:", RESUMED_LOG_LINES, who, pod)
        else:
            log.info("the %slog of pod %s:", who, pod)
        for line in lines:
            log.info("%s", line)

    def _result(self, kind: str, name: str, failure: Failure | None, duration: float, attempt_id: str | None,
                log: logging.Logger) -> LaunchResult:  # fmt: skip
        code = 0 if failure is None else (failure.exit_code if failure.exit_code not in (None, 0) else -1)
        if failure is None:
            log.info("%s %s succeeded after %.1fs", kind, name, duration)
        else:
            log.error("%s", failure.message)
        return LaunchResult(exit_code=code, duration_s=duration, handle=f"{kind}/{self.k8s.namespace}/{name}",
                            failure=failure, attempt_id=attempt_id)  # fmt: skip

    def kill(self) -> None:
        """Deletes what this attempt runs (the pod; the job with its pods and Service; the JobSet
        or TrainJob with everything it owns)."""
        self._killed.set()
        with self._lock:
            current = self._current
        if current is None:
            return
        delete_launched(self.api, *current, self._grace)

    # -- finding or creating ------------------------------------------------------------------------

    def _find_or_create(self, api: _Api, request: LaunchRequest, log: logging.Logger, kind: str) -> tuple[str, str | None, bool]:
        self._grace = int(request.grace_period_s)
        selector = _selector(identity_labels(request))
        w = None if kind == "pod" else by_kind(kind)
        found = api.list_pods(selector) if w is None else self._list_workloads(api, w, selector)
        live = []
        for obj in sorted(found, key=_created, reverse=True):
            name = obj["metadata"]["name"]
            failed = pod_state(obj).phase == "failed" if w is None else w.finished(obj) == "failed"
            if failed:  # an earlier attempt's failure: kept for inspection, never reattached to
                log.info("found failed %s %s of an earlier attempt; marking it checked", kind, name)
                label_launched(api, kind, name, {LABEL_CHECKED: "true"})
            else:
                live.append(obj)
        if live:
            obj = live[0]
            name = obj["metadata"]["name"]
            if len(live) > 1:
                log.warning("more than one live %s for %s: %s; following the newest", kind, request.name,
                            [o["metadata"]["name"] for o in live])  # fmt: skip
            log.info("reattaching to %s %s (started by an earlier attempt) instead of starting a duplicate", kind, name)
            return name, (obj["metadata"].get("labels") or {}).get("domainllm/attempt-id"), True
        name = launch_name(request, random_suffix())
        if w is None:
            api.create_pod(stage_pod(request, self.target, name))
            log.info("created pod %s in namespace %s (image %s): %s", name, self.k8s.namespace, request.image_ref,
                     " ".join(request.command))  # fmt: skip
        else:
            self._create_job(api, w, request, name, log)
        return name, request.attempt_id, False

    @staticmethod
    def _list_workloads(api: _Api, w: Workload, selector: str) -> list[dict[str, Any]]:
        """The live and failed objects of this step; a clear error where the cluster lacks the kind."""
        from kubernetes.client.exceptions import ApiException

        try:
            return api.list_workloads(w, selector)
        except ApiException as exc:
            if exc.status == 404 and w.custom:
                raise RuntimeError(w.missing()) from exc
            raise

    def _create_job(self, api: _Api, w: Workload, request: LaunchRequest, name: str, log: logging.Logger) -> None:
        """The job (Job, JobSet or TrainJob) first, then what goes with it (our headless Service
        of a Job, a Volcano PodGroup), owned by it so deleting it removes them too."""
        *extras, body = training_objects(request, self.target, name)
        created = api.create_workload(w, body)
        owner = {"apiVersion": w.api_version, "kind": body["kind"], "name": name, "uid": created["metadata"]["uid"],
                 "blockOwnerDeletion": True}  # fmt: skip
        try:
            for obj in extras:
                obj["metadata"]["ownerReferences"] = [owner]
                if obj["kind"] == "Service":
                    api.create_service(obj)
                else:  # a Volcano PodGroup
                    api.custom.create_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", self.k8s.namespace,
                                                               "podgroups", obj)  # fmt: skip
        except Exception:
            api.delete_workload(w, name, 0)
            raise
        res = request.resources
        network = _template_annotations(body).get(MULTUS_ANNOTATION)
        rendezvous = f"rendezvous {w.rendezvous(name)}:{self.k8s.training.rdzv_port}" if w.kind != "trainjob" else \
            f"runtime {self.k8s.training.trainjob_runtime}, rendezvous {w.rendezvous(name)}"  # fmt: skip
        log.info("created %s %s in namespace %s: %d nodes x %d processes (image %s), %s%s", w.noun, name, self.k8s.namespace,
                 res.nodes, res.processes_per_node(), request.image_ref, rendezvous, f", network {network}" if network else "")  # fmt: skip

    # -- one pod ------------------------------------------------------------------------------------

    def _run_pod(self, api: _Api, name: str, log: logging.Logger) -> Failure | None:
        watch = _Watch(WaitLimits.of(self.k8s), api, log)
        while True:
            state = pod_state(api.read_pod(name))
            watch.events(name)
            if state.phase in ("running", "succeeded", "failed"):
                break
            failure = watch.pending(state)
            if failure is not None:
                return failure
            if self._killed.is_set():
                return None
            self._sleep()
        if state.phase == "running":
            self._follow(api, name, log)
        state = self._until_done(lambda: pod_state(api.read_pod(name)))
        return state.failure if state.phase == "failed" else None

    # -- a multi-node job ---------------------------------------------------------------------------

    def _run_job(self, api: _Api, w: Workload, request: LaunchRequest, name: str, log: logging.Logger) -> Failure | None:
        watch = _Watch(WaitLimits.of(self.k8s), api, log)
        selector = w.pod_selector(name)
        nodes = request.resources.nodes
        while True:
            job = api.read_workload(w, name)
            pods = api.list_pods(selector)
            states = [pod_state(p, w.container) for p in pods]
            for p in pods:
                watch.events(p["metadata"]["name"])
            ranks = [s for p, s in zip(pods, states, strict=True) if is_rank(p)]
            if w.finished(job) or any(s.phase in ("succeeded", "failed") for s in ranks):
                break
            if len(ranks) == nodes and all(s.phase == "running" for s in ranks):
                break
            failure = watch.job_pending(job, states, nodes, w.noun)
            if failure is not None:
                return failure
            if self._killed.is_set():
                return None
            self._sleep()
        rank0 = _rank0(pods)
        if rank0 is not None and pod_state(rank0, w.container).phase == "running":
            log.info("following rank 0 (pod %s); %d ranks running", rank0["metadata"]["name"], nodes)
            self._follow(api, rank0["metadata"]["name"], log, w.container)
        job = self._until_done(lambda: api.read_workload(w, name), done=lambda j: w.finished(j) is not None)
        if w.finished(job) == "succeeded":
            return None
        pods = api.list_pods(selector)
        failure = job_failure(job, pods, w.container, w.noun)
        self._log_failed_ranks(api, pods, log, w.container)
        return failure

    def _log_failed_ranks(self, api: _Api, pods: list[dict[str, Any]], log: logging.Logger, container: str = CONTAINER) -> None:
        from kubernetes.client.exceptions import ApiException

        for pod in pods:
            who = rank_name(pod)
            if who == "rank 0" or pod_state(pod, container).phase != "failed":
                continue
            try:
                tail = api.pod_log_tail(pod["metadata"]["name"], FAILED_RANK_LOG_LINES, container)
            except ApiException:
                continue
            log.error("last %d log lines of %s (pod %s):\n%s", FAILED_RANK_LOG_LINES, who, pod["metadata"]["name"], tail.rstrip())

    # -- waiting, logs and cleanup ------------------------------------------------------------------

    def _sleep(self) -> None:
        self._killed.wait(self.k8s.poll_interval_s)

    def _until_done(self, read: Any, done: Any = None) -> Any:
        """Polls `read()` until `done(obj)` (default: a pod state that ended) or a kill."""
        done = done or (lambda s: s.phase in ("succeeded", "failed"))
        while True:
            obj = read()
            if done(obj) or self._killed.is_set():
                return obj
            self._sleep()

    def _follow(self, api: _Api, name: str, log: logging.Logger, container: str = CONTAINER) -> None:
        """Streams the container's log into the task log until it ends (the provider's
        PodManager: timestamps, reconnects after a cut stream); `_Resumed` drops what a resumed
        stream sends twice."""
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodManager
        from kubernetes.client.exceptions import ApiException

        resumed = _Resumed(log)
        manager = PodManager(kube_client=api.core, callbacks=[resumed])  # type: ignore[list-item]
        manager._log = resumed  # its lines (the container's) go to the task log
        try:
            pod = api.core.read_namespaced_pod(name, self.k8s.namespace)
            manager.fetch_container_logs(pod, container, follow=True, post_termination_timeout=5,
                                         log_formatter=lambda _container, line: line.rstrip("\n"))  # fmt: skip
        except ApiException as exc:
            if exc.status != 404 or not self._killed.is_set():
                log.warning("following the log of pod %s stopped: %s %s", name, exc.status, exc.reason)

    def _cleanup(self, api: _Api, kind: str, name: str, failure: Failure | None, log: logging.Logger,
                 abandon: bool = False) -> None:  # fmt: skip
        policy = self.k8s.cleanup
        never_ran = failure is not None and failure.reason in NEVER_RAN
        delete = abandon or never_ran or policy == "delete" or (policy == "delete_succeeded" and failure is None)
        if delete:
            log.info("deleting %s %s", kind, name)
            delete_launched(api, kind, name, 0)
        else:
            log.info("keeping %s %s (runtime.kubernetes.cleanup: %s)", kind, name, policy)
            label_launched(api, kind, name, {LABEL_CHECKED: "true"})


class _Resumed:
    """The task log behind PodManager, without the lines a resumed stream sends again. After a
    cut stream the provider asks again from the last line's time in whole seconds
    (`sinceSeconds`), so the last second's lines come twice; each line's timestamp reaches
    `progress_callback` just before the line is logged, and a line not newer than the newest
    one logged is dropped. Everything else goes to the logger unchanged."""

    def __init__(self, log: logging.Logger) -> None:
        self._to = log
        self._newest: Any = None
        self._repeat = False

    def progress_callback(self, *, timestamp: Any = None, **_: Any) -> None:
        self._repeat = timestamp is not None and self._newest is not None and timestamp <= self._newest
        if timestamp is not None and not self._repeat:
            self._newest = timestamp

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self._repeat:
            self._to.log(level, msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._to, name)


def _rank0(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Rank 0's pod (the newest, when a controller made it more than once)."""
    zeros = [p for p in pods if is_rank(p) and (p["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION) == "0"]
    return max(zeros, key=_created, default=None)


def _template_annotations(body: dict[str, Any]) -> dict[str, str]:
    """The pod template's annotations of a Job or a JobSet's (first) replicated Job; a TrainJob's
    pod overrides."""
    spec = body["spec"]
    if "podTemplateOverrides" in spec:
        return (spec["podTemplateOverrides"][0].get("metadata") or {}).get("annotations") or {}
    if "replicatedJobs" in spec:
        spec = spec["replicatedJobs"][0]["template"]["spec"]
    return spec["template"]["metadata"].get("annotations") or {}


class _Watch:
    """Waiting on pending pods: progress in the log, events once each, and the timeouts: not
    scheduled after `schedule_timeout_s`, not started `startup_timeout_s` after scheduling (both
    on this watch's clock: a restarted watch waits them anew, never less), not admitted after
    `admission_timeout_s` (on the job's own `Suspended` condition when it has one, else since
    `since`, epoch seconds, or this watch's start)."""

    def __init__(self, limits: WaitLimits, api: _Api, log: logging.Logger, since: float | None = None) -> None:
        self.limits = limits
        self.api = api
        self.log = log
        self.t0 = time.monotonic()
        self.scheduled_at: float | None = None
        self.suspended_at = since
        self.last_note = ""
        self.seen_events: set[str] = set()

    def restart_clock(self) -> None:
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        if text != self.last_note:
            self.log.info("%s", text)
            self.last_note = text

    def events(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            events = self.api.events(name)
        except ApiException:
            return
        for ev in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")):
            key = (ev.get("metadata") or {}).get("uid") or f"{ev.get('reason')}/{ev.get('message')}"
            if key in self.seen_events:
                continue
            self.seen_events.add(key)
            level = logging.WARNING if ev.get("type") == "Warning" else logging.INFO
            self.log.log(level, "event %s/%s: %s", name, ev.get("reason", "?"), ev.get("message", ""))

    def pending(self, state: PodState) -> Failure | None:
        """None while waiting can still help, else why it cannot."""
        limits = self.limits
        if state.failure is not None:
            return state.failure
        self.note(state.waiting)
        if not state.scheduled:
            if time.monotonic() - self.t0 > limits.schedule_timeout_s:
                return Failure("Unschedulable", f"{state.waiting} (still after {limits.schedule_timeout_s:g}s, "
                                                f"runtime.kubernetes.schedule_timeout_s)", True)  # fmt: skip
            return None
        if self.scheduled_at is None:
            self.scheduled_at = time.monotonic()
        if time.monotonic() - self.scheduled_at > limits.startup_timeout_s:
            return Failure("StartTimeout", f"{state.waiting}: not started after {limits.startup_timeout_s:g}s "
                                           f"(runtime.kubernetes.startup_timeout_s)", True)  # fmt: skip
        return None

    def job_pending(self, job: dict[str, Any], states: list[PodState], nodes: int, what: str = "job") -> Failure | None:
        """A job (`what`: job, JobSet, TrainJob) not running on every node yet: None while
        waiting can still help."""
        name = (job.get("metadata") or {}).get("name", "?")
        if job_suspended(job):
            return self.admission(job, what)
        pending = [s for s in states if s.phase == "pending"]
        if len(states) < nodes and not pending:
            pending = [PodState("pending", waiting=f"{what} {name}: {len(states)} of {nodes} pods created")]
        for s in pending:
            failure = self.pending(s)
            if failure is not None:
                return Failure(failure.reason, f"{what} {name}: {failure.message}", failure.retryable, failure.exit_code)
        return None

    def admission(self, job: dict[str, Any], what: str = "job") -> Failure | None:
        """A suspended job (Kueue has not admitted it): None until its admission deadline."""
        name = (job.get("metadata") or {}).get("name", "?")
        queue, limit = self.limits.queue or "?", self.limits.admission_timeout_s
        self.note(f"{what} {name} is suspended, waiting for admission (Kueue queue {queue})")
        self.restart_clock()  # the schedule timeout counts from the admission
        since = suspended_since(job)
        if since is None:
            self.suspended_at = self.suspended_at or time.time()
            since = self.suspended_at
        waited = time.time() - since
        if waited <= limit:
            return None
        return Failure("AdmissionTimeout", f"{what} {name} was not admitted by Kueue queue {queue} within {limit:g}s "
                                           f"(runtime.kubernetes.training.admission_timeout_s; suspended for {waited:.0f}s): "
                                           f"its ClusterQueue has no free quota for the whole gang, or is stopped (kubectl "
                                           f"get workloads, kubectl describe clusterqueue); the suspended job is deleted "
                                           f"and a retry queues a new one", True)  # fmt: skip
