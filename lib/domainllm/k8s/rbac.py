"""What the Kubernetes launcher may do in its namespace, as RBAC rules: every API call it
makes and nothing more. The deploy's Role grants exactly these (the launcher's tests check
that the calls they see are these, and the chart's tests that the Role is)."""

from __future__ import annotations

LAUNCHER_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"create", "get", "list", "patch", "delete"}),
    ("", "pods/log"): frozenset({"get"}),
    ("", "events"): frozenset({"list"}),
    ("", "services"): frozenset({"create", "delete"}),
    ("batch", "jobs"): frozenset({"create", "get", "list", "patch", "delete"}),
    ("scheduling.volcano.sh", "podgroups"): frozenset({"create"}),
    # training.backend jobset / trainjob: the object is all we touch (the controllers make its
    # Jobs, pods and Service, owned by it); its pods are read as above
    ("jobset.x-k8s.io", "jobsets"): frozenset({"create", "get", "list", "patch", "delete"}),
    ("trainer.kubeflow.org", "trainjobs"): frozenset({"create", "get", "list", "patch", "delete"}),
}
"""(API group, resource) -> verbs."""


def role_rules() -> list[dict[str, list[str]]]:
    """The rules as a Role's `rules` list, one per resource."""
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in sorted(LAUNCHER_RULES.items())]  # fmt: skip
