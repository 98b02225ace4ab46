"""The fake API server (fake_k8s.py) grown into a small cluster whose pods are real local
processes, for the serving paths: Deployments whose ReplicaSets make pods that become ready
when their readiness probe answers, Services with EndpointSlices of the ready pods, ConfigMaps
and Secrets (with resourceVersion conflicts), owner references with garbage collection, and a
network: an HTTP proxy that every pod gets in `HTTP_PROXY`, resolving a Service's name
(`<service>.<namespace>.svc.cluster.local:<port>`) to a ready pod and a pod's IP to that pod.

The kubelet (`ProcessKubelet`) runs each pod's container as a local process: its volumes
mapped to local folders (a claim to a folder the test names, a ConfigMap or Secret written
out and, for ConfigMaps, rewritten a little later when the object changes, as the real kubelet
does), mount paths in the command, arguments and environment rewritten to those folders, its
container ports to free local ports (`--port 8000` becomes the local one, `--host 0.0.0.0`
127.0.0.1), `$(VAR)` expanded from its environment, `secretKeyRef`s and `envFrom` resolved,
and a kubeconfig for this server only where the pod mounts its service account token. A pod
whose process exits restarts (restartPolicy Always, counted in restartCount) or ends
(Never); a deleted pod's process is stopped (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.operators.launchers.fake_k8s import FakeApiServer, FakeCluster, _Handler, _matches, _status, now

TEMPLATE_HASH = "pod-template-hash"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conds.get("Ready") == "True" and "deletionTimestamp" not in pod["metadata"]


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


class Cluster(FakeCluster):
    def __init__(self, root: Path, *, claims: dict[str, str], commands: dict[str, list[str]], base_env: dict[str, str],
                 namespace: str = "domainllm", config_map_lag_s: float = 1.0) -> None:  # fmt: skip
        self.kubelet_impl = ProcessKubelet(self, root, claims=claims, commands=commands, base_env=base_env,
                                           config_map_lag_s=config_map_lag_s)  # fmt: skip
        super().__init__(self.kubelet_impl.play, namespace)
        self.deployments: dict[str, dict[str, Any]] = {}
        self.replicasets: dict[str, dict[str, Any]] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, dict[int | str, int]] = {}
        """Pod -> its container ports (by number and by name) -> the local port."""
        self.kubeconfig_path: str | None = None
        self.network = Network(self)
        self._rr = itertools.count()
        self._ips = itertools.count(2)
        self.pod_ips: dict[str, str] = {}

    def assign_ip(self, name: str) -> str:
        n = next(self._ips)
        ip = f"10.244.{n // 250}.{n % 250 + 2}"
        with self.lock:
            self.pod_ips[ip] = name
        self._update(name, lambda pod: pod["status"].__setitem__("podIP", ip))
        return ip

    def dump(self, lines: int = 30) -> str:
        """Every pod's state and last log lines: what a failing test prints."""
        with self.lock:
            out = [f"pod {n}: {p['status'].get('phase')} {p['status'].get('containerStatuses')}\n  "
                   + "\n  ".join(self.logs.get(n, [])[-lines:]) for n, p in self.pods.items()]  # fmt: skip
        return "\n".join(out)

    # -- objects a test (or Helm) applies ---------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Creates a Deployment, Service, ConfigMap or Secret as `kubectl apply` would."""
        kind = obj["kind"]
        if kind == "Deployment":
            return self.create_deployment(obj)
        if kind == "ConfigMap":
            return self.create_config_map(obj)
        obj = copy.deepcopy(obj)
        obj["metadata"].update(namespace=self.ns, uid=uuid.uuid4().hex, creationTimestamp=now(), resourceVersion="1")
        with self.changed:
            {"Service": self.services, "Secret": self.secrets}[kind][obj["metadata"]["name"]] = obj
            self.created.append((kind.lower(), obj["metadata"]["name"]))
        return obj

    def secret_value(self, name: str, key: str) -> str | None:
        import base64

        with self.lock:
            secret = self.secrets.get(name)
            if secret is None:
                return None
            if key in (secret.get("stringData") or {}):
                return secret["stringData"][key]
            raw = (secret.get("data") or {}).get(key)
            return None if raw is None else base64.b64decode(raw).decode()

    # -- ConfigMaps ---------------------------------------------------------------------------------

    def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        cm = copy.deepcopy(body)
        meta = cm["metadata"]
        with self.changed:
            if meta["name"] in self.config_maps:
                raise KeyError(meta["name"])
            meta.update(namespace=self.ns, uid=uuid.uuid4().hex, creationTimestamp=now(), resourceVersion="1")
            self.config_maps[meta["name"]] = cm
            self.created.append(("configmap", meta["name"]))
            self.changed.notify_all()
        return copy.deepcopy(cm)

    def replace_config_map(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """ValueError on a stale resourceVersion (the API's 409 Conflict)."""
        with self.changed:
            current = self.config_maps[name]
            given = (body.get("metadata") or {}).get("resourceVersion")
            if given is not None and given != current["metadata"]["resourceVersion"]:
                raise ValueError(f"the object has been modified (resourceVersion {given} is not "
                                 f"{current['metadata']['resourceVersion']})")  # fmt: skip
            new = copy.deepcopy(body)
            new["metadata"] = {**current["metadata"], "resourceVersion": str(int(current["metadata"]["resourceVersion"]) + 1)}
            self.config_maps[name] = new
            self.changed.notify_all()
            return copy.deepcopy(new)

    # -- Deployments and their ReplicaSets ------------------------------------------------------------

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        dep = copy.deepcopy(body)
        meta = dep["metadata"]
        with self.changed:
            if meta["name"] in self.deployments:
                raise KeyError(meta["name"])
            meta.update(namespace=self.ns, uid=uuid.uuid4().hex, creationTimestamp=now(), resourceVersion="1", generation=1)
            dep["status"] = {"observedGeneration": 0}
            self.deployments[meta["name"]] = dep
            self.created.append(("deployment", meta["name"]))
        self._reconcile(meta["name"])
        return copy.deepcopy(self.deployments[meta["name"]])

    def label_deployment(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        with self.changed:
            dep = self.deployments[name]
            dep["metadata"].setdefault("labels", {}).update(labels)
            dep["metadata"]["resourceVersion"] = str(int(dep["metadata"]["resourceVersion"]) + 1)
            return copy.deepcopy(dep)

    def delete_deployment(self, name: str) -> dict[str, Any] | None:
        with self.changed:
            dep = self.deployments.pop(name, None)
            if dep is None:
                return None
            self.deleted.append(("deployment", name, {}))
            uid = dep["metadata"]["uid"]
            sets = [n for n, rs in self.replicasets.items() if _owned_by(rs, uid)]
            services = [n for n, s in self.services.items() if _owned_by(s, uid)]
            for n in services:  # garbage collection of what the Deployment owns
                self.services.pop(n)
                self.deleted.append(("service", n, {}))
        for rs in sets:
            with self.changed:
                owner = self.replicasets.pop(rs)["metadata"]["uid"]
                pods = [n for n, p in self.pods.items() if _owned_by(p, owner)]
            for pod in pods:
                self.delete_pod(pod, {})
        return dep

    def _reconcile(self, name: str) -> None:
        """The ReplicaSet of the Deployment's template and its pods, as many as it asks for."""
        with self.changed:
            dep = self.deployments.get(name)
            if dep is None:
                return
            template = dep["spec"]["template"]
            digest = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            rs_name = f"{name}-{digest}"
            rs = self.replicasets.get(rs_name)
            if rs is None:
                rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": rs_name, "namespace": self.ns, "uid": uuid.uuid4().hex, "creationTimestamp": now(),
                                   "labels": {**template["metadata"].get("labels", {}), TEMPLATE_HASH: digest},
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                        "uid": dep["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
                      "spec": {"replicas": dep["spec"].get("replicas", 1), "template": template}}  # fmt: skip
                self.replicasets[rs_name] = rs
            have = [p for p in self.pods.values() if _owned_by(p, rs["metadata"]["uid"])]
            missing = dep["spec"].get("replicas", 1) - len(have)
            dep["status"]["observedGeneration"] = dep["metadata"]["generation"]
        for _ in range(max(0, missing)):
            pod = copy.deepcopy(template)
            pod["metadata"]["name"] = f"{rs_name}-{uuid.uuid4().hex[:5]}"
            pod["metadata"].setdefault("labels", {})[TEMPLATE_HASH] = digest
            pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                                   "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]  # fmt: skip
            self.create_pod({"apiVersion": "v1", "kind": "Pod", **pod})
        self._status(name)

    def _status(self, name: str) -> None:
        with self.changed:
            dep = self.deployments.get(name)
            if dep is None:
                return
            uids = {rs["metadata"]["uid"] for rs in self.replicasets.values() if _owned_by(rs, dep["metadata"]["uid"])}
            pods = [p for p in self.pods.values() if any(_owned_by(p, u) for u in uids) and "deletionTimestamp" not in p["metadata"]]
            ready = sum(1 for p in pods if _ready(p))
            dep["status"].update(replicas=len(pods), updatedReplicas=len(pods), readyReplicas=ready, availableReplicas=ready,
                                 conditions=[{"type": "Available", "status": "True" if ready >= dep["spec"].get("replicas", 1) else "False"}])  # fmt: skip

    def _job_controller(self) -> None:  # every pod change: the Deployments' status too
        super()._job_controller()
        for name in list(self.deployments):
            self._status(name)

    # -- Services and the network ---------------------------------------------------------------------

    def endpoint_slices(self, service: str) -> list[dict[str, Any]]:
        with self.lock:
            svc = self.services.get(service)
            if svc is None or not svc["spec"].get("selector"):
                return []
            pods = [p for p in self.pods.values() if all(p["metadata"].get("labels", {}).get(k) == v
                                                         for k, v in svc["spec"]["selector"].items())]  # fmt: skip
            endpoints = [{"addresses": ["127.0.0.1"], "conditions": {"ready": _ready(p)},
                          "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": self.ns}} for p in pods]  # fmt: skip
        return [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                 "metadata": {"name": f"{service}-x", "namespace": self.ns, "labels": {"kubernetes.io/service-name": service}},
                 "endpoints": endpoints}]  # fmt: skip

    def resolve(self, host: str, port: int) -> int | None:
        """The local port of `host:port`: a pod's IP, or a ready pod of Service `host` (any
        in-cluster DNS form)."""
        service = host.split(".")[0]
        with self.lock:
            if host in self.pod_ips:
                return self.ports.get(self.pod_ips[host], {}).get(port)
            svc = self.services.get(service)
            if svc is None:
                return None
            target = next((p.get("targetPort", p["port"]) for p in svc["spec"].get("ports", []) if p["port"] == port), None)
            ready = [n for s in self.endpoint_slices(service) for e in s["endpoints"] if e["conditions"]["ready"]
                     for n in [e["targetRef"]["name"]]]  # fmt: skip
            if target is None or not ready:
                return None
            pod = ready[next(self._rr) % len(ready)]
            return self.ports.get(pod, {}).get(target)

    def pod_port(self, pod: str, port: int | str) -> int | None:
        with self.lock:
            return self.ports.get(pod, {}).get(port)


