"""The Kubernetes API from inside a stage pod (the rollout's): the pod's service account when
it runs in a cluster, else the kubeconfig (`KUBECONFIG`). Answers are plain JSON dicts, as
the API server sends them. Every call is retried after a transient failure (429 with its
Retry-After, a 5xx, a dropped connection) with backoff, about a minute in all: an API server
being upgraded must not fail a rollout halfway."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

TRANSIENT = frozenset({429, 500, 502, 503, 504})
RETRIES = 6
BACKOFF_S = 1.0
"""The first retry's wait; doubled each time up to 30 s (a 429's Retry-After wins when longer)."""

log = logging.getLogger(__name__)


def retried(call: Any, *args: Any, _retries: int = RETRIES, _backoff_s: float = BACKOFF_S, **kwargs: Any) -> Any:
    """`call(...)`, again after a transient failure (the launcher and the rollout share this)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    delay = _backoff_s
    for attempt in range(_retries + 1):
        try:
            return call(*args, **kwargs)
        except ApiException as exc:
            if exc.status not in TRANSIENT or attempt == _retries:
                raise
            after = (exc.headers or {}).get("Retry-After")
            wait, why = max(delay, float(after) if after and after.isdigit() else 0.0), f"HTTP {exc.status}"
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            if attempt == _retries:
                raise
            wait, why = delay, type(exc).__name__
        log.warning("kubernetes API: %s on %s; retry %d of %d in %.1f s", why, getattr(call, "__name__", "a call"), attempt + 1,
                    _retries, wait)  # fmt: skip
        time.sleep(wait)
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


def api_client() -> Any:
    """An ApiClient for this pod's service account, or the kubeconfig outside a cluster."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:  # KUBECONFIG read now: the client reads it once, when first imported
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    return client.ApiClient()


class Api:
    """The calls the rollout makes in its namespace (and nothing else: its Role in the chart
    grants exactly these, `SERVING_RULES`)."""

    def __init__(self, namespace: str, client_: Any = None) -> None:
        from kubernetes import client

        self.ns = namespace
        self.client = client_ or api_client()
        self.core, self.apps = client.CoreV1Api(self.client), client.AppsV1Api(self.client)
        self.discovery = client.DiscoveryV1Api(self.client)

    @staticmethod
    def _json(resp: Any) -> Any:
        return json.loads(resp.data)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._json(retried(fn, *args, _preload_content=False, **kwargs))

    def not_found(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The answer, or None on a 404."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call(fn, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # deployments
    def create_deployment(self, body: dict) -> dict:
        return self._call(self.apps.create_namespaced_deployment, self.ns, body)

    def read_deployment(self, name: str) -> dict | None:
        return self.not_found(self.apps.read_namespaced_deployment, name, self.ns)

    def list_deployments(self, selector: str) -> list[dict]:
        return self._call(self.apps.list_namespaced_deployment, self.ns, label_selector=selector)["items"]

    def label_deployment(self, name: str, labels: dict[str, str]) -> dict:
        return self._call(self.apps.patch_namespaced_deployment, name, self.ns, {"metadata": {"labels": labels}})

    def delete_deployment(self, name: str) -> None:
        """Its ReplicaSets, pods and Service (owned by it) go with it."""
        self.not_found(self.apps.delete_namespaced_deployment, name, self.ns, body={"propagationPolicy": "Background"})

    # services and their endpoints
    def create_service(self, body: dict) -> dict:
        return self._call(self.core.create_namespaced_service, self.ns, body)

    def read_service(self, name: str) -> dict | None:
        return self.not_found(self.core.read_namespaced_service, name, self.ns)

    def endpoint_slices(self, service: str) -> list[dict]:
        return self._call(self.discovery.list_namespaced_endpoint_slice, self.ns,
                          label_selector=f"kubernetes.io/service-name={service}")["items"]  # fmt: skip

    # pods (the gateway's, the vLLM deployments')
    def list_pods(self, selector: str) -> list[dict]:
        return self._call(self.core.list_namespaced_pod, self.ns, label_selector=selector)["items"]

    # the routes ConfigMap
    def read_config_map(self, name: str) -> dict | None:
        return self.not_found(self.core.read_namespaced_config_map, name, self.ns)

    def create_config_map(self, body: dict) -> dict:
        return self._call(self.core.create_namespaced_config_map, self.ns, body)

    def replace_config_map(self, name: str, body: dict) -> dict:
        """409 when `body`'s resourceVersion is not the current one (someone else wrote it)."""
        return self._call(self.core.replace_namespaced_config_map, name, self.ns, body)


SERVING_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("apps", "deployments"): frozenset({"create", "get", "list", "patch", "delete"}),
    ("", "services"): frozenset({"create", "get"}),
    ("discovery.k8s.io", "endpointslices"): frozenset({"list"}),
    ("", "pods"): frozenset({"list"}),
    ("", "configmaps"): frozenset({"get", "create", "update"}),
}
"""(API group, resource) -> verbs: what the rollout stage's service account may do."""
