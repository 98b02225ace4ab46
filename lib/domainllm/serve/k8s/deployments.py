"""Served versions on a cluster, behind the rollout's `Deployments` interface: `start` makes
a version's vLLM Deployment and Service (or finds them), waits until every replica is ready
and the Service has endpoints, and has it answer one request; the tracks (`stable`,
`canary`) are labels, so promoting a canary relabels it and restarts nothing. A version that
cannot come up fails with what the cluster said (unschedulable and why, an image that
cannot be pulled, a crash with its exit reason) and is deleted."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from domainllm.k8s.api import Api
from domainllm.k8s.status import pod_state
from domainllm.serve.k8s.objects import (
    ANNOTATION_MODEL,
    LABEL_DEPLOYMENT,
    LABEL_TRACK,
    LABEL_VERSION,
    base_url,
    deployment_name,
    owned_labels,
    vllm_deployment,
    vllm_service,
)
from domainllm.serve.vllm_server import ServerError
from domainllm.spec import Spec

log = logging.getLogger(__name__)

BACKEND_KEY_ENV = "DOMAINLLM_BACKEND_API_KEY"
CRASHES = 2
"""Restarts of a vLLM container while it starts that count as a failed version."""


@dataclass(frozen=True)
class ClusterServed:
    name: str
    """The Deployment and Service."""
    version: str
    model_path: str
    served_name: str
    base_url: str
    track: str


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class ClusterDeployments:
    def __init__(self, spec: Spec, api: Api, *, poll_s: float = 2.0) -> None:
        self.spec, self.api, self.poll_s = spec, api, poll_s
        self.api_key = os.environ.get(BACKEND_KEY_ENV) or None

    def _served(self, obj: dict[str, Any]) -> ClusterServed:
        meta = obj["metadata"]
        labels, name = meta.get("labels") or {}, meta["name"]
        args = obj["spec"]["template"]["spec"]["containers"][0].get("args") or []
        served = args[args.index("--served-model-name") + 1] if "--served-model-name" in args else self.spec.name
        served = self.spec.name if served.endswith("-base") else served  # an adapter is asked for by the pipeline's name
        return ClusterServed(name, labels.get(LABEL_VERSION, ""), (meta.get("annotations") or {}).get(ANNOTATION_MODEL, ""), served,
                             base_url(self.spec, name), labels.get(LABEL_TRACK, ""))  # fmt: skip

    def _by_track(self, track: str) -> list[dict[str, Any]]:
        found = self.api.list_deployments(_selector({**owned_labels(self.spec), LABEL_TRACK: track}))
        return [d for d in found if not d["metadata"].get("deletionTimestamp")]

    def get(self, name: str) -> ClusterServed | None:
        found = self._by_track(name)
        if len(found) > 1:
            log.warning("more than one %s deployment: %s; using the newest", name, [d["metadata"]["name"] for d in found])
        found.sort(key=lambda d: d["metadata"].get("creationTimestamp") or "")
        return self._served(found[-1]) if found else None

    def all(self) -> dict[str, ClusterServed]:
        return {s.track: s for s in (self._served(d) for d in self.api.list_deployments(_selector(owned_labels(self.spec))))}

    def start(self, name: str, version: str, model_path: str, *, adapters: dict[str, str] | None = None) -> ClusterServed:
        dep_name = deployment_name(self.spec, version)
        current = self.api.read_deployment(dep_name)
        if current is not None and (current["metadata"].get("annotations") or {}).get(ANNOTATION_MODEL) != model_path:
            log.info("deployment %s serves another copy of version %s: replacing it", dep_name, version)
            self._delete(dep_name)
            current = None
        if current is None:
            current = self.api.create_deployment(vllm_deployment(self.spec, dep_name, version, model_path, name, adapters))
            log.info("created deployment %s (version %s, %d replica(s), image %s)", dep_name, version,
                     self.spec.runtime.kubernetes.serving.replicas, self.spec.runtime.images["serve"].ref)  # fmt: skip
        elif (current["metadata"].get("labels") or {}).get(LABEL_TRACK) != name:
            current = self.api.label_deployment(dep_name, {LABEL_TRACK: name})
        if self.api.read_service(dep_name) is None:
            self.api.create_service(vllm_service(self.spec, dep_name, current))
        try:
            self._wait_ready(dep_name)
            served = self._served(current)
            self._answer_once(served)
        except ServerError:
            self._delete(dep_name)
            raise
        log.info("deployment %s: version %s ready at %s", dep_name, version, served.base_url)
        return served

    def _wait_ready(self, name: str) -> None:
        timeout = self.spec.runtime.kubernetes.serving.startup_timeout_s
        schedule_timeout = self.spec.runtime.kubernetes.schedule_timeout_s
        t0, last = time.monotonic(), ""
        while True:
            dep = self.api.read_deployment(name)
            if dep is None:
                raise ServerError(f"deployment {name} was deleted while it started")
            want, status = dep["spec"].get("replicas", 1), dep.get("status") or {}
            ready = status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 1) and \
                status.get("updatedReplicas", 0) >= want and status.get("readyReplicas", 0) >= want  # fmt: skip
            if ready and self._endpoints(name):
                return
            pods = self.api.list_pods(f"{LABEL_DEPLOYMENT}={name}")
            waited = time.monotonic() - t0
            problem = self._problem(pods, waited > schedule_timeout)
            if problem:
                raise ServerError(f"deployment {name}: {problem}")
            note = f"deployment {name}: {status.get('readyReplicas', 0)} of {want} replicas ready"
            if note != last:
                log.info("%s (%.0fs)", note, waited)
                last = note
            if waited > timeout:
                raise ServerError(f"{note} after {timeout:g}s (runtime.kubernetes.serving.startup_timeout_s); the pods' "
                                  f"events say why (kubectl describe pods -l {LABEL_DEPLOYMENT}={name})")  # fmt: skip
            time.sleep(self.poll_s)

    def _endpoints(self, service: str) -> int:
        return sum(1 for s in self.api.endpoint_slices(service) for e in s.get("endpoints") or []
                   if (e.get("conditions") or {}).get("ready"))  # fmt: skip

    @staticmethod
    def _problem(pods: list[dict[str, Any]], schedule_timed_out: bool) -> str | None:
        """Why a pod of the version cannot become ready, when waiting cannot help."""
        for pod in pods:
            state = pod_state(pod, "vllm")
            if state.failure is not None:
                return state.failure.message
            if state.phase == "pending" and not state.scheduled and schedule_timed_out:
                return f"{state.waiting} (runtime.kubernetes.schedule_timeout_s)"
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                if cs.get("restartCount", 0) >= CRASHES:
                    last = ((cs.get("lastState") or {}).get("terminated") or {})
                    return (f"pod {pod['metadata']['name']}: vLLM exited {cs['restartCount']} times while starting (last: "
                            f"{last.get('reason', '?')}, exit code {last.get('exitCode', '?')}); its log: kubectl logs --previous")  # fmt: skip
        return None

    def _answer_once(self, served: ClusterServed) -> None:
        """A ready server must also answer (the first request is where a kernel the GPU cannot
        run kills vLLM's worker)."""
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            reply = httpx.post(f"{served.base_url}/completions", json={"model": served.served_name, "prompt": "Hello", "max_tokens": 2},
                               headers=headers, timeout=300)  # fmt: skip
        except httpx.HTTPError as exc:
            raise ServerError(f"{served.name} is ready but did not answer a first request: {type(exc).__name__}: {exc}") from None
        if reply.status_code != 200:
            raise ServerError(f"{served.name} is ready but answered a first request with HTTP {reply.status_code}: {reply.text[:300]}")

    def _delete(self, name: str) -> None:
        self.api.delete_deployment(name)
        log.info("deleted deployment %s (its pods and Service go with it)", name)

    def stop(self, name: str) -> None:
        for dep in self._by_track(name):
            self._delete(dep["metadata"]["name"])

    def rename(self, old: str, new: str) -> ClusterServed:
        current = self.get(old)
        if current is None:
            raise KeyError(f"no {old} deployment")
        if self.get(new) is not None:
            raise ValueError(f"deployment {new!r} is still there: stop it first")
        return self._served(self.api.label_deployment(current.name, {LABEL_TRACK: new}))