class ProcessKubelet:
    def __init__(self, cluster: Cluster, root: Path, *, claims: dict[str, str], commands: dict[str, list[str]],
                 base_env: dict[str, str], config_map_lag_s: float) -> None:  # fmt: skip
        self.cluster, self.root, self.claims, self.commands = cluster, root, claims, commands
        self.base_env, self.lag_s = base_env, config_map_lag_s
        self.procs: dict[str, subprocess.Popen] = {}
        atexit.register(self.stop_all, 2)

    # -- volumes ----------------------------------------------------------------------------------------

    def _write_files(self, folder: Path, files: dict[str, str]) -> None:
        """As the kubelet does: the files in a timestamped folder, `..data` swapped to it at once."""
        stamp = folder / f"..{time.time_ns()}"
        stamp.mkdir(parents=True)
        for key, value in files.items():
            (stamp / key).write_text(value)
        tmp = folder / "..data_tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(stamp.name)
        os.replace(tmp, folder / "..data")
        for key in files:
            link = folder / key
            if not link.is_symlink():
                link.symlink_to(f"..data/{key}")

    def _config_map_files(self, volume: dict[str, Any]) -> tuple[dict[str, str] | None, str]:
        ref = volume["configMap"]
        with self.cluster.lock:
            cm = self.cluster.config_maps.get(ref["name"])
            if cm is None:
                return None, ""
            return dict(cm.get("data") or {}), cm["metadata"]["resourceVersion"]

    def _volumes(self, name: str, pod: dict[str, Any]) -> dict[str, str]:
        """mountPath -> local folder (or file, with subPath)."""
        vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        out: dict[str, str] = {}
        for mount in pod["spec"]["containers"][0].get("volumeMounts", []):
            vol, path = vols[mount["name"]], mount["mountPath"]
            local = self.root / name / "volumes" / mount["name"]
            if "persistentVolumeClaim" in vol:
                claim = self.claims.get(vol["persistentVolumeClaim"]["claimName"])
                if claim is None:
                    raise KeyError(f"persistentvolumeclaim {vol['persistentVolumeClaim']['claimName']!r} not found")
                local = Path(claim) / mount.get("subPath", "")
                local.mkdir(parents=True, exist_ok=True)
            elif "configMap" in vol:
                files, version = self._config_map_files(vol)
                if files is None and not vol["configMap"].get("optional"):
                    raise KeyError(f"configmap {vol['configMap']['name']!r} not found")
                local.mkdir(parents=True, exist_ok=True)
                if files is not None:
                    self._write_files(local, files)
                threading.Thread(target=self._refresh, args=(name, vol, local, version), daemon=True).start()
            elif "secret" in vol:
                ref = vol["secret"]
                items = ref.get("items") or [{"key": k, "path": k} for k in self._secret_keys(ref["secretName"])]
                files = {i["path"]: self.cluster.secret_value(ref["secretName"], i["key"]) for i in items}
                if any(v is None for v in files.values()):
                    raise KeyError(f"secret {ref['secretName']!r} not found or lacks {sorted(k for k, v in files.items() if v is None)}")
                local.mkdir(parents=True, exist_ok=True)
                self._write_files(local, files)  # type: ignore[arg-type]
            elif path == str(local) or "emptyDir" in vol:
                local.mkdir(parents=True, exist_ok=True)
            if path not in ("/tmp", "/dev/shm"):
                out[path] = str(local)
        return out

    def _secret_keys(self, name: str) -> list[str]:
        with self.cluster.lock:
            secret = self.cluster.secrets.get(name) or {}
            return sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})

    def _refresh(self, name: str, volume: dict[str, Any], local: Path, version: str) -> None:
        """A changed ConfigMap reaches the pod's files `config_map_lag_s` later."""
        while self.cluster.alive(name):
            files, now_version = self._config_map_files(volume)
            if files is not None and now_version != version:
                time.sleep(self.lag_s)
                files, now_version = self._config_map_files(volume)
                if files is not None:
                    self._write_files(local, files)
                    version = now_version
            time.sleep(0.2)

    # -- the container ---------------------------------------------------------------------------------

    def _env(self, name: str, main: dict[str, Any], automount: bool) -> dict[str, str]:
        env = dict(self.base_env)
        for ref in main.get("envFrom", []):
            secret = ref.get("secretRef", {}).get("name")
            if secret:
                for key in self._secret_keys(secret):
                    env[key] = self.cluster.secret_value(secret, key) or ""
        for var in main.get("env", []):
            if "value" in var:
                env[var["name"]] = _expand(var["value"], env)
                continue
            source = var.get("valueFrom", {})
            if "fieldRef" in source:
                env[var["name"]] = {"metadata.name": name, "metadata.namespace": self.cluster.ns}.get(source["fieldRef"]["fieldPath"], "")
            elif "secretKeyRef" in source:
                value = self.cluster.secret_value(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
                if value is None:
                    raise KeyError(f"secret {source['secretKeyRef']['name']!r} not found")
                env[var["name"]] = value
        proxy = self.cluster.network.url
        env.update(HTTP_PROXY=proxy, http_proxy=proxy, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        if automount and self.cluster.kubeconfig_path:
            env["KUBECONFIG"] = self.cluster.kubeconfig_path  # its service account token, as far as this server goes
        else:
            env.pop("KUBECONFIG", None)
        return env

    def _command(self, name: str, main: dict[str, Any], env: dict[str, str], mounts: dict[str, str]) -> list[str]:
        argv = [_expand(a, env) for a in [*main.get("command", []), *main.get("args", [])]]
        ports: dict[int | str, int] = {}
        for p in main.get("ports", []):
            ports[p["containerPort"]] = ports[p.get("name", p["containerPort"])] = _free_port()
        with self.cluster.lock:
            self.cluster.ports[name] = ports
        out = []
        for i, arg in enumerate(argv):
            if i and argv[i - 1].endswith("port") and arg.isdigit() and int(arg) in ports:
                arg = str(ports[int(arg)])
            elif i and argv[i - 1] in ("--host", "--admin-host") and arg == "0.0.0.0":
                arg = "127.0.0.1"
            out.append(_remap(arg, mounts))
        head = self.commands.get(out[0])
        return [*head, *out[1:]] if head else out

    def play(self, cluster: FakeCluster, name: str) -> None:
        with cluster.lock:
            pod = copy.deepcopy(cluster.pods[name])
        main = pod["spec"]["containers"][0]
        try:
            mounts = self._volumes(name, pod)
            env = self._env(name, main, bool(pod["spec"].get("automountServiceAccountToken", True)))
        except KeyError as exc:
            cluster.schedule(name, "local-node")
            cluster.waiting(name, "CreateContainerConfigError", str(exc).strip("'\""))
            return
        env = {k: _remap(v, mounts) for k, v in env.items()}
        command = self._command(name, main, env, mounts)
        always = pod["spec"].get("restartPolicy", "Always") == "Always"
        cluster.schedule(name, "local-node")
        self.cluster.assign_ip(name)
        restarts = 0
        while cluster.alive(name):
            proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            self.procs[name] = proc
            cluster.start(name)
            if restarts:
                cluster._update(name, lambda p, n=restarts: [cs.__setitem__("restartCount", n) for cs in p["status"]["containerStatuses"]])
            threading.Thread(target=self._stop_when_deleted, args=(name, proc, pod), daemon=True).start()
            probe = main.get("readinessProbe", {}).get("httpGet")
            if probe is not None:
                threading.Thread(target=self._probe, args=(name, proc, probe), daemon=True).start()
            else:
                cluster.condition(name, "Ready", "True")
            assert proc.stdout is not None
            for line in proc.stdout:
                cluster.log(name, line.rstrip("\n"))
            code = proc.wait()
            if not always or not cluster.alive(name):
                cluster.exit(name, code)
                return
            restarts += 1
            cluster.condition(name, "Ready", "False")

            def crashed(p: dict[str, Any], n: int = restarts, c: int = code) -> None:
                p["status"]["containerStatuses"] = [{"name": main["name"], "ready": False, "restartCount": n, "image": main["image"],
                                                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                                     "lastState": {"terminated": {"exitCode": c, "reason": "Error"}}}]  # fmt: skip

            cluster._update(name, crashed)
            time.sleep(1)

    def _probe(self, name: str, proc: subprocess.Popen, probe: dict[str, Any]) -> None:
        ready = None
        while proc.poll() is None and self.cluster.alive(name):
            port = self.cluster.pod_port(name, probe["port"])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe.get('path', '/')}", timeout=2) as resp:
                    ok = resp.status == 200
            except OSError:
                ok = False
            if ok != ready:
                self.cluster.condition(name, "Ready", "True" if ok else "False")
                self.cluster._update(name, lambda p, ok=ok: [cs.__setitem__("ready", ok) for cs in p["status"].get("containerStatuses", [])])
                ready = ok
            time.sleep(0.5)

    def _stop_when_deleted(self, name: str, proc: subprocess.Popen, pod: dict[str, Any]) -> None:
        while proc.poll() is None:
            if not self.cluster.alive(name):
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                _signal(proc, signal.SIGTERM)
                try:
                    proc.wait(min(grace, 30))
                except subprocess.TimeoutExpired:
                    _signal(proc, signal.SIGKILL)
                return
            time.sleep(0.1)

    def stop_all(self, grace_s: float = 10) -> None:
        """Every pod's process group: SIGTERM, SIGKILL after `grace_s` (also at interpreter exit:
        a test stopped by its timeout must not leave vLLM servers behind)."""
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in list(self.procs.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal(proc, signal.SIGKILL)  # what is left of its group (vLLM's engine and workers)
        shutil.rmtree(self.root, ignore_errors=True)


def _signal(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _expand(value: str, env: dict[str, str]) -> str:
    """`$(VAR)` from the container's environment, as Kubernetes expands command, args and env."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _remap(value: str, mounts: dict[str, str]) -> str:
    for path in sorted(mounts, key=len, reverse=True):
        if value == path or value.startswith(path + "/"):
            return mounts[path] + value[len(path):]
        value = value.replace(f"={path}/", f"={mounts[path]}/")
    return value


class Network:
    """The pods' network: an HTTP forward proxy (their `HTTP_PROXY`) from Service names to ready pods."""

    def __init__(self, cluster: Cluster) -> None:
        handler = type("Proxy", (_Proxy,), {"cluster": cluster})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.seen: list[tuple[str, str]] = []
        """(host, path) of every request it carried."""
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cluster: Cluster

    def log_message(self, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        url = urlparse(self.path)
        self.cluster.network.seen.append((url.hostname or "", url.path))
        port = self.cluster.resolve(url.hostname or "", url.port or 80)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if port is None:
            self.send_error(503, f"no ready endpoint for {url.hostname}:{url.port}")
            return
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-") and k.lower() != "connection"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            conn.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body=body, headers=headers)
            resp = conn.getresponse()
        except OSError as exc:
            self.send_error(502, f"{url.hostname}: {exc}")
            return
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        while chunk := resp.read1(65536):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = _relay  # noqa: N815


class _AppsHandler(_Handler):
    """The fake API server's routes for apps/v1, ConfigMaps, EndpointSlices and the pod proxy;
    everything else as fake_k8s.py answers it."""

    cluster: Cluster

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        c, query = self.cluster, parse_qs(url.query)
        deps = re.fullmatch(r"/apis/apps/v1/namespaces/[^/]+/deployments(?:/([^/]+))?", url.path)
        cms = re.fullmatch(r"/api/v1/namespaces/[^/]+/configmaps(?:/([^/]+))?", url.path)
        slices = re.fullmatch(r"/apis/discovery.k8s.io/v1/namespaces/[^/]+/endpointslices", url.path)
        if not (deps or cms or slices) or self._fault(method, url.path, query):
            return super()._route(method)
        self._record(method, url.path, query)
        if slices:
            service = (query.get("labelSelector") or [""])[0].split("=", 1)[-1]
            return self._send(200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {},
                                    "items": c.endpoint_slices(service)})  # fmt: skip
        if deps:
            return self._deployments(method, deps.group(1), query)
        return self._config_maps(method, cms.group(1))  # type: ignore[union-attr]

    def _fault(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        """Whether an injected fault applies (the base handler answers it)."""
        with self.cluster.lock:
            return any(f["times"] > 0 and f["method"] == method and re.fullmatch(f["path"], path) for f in self.cluster.faults)

    def _record(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        from tests.operators.launchers.fake_k8s import rbac_request

        self.cluster.requests.append((method, path))
        self.cluster.authorized.add(rbac_request(method, path, query))

    def _deployments(self, method: str, name: str | None, query: dict[str, list[str]]) -> None:
        c = self.cluster
        if method == "GET" and name is None:
            selector = (query.get("labelSelector") or [""])[0]
            with c.lock:
                items = [copy.deepcopy(d) for d in c.deployments.values() if _matches(d["metadata"].get("labels") or {}, selector)]
            return self._send(200, {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": items})
        if method == "POST":
            body = self._body()
            try:
                return self._send(201, c.create_deployment(body))
            except KeyError:
                return self._send(409, _status(409, "AlreadyExists", f"deployments {body['metadata']['name']!r} already exists"))
        with c.lock:
            dep = copy.deepcopy(c.deployments.get(name or ""))
        if dep is None:
            return self._send(404, _status(404, "NotFound", f"deployments {name!r} not found"))
        if method == "GET":
            return self._send(200, dep)
        if method == "PATCH":
            return self._send(200, c.label_deployment(name, self._body()["metadata"]["labels"]))  # type: ignore[arg-type]
        if method == "DELETE":
            self._body()
            c.delete_deployment(name)  # type: ignore[arg-type]
            return self._send(200, dep)
        return self._send(405, _status(405, "MethodNotAllowed", method))

    def _config_maps(self, method: str, name: str | None) -> None:
        c = self.cluster
        if method == "POST":
            body = self._body()
            try:
                return self._send(201, c.create_config_map(body))
            except KeyError:
                return self._send(409, _status(409, "AlreadyExists", f"configmaps {body['metadata']['name']!r} already exists"))
        with c.lock:
            cm = copy.deepcopy(c.config_maps.get(name or ""))
        if cm is None:
            return self._send(404, _status(404, "NotFound", f"configmaps {name!r} not found"))
        if method == "GET":
            return self._send(200, cm)
        if method == "PUT":
            try:
                return self._send(200, c.replace_config_map(name, self._body()))  # type: ignore[arg-type]
            except ValueError as exc:
                return self._send(409, _status(409, "Conflict", f"Operation cannot be fulfilled on configmaps {name!r}: {exc}"))
        return self._send(405, _status(405, "MethodNotAllowed", method))

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")


class ClusterApiServer(FakeApiServer):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        handler = type("Handler", (_AppsHandler,), {"cluster": cluster})
        self.httpd.RequestHandlerClass = handler

    def __exit__(self, *exc: Any) -> None:
        assert isinstance(self.cluster, Cluster)
        try:
            super().__exit__(*exc)
            self.cluster.network.close()
        finally:
            self.cluster.kubelet_impl.stop_all()


OnPod = Callable[[Cluster, str], None]
