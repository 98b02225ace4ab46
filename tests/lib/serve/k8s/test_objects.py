"""What the rollout sends the API server: the vLLM Deployment and Service of a version and
the routes ConfigMap validate strictly on the oldest and newest Kubernetes we support, carry
the serving settings of a local server, and are locked down like every pod we make; the
rollout's own pod is the one stage pod with an API token, and the serving stages get vLLM's
key from its Secret, by reference."""

from __future__ import annotations

from pathlib import Path

from domainllm.k8s.validate import DEFAULT_VERSIONS, validate_object
from domainllm.serve.k8s.objects import (
    base_url,
    deployment_name,
    routes_config_map,
    vllm_deployment,
    vllm_service,
)
from domainllm.spec import load_spec
from tests.conftest import write_spec


def _spec(home: Path, tmp_path: Path):
    doc = {"extends": str(Path(__file__).parents[4] / "examples" / "demo" / "spec.k8s.yaml"),
           "runtime": {"kubernetes": {"serving": {"node_pool": "gpu-h100", "replicas": 2, "probe_key_secret": "domainllm-probe-key"}}},
           "serving": {"enabled": True, "max_model_len": 4096, "lora": {"enabled": True}}}  # fmt: skip
    return load_spec(write_spec(tmp_path / "spec.yaml", doc))


def test_a_version_validates_and_serves_like_a_local_server(home: Path, tmp_path: Path) -> None:
    spec = _spec(home, tmp_path)
    name = deployment_name(spec, "12")
    dep = vllm_deployment(spec, name, "12", "/var/lib/domainllm/artifacts/registry/v12/base", "canary",
                          adapters={spec.name: "/var/lib/domainllm/artifacts/registry/v12/adapter"})  # fmt: skip
    dep["metadata"]["uid"] = "u-1"
    svc = vllm_service(spec, name, dep)
    cm = routes_config_map(spec, {"routes.json": "{}"})
    for obj in (dep, svc, cm):
        for version in DEFAULT_VERSIONS:
            finding = validate_object(obj, version)
            assert finding.status == "valid", (obj["kind"], version, finding.message)
    assert name == "domainllm-vllm-v12" and base_url(spec, name) == "http://domainllm-vllm-v12.domainllm.svc.cluster.local:8000/v1"
    pod = dep["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["command"] == ["/opt/vllm/bin/vllm", "serve"] and main["args"][0].endswith("/v12/base")
    args = main["args"]
    assert args[args.index("--served-model-name") + 1] == f"{spec.name}-base"  # the adapter answers to the pipeline's name
    assert "--enable-lora" in args and args[args.index("--max-model-len") + 1] == "4096"
    assert any(a.startswith(f"{spec.name}=") for a in args[args.index("--lora-modules") + 1:])
    assert {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "domainllm-vllm-api-key", "key": "api-key"}}} in main["env"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1 and main["resources"]["requests"] == main["resources"]["limits"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"} and pod["tolerations"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "domainllm-serve"
    assert main["securityContext"]["readOnlyRootFilesystem"] and main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "home", "mountPath": "/var/lib/domainllm", "readOnly": True} in main["volumeMounts"]
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "domainllm-rollout" and labels["domainllm/track"] == "canary"
    assert svc["metadata"]["ownerReferences"][0] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "u-1",
                                                     "blockOwnerDeletion": True}  # fmt: skip
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"] == {"domainllm/deployment": name}


def test_only_the_rollout_pod_may_call_the_api(home: Path, tmp_path: Path) -> None:
    from domainllm.k8s.render import render_run

    spec = _spec(home, tmp_path)
    pods = {item.request.name: item.objects[0]["spec"] for item in render_run(spec, str(tmp_path / "spec.yaml"), "r1")
            if item.objects[0]["kind"] == "Pod"}  # fmt: skip
    assert {"rollout", "sample", "ingest", "run-start", "quality-shard0"} <= set(pods) and len(pods) > 25
    with_token = {n for n, p in pods.items() if p["automountServiceAccountToken"]}
    assert with_token == {"rollout"} and pods["rollout"]["serviceAccountName"] == "domainllm-rollout"
    env = {n: {e["name"]: e for e in p["containers"][0]["env"]} for n, p in pods.items()}
    assert {n for n, e in env.items() if "DOMAINLLM_BACKEND_API_KEY" in e} == {"rollout", "sample"}
    assert env["rollout"]["DOMAINLLM_GATEWAY_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "domainllm-probe-key", "key": "api-key"}}
    assert "value" not in env["rollout"]["DOMAINLLM_BACKEND_API_KEY"]  # by reference: the key is never in the pod spec
