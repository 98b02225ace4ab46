"""A fake Kubernetes API server for the launcher's tests: the HTTP endpoints the launcher and
the provider's PodManager call (pods, logs with chunked follow, events, jobs, services,
custom objects), objects stored as the API's JSON, and a scripted "kubelet" per pod that
plays a scenario: scheduled or not, image pulled or not, running with log lines, exiting,
OOMKilled, evicted, preempted. A small Job controller makes an Indexed Job's pods and fails
the whole job when one fails (backoffLimit 0); a suspended Job waits until `admit` (Kueue)
resumes it. Custom objects are stored, listed, labelled and deleted with what they own, and
JobSets and TrainJobs run through tiny controllers of their own (fake_job_apis.py). No
cluster runs here: this is the HTTP boundary the real API server answers at."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.operators.launchers import fake_job_apis

Kubelet = Callable[["FakeCluster", str], None]
"""Plays one pod's life, given the cluster and the pod's name (runs in its own thread)."""


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
    return True


def rbac_request(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str, str]:
    """(API group, resource, verb) of a request, as the API server's authorizer sees it."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":  # /api/v1/namespaces/ns/<resource>[/name[/sub]]
        group, rest = "", parts[4:]
    else:  # /apis/<group>/<version>/namespaces/ns/<resource>[/name[/sub]]
        group, rest = parts[1], parts[5:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 and rest[2] != "status" else "")
    named = len(rest) > 1
    verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}.get(method)
    if verb is None:
        verb = "watch" if (query.get("watch") or [""])[0].lower() == "true" else ("get" if named else "list")
    return group, resource, verb


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}


class FakeCluster:
    """State plus the scenario helpers a kubelet script calls."""

    def __init__(self, kubelet: Kubelet, namespace: str = "domainllm") -> None:
        self.ns = namespace
        self.kubelet = kubelet
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.pods: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.custom: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.logs: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorized: set[tuple[str, str, str]] = set()
        """(group, resource, verb) of every request: what RBAC must allow."""
        self.deleted: list[tuple[str, str, dict[str, list[str]]]] = []
        self.created: list[tuple[str, str]] = []
        self.threads: list[threading.Thread] = []
        self.faults: list[dict[str, Any]] = []
        """Answers to give instead of the real one: {"method", "path" (a regex), "status" (0: drop
        the connection), "times"}, e.g. an API server being upgraded."""
        self.faulted: list[tuple[str, str, int]] = []
        self.log_cuts = 0
        """How many followed log streams to cut mid-stream (the connection drops after a line,
        no end chunk), as a load balancer or an API server restart does to a long watch."""

    def fault(self, method: str, path: str, status: int, times: int) -> None:
        with self.lock:
            self.faults.append({"method": method, "path": path, "status": status, "times": times})

    # -- what a kubelet script does -------------------------------------------------------------

    def _update(self, name: str, fn: Callable[[dict[str, Any]], None]) -> bool:
        with self.changed:
            pod = self.pods.get(name)
            if pod is None:
                return False
            fn(pod)
            pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1)
            self.changed.notify_all()
        self._job_controller()
        return True

    def alive(self, name: str) -> bool:
        with self.lock:
            pod = self.pods.get(name)
            return pod is not None and "deletionTimestamp" not in pod["metadata"]

    def event(self, name: str, reason: str, message: str, kind: str = "Normal") -> None:
        with self.changed:
            self.events.append({"metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": self.ns,
                                             "uid": uuid.uuid4().hex},
                                "involvedObject": {"kind": "Pod", "name": name, "namespace": self.ns},
                                "reason": reason, "message": message, "type": kind, "lastTimestamp": now()})  # fmt: skip

    def condition(self, name: str, type_: str, status: str, reason: str = "", message: str = "") -> None:
        def fn(pod: dict[str, Any]) -> None:
            conds = [c for c in pod["status"].setdefault("conditions", []) if c["type"] != type_]
            conds.append({"type": type_, "status": status, "reason": reason or None, "message": message or None,
                          "lastTransitionTime": now()})  # fmt: skip
            pod["status"]["conditions"] = conds

        self._update(name, fn)

    def unschedulable(self, name: str, message: str) -> None:
        self.condition(name, "PodScheduled", "False", "Unschedulable", message)
        self.event(name, "FailedScheduling", message, "Warning")

    def schedule(self, name: str, node: str = "gpu-node-1") -> None:
        self._update(name, lambda pod: pod["spec"].__setitem__("nodeName", node))
        self.condition(name, "PodScheduled", "True")
        self.event(name, "Scheduled", f"Successfully assigned {self.ns}/{name} to {node}")

    def _container_status(self, pod: dict[str, Any], state: dict[str, Any]) -> None:
        image = pod["spec"]["containers"][0]["image"]
        pod["status"]["containerStatuses"] = [{"name": pod["spec"]["containers"][0].get("name", "base"), "image": image, "imageID": "", "ready": "running" in state,
                                               "restartCount": 0, "state": state}]  # fmt: skip

    def waiting(self, name: str, reason: str, message: str) -> None:
        self._update(name, lambda pod: self._container_status(pod, {"waiting": {"reason": reason, "message": message}}))
        self.event(name, reason if reason != "ErrImagePull" else "Failed", message, "Warning")

    def start(self, name: str) -> None:
        def fn(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = "Running"
            pod["status"]["startTime"] = now()
            self._container_status(pod, {"running": {"startedAt": now()}})

        self._update(name, fn)
        self.event(name, "Started", "Started container base")

    def log(self, name: str, *lines: str) -> None:
        with self.changed:
            self.logs.setdefault(name, []).extend(f"{_log_time()} {line}" for line in lines)
            self.changed.notify_all()

    def exit(self, name: str, code: int, container_reason: str | None = None, phase: str | None = None, **status: Any) -> None:
        def fn(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = phase or ("Succeeded" if code == 0 else "Failed")
            pod["status"].update(status)
            self._container_status(pod, {"terminated": {"exitCode": code,
                                                        "reason": container_reason or ("Completed" if code == 0 else "Error"),
                                                        "startedAt": now(), "finishedAt": now()}})  # fmt: skip

        self._update(name, fn)

    def wait_deleted(self, name: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive(name):
                return True
            time.sleep(0.02)
        return False

    # -- the API ------------------------------------------------------------------------------------

    def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        pod = copy.deepcopy(body)
        meta = pod.setdefault("metadata", {})
        with self.changed:
            if meta["name"] in self.pods:
                raise KeyError(meta["name"])
            meta.update(namespace=self.ns, uid=uuid.uuid4().hex, creationTimestamp=now(), resourceVersion="1")
            pod["status"] = {"phase": "Pending", "conditions": []}
            self.pods[meta["name"]] = pod
            self.created.append(("pod", meta["name"]))
        thread = threading.Thread(target=self.kubelet, args=(self, meta["name"]), daemon=True)
        self.threads.append(thread)
        thread.start()
        return pod

    def delete_pod(self, name: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        with self.changed:
            pod = self.pods.get(name)
            if pod is None:
                return None
            self.deleted.append(("pod", name, query))
            pod["metadata"]["deletionTimestamp"] = now()
            running = pod["status"].get("phase") in ("Pending", "Running")
            self.changed.notify_all()
        if running:  # the kubelet stops it (SIGTERM -> exit 143)
            self.exit(name, 143, "Error", phase="Failed")
        with self.changed:
            self.pods.pop(name, None)
            self.changed.notify_all()
        self._job_controller()
        return pod

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(body)
        meta = job["metadata"]
        with self.changed:
            meta.update(namespace=self.ns, uid=uuid.uuid4().hex, creationTimestamp=now(), resourceVersion="1")
            job["status"] = {"active": 0}
            if job["spec"].get("suspend"):  # as the Job controller marks it (Kueue admits it later)
                job["status"]["conditions"] = [{"type": "Suspended", "status": "True", "reason": "JobSuspended",
                                                "message": "Job suspended", "lastTransitionTime": now()}]  # fmt: skip
            self.jobs[meta["name"]] = job
            self.created.append(("job", meta["name"]))
        if not job["spec"].get("suspend"):
            self._job_pods(job)
        return job

    def _job_pods(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        for i in range(job["spec"]["completions"]):
            template = copy.deepcopy(job["spec"]["template"])
            tmeta = template["metadata"]
            tmeta["name"] = f"{name}-{i}-{uuid.uuid4().hex[:5]}"
            tmeta.setdefault("labels", {}).update({"batch.kubernetes.io/job-name": name, "job-name": name,
                                                   "batch.kubernetes.io/job-completion-index": str(i)})  # fmt: skip
            tmeta.setdefault("annotations", {})["batch.kubernetes.io/job-completion-index"] = str(i)
            template["spec"]["hostname"] = f"{name}-{i}"
            self.create_pod({"apiVersion": "v1", "kind": "Pod", **template})

    def admit(self, name: str, plural: str = "jobs") -> None:
        """Kueue admits a suspended job (or JobSet, TrainJob: `plural`): it is resumed, and the
        Job controller makes its pods."""
        if plural != "jobs":
            return fake_job_apis.admit(self, plural, name)
        with self.changed:
            job = self.jobs[name]
            assert job["spec"].get("suspend"), f"job {name} is not suspended"
            job["spec"]["suspend"] = False
            job["status"]["conditions"] = [c for c in job["status"].get("conditions", []) if c["type"] != "Suspended"] + [
                {"type": "Suspended", "status": "False", "reason": "JobResumed", "message": "Job resumed",
                 "lastTransitionTime": now()}]  # fmt: skip
            self.changed.notify_all()
        self._job_pods(job)

    def delete_job(self, name: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        with self.changed:
            job = self.jobs.pop(name, None)
            if job is None:
                return None
            self.deleted.append(("job", name, query))
            pods = [n for n, p in self.pods.items() if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name]
        for pod in pods:
            self.delete_pod(pod, {})
        with self.changed:  # owner references: the Service and PodGroup go with the Job
            for store in (self.services, self.custom):
                for key in [k for k, o in store.items()
                            if any(ref.get("uid") == job["metadata"]["uid"] for ref in o["metadata"].get("ownerReferences", []))]:
                    store.pop(key)  # fmt: skip
        return job

    def _job_controller(self) -> None:
        """Indexed Job, backoffLimit 0: one failed pod fails the job (and its running pods
        are stopped); every pod succeeded completes it."""
        to_stop = []
        with self.changed:
            for name, job in self.jobs.items():
                pods = [p for p in self.pods.values() if p["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name]
                phases = [p["status"].get("phase") for p in pods]
                conds = job["status"].setdefault("conditions", [])
                if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conds):
                    continue
                if "Failed" in phases:
                    conds.append({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                  "message": "Job has reached the specified backoff limit"})  # fmt: skip
                    to_stop += [p["metadata"]["name"] for p in pods if p["status"].get("phase") in ("Pending", "Running")]
                elif pods and len(pods) == job["spec"]["completions"] and all(ph == "Succeeded" for ph in phases):
                    conds.append({"type": "Complete", "status": "True"})
                job["status"]["active"] = phases.count("Running")
            self.changed.notify_all()
        fake_job_apis.reconcile(self)
        for pod in to_stop:
            if self.alive(pod):
                self.exit(pod, 143, "Error", phase="Failed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster: FakeCluster

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        c = self.cluster
        c.requests.append((method, url.path))
        c.authorized.add(rbac_request(method, url.path, query))
        with c.lock:
            fault = next((f for f in c.faults if f["times"] > 0 and f["method"] == method and re.fullmatch(f["path"], url.path)), None)
            if fault is not None:
                fault["times"] -= 1
                c.faulted.append((method, url.path, fault["status"]))
        if fault is not None:
            if not fault["status"]:  # the connection drops before an answer
                self.close_connection = True
                return None
            reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(fault["status"], "Error")
            return self._send(fault["status"], _status(fault["status"], reason, "injected"), {"Retry-After": "0"} if fault["status"] == 429 else None)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(pods|services|events)(?:/([^/]+))?(?:/(log))?", url.path)
        b = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?(?:/status)?", url.path)
        x = re.fullmatch(r"/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?", url.path)
        if m:
            _, kind, name, sub = m.groups()
            return self._core(method, kind, name, sub, query)
        if b:
            return self._jobs(method, b.group(2), query)
        if x:
            return self._custom(method, x.group(4), x.group(5), query)
        self._send(404, _status(404, "NotFound", f"no route {method} {url.path}"))

    def _custom(self, method: str, plural: str, name: str | None, query: dict[str, list[str]]) -> None:
        c = self.cluster
        if method == "GET" and name is None:
            selector = (query.get("labelSelector") or [""])[0]
            with c.lock:
                items = [copy.deepcopy(o) for k, o in c.custom.items()
                         if k.split("/", 1)[0] == plural and _matches(o["metadata"].get("labels") or {}, selector)]  # fmt: skip
            return self._send(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
        if method == "POST":
            body = self._body()
            try:
                return self._send(201, fake_job_apis.create(c, plural, body))
            except KeyError:
                return self._send(409, _status(409, "AlreadyExists", f"{plural} {body['metadata']['name']!r} already exists"))
        with c.lock:
            obj = copy.deepcopy(c.custom.get(f"{plural}/{name}"))
        if obj is None:
            return self._send(404, _status(404, "NotFound", f"{plural} {name!r} not found"))
        if method == "GET":
            return self._send(200, obj)
        if method == "PATCH":
            return self._send(200, fake_job_apis.label(c, plural, name, self._body()["metadata"]["labels"]))  # type: ignore[arg-type]
        if method == "DELETE":
            self._body()
            fake_job_apis.delete(c, plural, name, query)  # type: ignore[arg-type]
            return self._send(200, obj)
        self._send(405, _status(405, "MethodNotAllowed", method))

    def _core(self, method: str, kind: str, name: str | None, sub: str | None, query: dict[str, list[str]]) -> None:
        c = self.cluster
        selector = (query.get("labelSelector") or [""])[0]
        if kind == "events":
            field = (query.get("fieldSelector") or [""])[0]
            target = field.split("=", 1)[1] if "=" in field else None
            with c.lock:
                items = [e for e in c.events if target is None or e["involvedObject"]["name"] == target]
            return self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})
        store = c.pods if kind == "pods" else c.services
        if method == "GET" and name is None:
            with c.lock:
                items = [copy.deepcopy(o) for o in store.values() if _matches(o["metadata"].get("labels") or {}, selector)]
            return self._send(200, {"kind": "PodList" if kind == "pods" else "ServiceList", "apiVersion": "v1",
                                    "metadata": {}, "items": items})  # fmt: skip
        if method == "POST":
            body = self._body()
            if kind == "pods":
                try:
                    return self._send(201, c.create_pod(body))
                except KeyError:
                    return self._send(409, _status(409, "AlreadyExists", f"pods {body['metadata']['name']!r} already exists"))
            with c.lock:
                body["metadata"].update(uid=uuid.uuid4().hex, creationTimestamp=now(), namespace=c.ns)
                c.services[body["metadata"]["name"]] = body
                c.created.append(("service", body["metadata"]["name"]))
            return self._send(201, body)
        if sub == "log":
            return self._log(name, query)
        with c.lock:
            obj = copy.deepcopy(store.get(name)) if name else None
        if obj is None:
            return self._send(404, _status(404, "NotFound", f"{kind} {name!r} not found"))
        if method == "GET":
            return self._send(200, obj)
        if method == "PATCH":
            patch = self._body()
            c._update(name, lambda pod: pod["metadata"].setdefault("labels", {}).update(patch["metadata"]["labels"]))
            return self._send(200, c.pods[name])
        if method == "DELETE":
            self._body()
            if kind == "pods":
                c.delete_pod(name, query)
            else:
                with c.lock:
                    c.services.pop(name, None)
                    c.deleted.append(("service", name, query))
            return self._send(200, obj)
        self._send(405, _status(405, "MethodNotAllowed", method))

    def _jobs(self, method: str, name: str | None, query: dict[str, list[str]]) -> None:
        c = self.cluster
        if method == "GET" and name is None:
            selector = (query.get("labelSelector") or [""])[0]
            with c.lock:
                items = [copy.deepcopy(j) for j in c.jobs.values() if _matches(j["metadata"].get("labels") or {}, selector)]
            return self._send(200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items})
        if method == "POST":
            return self._send(201, c.create_job(self._body()))
        with c.lock:
            job = copy.deepcopy(c.jobs.get(name))
        if job is None:
            return self._send(404, _status(404, "NotFound", f"jobs {name!r} not found"))
        if method == "GET":
            return self._send(200, job)
        if method == "PATCH":
            patch = self._body()
            with c.lock:
                c.jobs[name]["metadata"].setdefault("labels", {}).update(patch["metadata"]["labels"])
            return self._send(200, c.jobs[name])
        if method == "DELETE":
            self._body()
            c.delete_job(name, query)
            return self._send(200, job)
        self._send(405, _status(405, "MethodNotAllowed", method))

    def _log(self, name: str, query: dict[str, list[str]]) -> None:
        """Chunked, as the API server streams `follow=true`: every line so far, then new ones
        until the container ends."""
        c = self.cluster
        follow = (query.get("follow") or ["false"])[0].lower() == "true"
        tail = int((query.get("tailLines") or ["0"])[0])
        since = int((query.get("sinceSeconds") or ["0"])[0])
        stamped = (query.get("timestamps") or ["false"])[0].lower() == "true"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        with c.lock:
            if tail:
                sent = max(0, len(c.logs.get(name, [])) - tail)
            if since:  # lines from the last `since` seconds (the client resumes a broken stream with it)
                cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                sent = sum(1 for line in c.logs.get(name, []) if line.split(" ", 1)[0] < cutoff)
        while True:
            with c.changed:
                lines = c.logs.get(name, [])[sent:]
                pod = c.pods.get(name)
                ended = pod is None or "terminated" in str(pod["status"].get("containerStatuses"))
                if not lines and follow and not ended:
                    c.changed.wait(0.2)
                    continue
            for line in lines:
                data = ((line if stamped else line.split(" ", 1)[1]) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            sent += len(lines)
            if lines and follow and not ended:
                with c.lock:
                    cut, c.log_cuts = c.log_cuts > 0, max(0, c.log_cuts - 1)
                if cut:
                    self.close_connection = True
                    return
            if not follow or (ended and not lines):
                break
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._route("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")


class FakeApiServer:
    def __init__(self, cluster: FakeCluster) -> None:
        handler = type("Handler", (_Handler,), {"cluster": cluster})
        self.cluster = cluster
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u", "namespace": self.cluster.ns}}]}  # fmt: skip


def local_kubelet(python: str, base_env: dict[str, str]) -> Kubelet:
    """A kubelet that really runs the pod: its container's command as a local process with the
    pod's environment (`domainllm` is this checkout's), its output as the container log, its
    exit code as the container's. The pod's volumes must be local paths (tests set
    `runtime.kubernetes.home.mount_path` and friends to folders of their own)."""
    import subprocess

    def play(cluster: FakeCluster, name: str) -> None:
        with cluster.lock:
            pod = copy.deepcopy(cluster.pods[name])
        main = pod["spec"]["containers"][0]
        env = dict(base_env)
        for var in main.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "fieldRef" in var.get("valueFrom", {}):
                env[var["name"]] = {"metadata.name": name, "metadata.namespace": cluster.ns}.get(
                    var["valueFrom"]["fieldRef"]["fieldPath"], "")
        command = list(main["command"])
        if command[0] == "domainllm":
            command = [python, "-m", "domainllm", *command[1:]]
        cluster.schedule(name, "local-node")
        cluster.start(name)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            cluster.log(name, line.rstrip("\n"))
        cluster.exit(name, proc.wait())

    return play
