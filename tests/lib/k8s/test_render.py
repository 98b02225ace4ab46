"""What a run creates on a cluster: every stage of the demo spec on GPU pools with InfiniBand
validates strictly against two Kubernetes versions; the pods carry what the issue asks for
(image, the same command, secrets by name, GPUs, node pools, volumes, /dev/shm, a locked-down
security context, lineage); multi-node jobs rendezvous on pod 0 with the rank from the
completion index; the other backends, gang scheduling and host networking render too."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from domainllm.k8s.jobs import indexed_job, jobset, trainjob
from domainllm.k8s.pod import PodTarget, stage_pod
from domainllm.k8s.render import render_run, specs_config_map
from domainllm.k8s.validate import DEFAULT_VERSIONS, validate_object, validate_objects
from domainllm.launch import stage_request
from domainllm.spec import load_spec
from domainllm.spec.loader import spec_files
from domainllm.stages.names import DOMAIN_STAGES, FLYWHEEL_STAGES, SHARDED_STAGES
from tests.conftest import REPO, domainllm_cmd

CLUSTER_SPEC = REPO / "examples" / "demo" / "spec.k8s.yaml"


@pytest.fixture
def spec(home: Path):
    return load_spec(CLUSTER_SPEC)


def _spec_with(tmp_path: Path, **kubernetes) -> object:
    """The cluster spec with some `runtime.kubernetes` settings changed (through `extends`)."""
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump({"extends": str(CLUSTER_SPEC), "runtime": {"kubernetes": kubernetes}}))
    return load_spec(path)


def test_every_stage_of_the_demo_validates_strictly_on_two_kubernetes_versions(spec) -> None:
    rendered = render_run(spec, str(CLUSTER_SPEC), "demo", mlflow_run_id="0123abcd")
    steps = [r.request.name for r in rendered]
    for stage in (*DOMAIN_STAGES, *FLYWHEEL_STAGES):
        assert stage in steps
    for stage in SHARDED_STAGES:  # one pod per shard, then the collect pod
        assert [f"{stage}-shard{i}" for i in range(spec.data.shards)] == [s for s in steps if s.startswith(f"{stage}-shard")]
    objects = [(f"{r.request.name}/{o['kind']}", o) for r in rendered for o in r.objects]
    objects.append(("specs", specs_config_map(spec, spec_files(CLUSTER_SPEC))))
    kinds = {o["kind"] for _, o in objects}
    assert kinds == {"Pod", "Job", "Service", "ConfigMap"}
    findings = validate_objects(objects, DEFAULT_VERSIONS)
    assert len(findings) == 2 * len(objects) and len(objects) > 50
    assert [f for f in findings if f.status != "valid"] == []
    assert {f.version for f in findings} == set(DEFAULT_VERSIONS) and DEFAULT_VERSIONS[0] != DEFAULT_VERSIONS[1]


def test_strict_validation_catches_an_unknown_field(spec) -> None:
    pod = render_run(spec, str(CLUSTER_SPEC), "demo")[1].objects[0]
    bad = copy.deepcopy(pod)
    bad["spec"]["containers"][0]["gpus"] = 8
    finding = validate_object(bad, "1.32.0")
    assert finding.status == "invalid" and "spec.containers.0" in finding.message and "'gpus' was unexpected" in finding.message


def test_a_stage_pod_has_what_production_needs(spec) -> None:
    request = stage_request(spec, str(CLUSTER_SPEC), "sft", "demo", attempt_id="a" * 32)
    pod = stage_pod(request, PodTarget(spec.runtime.kubernetes, "spec.k8s.yaml", "0123abcd"), "perl-assistant-sft-demo-x1")
    meta, body = pod["metadata"], pod["spec"]
    main = body["containers"][0]
    assert main["image"] == "registry.example.com/domainllm/trainer:0.1.0"
    assert main["command"] == ["torchrun", "--standalone", "--nproc-per-node=8", "-m", "domainllm", "stage", "run", "sft",
                               "--spec", "/etc/domainllm/specs/spec.k8s.yaml", "--run-id", "demo"]  # fmt: skip
    assert main["resources"]["requests"] == main["resources"]["limits"] == {"cpu": "64", "memory": "1000Gi", "nvidia.com/gpu": 8}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in main["env"]}
    assert env["DOMAINLLM_ATTEMPT_ID"] == "a" * 32 and env["DOMAINLLM_HOME"] == "/var/lib/domainllm"
    assert env["OMP_NUM_THREADS"] == "8"  # 64 cores over 8 processes
    assert main["envFrom"] == [{"secretRef": {"name": "domainllm-mlflow"}}]  # secrets by name, never inlined
    assert body["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert body["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts == {"/var/lib/domainllm": "home", "/cache": "cache", "/etc/domainllm/specs": "specs", "/dev/shm": "dshm",
                      "/tmp": "tmp"}  # fmt: skip
    volumes = {v["name"]: v for v in body["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["home"]["persistentVolumeClaim"] == {"claimName": "domainllm-home"}
    assert volumes["specs"]["configMap"] == {"name": "domainllm-specs"}
    assert main["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                       "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    assert body["securityContext"]["runAsNonRoot"] and body["automountServiceAccountToken"] is False
    assert body["serviceAccountName"] == "domainllm-stage" and body["restartPolicy"] == "Never"
    assert meta["labels"]["domainllm/run-id"] == "demo" and meta["labels"]["domainllm/step"] == "sft"
    assert meta["annotations"]["domainllm/mlflow-run-id"] == "0123abcd" and meta["annotations"]["domainllm/stage"] == "sft"


def test_only_stages_that_run_generated_code_get_the_sandbox_seccomp_profile(home: Path, tmp_path: Path) -> None:
    """The sandbox needs user namespaces, which RuntimeDefault forbids: the spec names the
    profile those stages get (default RuntimeDefault: they refuse to run code, and say why)."""
    def profile(spec, stage: str) -> dict:
        request = stage_request(spec, str(CLUSTER_SPEC), stage, "demo")
        return stage_pod(request, PodTarget(spec.runtime.kubernetes, "spec.k8s.yaml", "x"), f"p-{stage}")["spec"]["securityContext"]["seccompProfile"]

    default = load_spec(CLUSTER_SPEC)
    assert profile(default, "eval_code") == profile(default, "sft") == {"type": "RuntimeDefault"}
    local = _spec_with(tmp_path, untrusted_code_seccomp="Localhost:profiles/domainllm-sandbox.json")
    assert profile(local, "eval_code") == profile(local, "label") == {"type": "Localhost", "localhostProfile": "profiles/domainllm-sandbox.json"}
    assert profile(local, "sft") == profile(local, "harvest") == {"type": "RuntimeDefault"}
    with pytest.raises(Exception, match="RuntimeDefault, Unconfined or Localhost"):
        _spec_with(tmp_path, untrusted_code_seccomp="Localhost:")


def test_a_multi_node_job_rendezvous_on_pod_zero_over_infiniband(spec) -> None:
    request = stage_request(spec, str(CLUSTER_SPEC), "cpt", "demo")
    target = PodTarget(spec.runtime.kubernetes, "spec.k8s.yaml")
    service, job = indexed_job(request, target, "perl-assistant-cpt-demo-x1")
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "perl-assistant-cpt-demo-x1"}
    spec_ = job["spec"]
    assert (spec_["completionMode"], spec_["completions"], spec_["parallelism"], spec_["backoffLimit"]) == ("Indexed", 2, 2, 0)
    template = spec_["template"]
    assert template["spec"]["subdomain"] == "perl-assistant-cpt-demo-x1"
    main = template["spec"]["containers"][0]
    assert main["command"][:6] == ["torchrun", "--nnodes=2", "--nproc-per-node=8", "--node-rank=$(NODE_RANK)",
                                   "--master-addr=perl-assistant-cpt-demo-x1-0.perl-assistant-cpt-demo-x1",
                                   "--master-port=29500"]  # fmt: skip
    env = {e["name"]: e for e in main["env"]}
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert env["NCCL_IB_HCA"]["value"] == "mlx5" and env["NCCL_SOCKET_IFNAME"]["value"] == "eth0"
    assert main["resources"]["limits"]["rdma/rdma_shared_device_a"] == 1
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert template["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == "ib-sriov"


def test_host_network_kueue_and_volcano(home: Path, tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, interconnect={"mode": "host_network", "nccl_ib_gid_index": 3}, training={"gang": "kueue", "queue": "gpu-queue"})
    request = stage_request(spec, str(CLUSTER_SPEC), "cpt", "demo")
    target = PodTarget(spec.runtime.kubernetes, "spec.k8s.yaml")
    _, job = indexed_job(request, target, "j")
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    pod = job["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "rdma/rdma_shared_device_a" not in pod["containers"][0]["resources"]["limits"]
    assert {"name": "NCCL_IB_GID_INDEX", "value": "3"} in pod["containers"][0]["env"]
    assert validate_object(job, "1.32.0").status == "valid"
    (queued,) = trainjob(stage_request(spec, str(CLUSTER_SPEC), "cpt", "demo"), PodTarget(spec.runtime.kubernetes, "s"), "j")
    assert queued["spec"]["suspend"] is True and queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    volcano = _spec_with(tmp_path, training={"gang": "volcano", "queue": "research"})
    group, _, vjob = indexed_job(stage_request(volcano, str(CLUSTER_SPEC), "cpt", "demo"), PodTarget(volcano.runtime.kubernetes, "s"), "j")
    assert group["kind"] == "PodGroup" and group["spec"] == {"minMember": 2, "queue": "research"}
    assert vjob["spec"]["template"]["spec"]["schedulerName"] == "volcano"
    assert vjob["spec"]["template"]["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "j"
    assert validate_object(group, "1.32.0").status == "unchecked"  # a custom resource: said so, never called valid


def test_jobset_and_trainjob_backends(spec) -> None:
    request = stage_request(spec, str(CLUSTER_SPEC), "cpt", "demo")
    target = PodTarget(spec.runtime.kubernetes, "spec.k8s.yaml")
    (js,) = jobset(request, target, "j")
    replicated = js["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert js["kind"] == "JobSet" and replicated["completions"] == 2 and js["spec"]["failurePolicy"] == {"maxRestarts": 0}
    command = replicated["template"]["spec"]["containers"][0]["command"]
    assert "--master-addr=j-node-0-0.j" in command
    (tj,) = trainjob(request, target, "j")
    trainer = tj["spec"]["trainer"]
    assert tj["kind"] == "TrainJob" and trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 8
    assert trainer["command"][:4] == ["torchrun", "-m", "domainllm", "stage"]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    # the runtime's `node` pods get our labels, volumes with their mounts and placement (Trainer v2.1's
    # podTemplateOverrides: no securityContext there, it would be dropped) and start at once without Kueue
    (override,) = tj["spec"]["podTemplateOverrides"]
    assert override["targetJobs"] == [{"name": "node"}] and override["metadata"]["labels"]["domainllm/step"] == "cpt"
    mounts = {m["name"] for m in override["spec"]["containers"][0]["volumeMounts"]}
    assert override["spec"]["containers"][0]["name"] == "node" and mounts == {v["name"] for v in override["spec"]["volumes"]}
    assert "securityContext" not in override["spec"] and tj["spec"]["suspend"] is False
    # the pod template inside a JobSet is a real pod template: it validates as one
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": replicated["template"]["spec"]}
    assert validate_object(pod, "1.32.0").status == "valid"


def test_names_and_labels_fit_kubernetes_for_any_run_id(spec) -> None:
    run_id = "flywheel-2026-11-25_to_2026-11-26." + "x" * 80
    for item in render_run(spec, str(CLUSTER_SPEC), run_id)[:4]:
        obj = item.objects[-1]
        assert len(obj["metadata"]["name"]) <= 63
        label = obj["metadata"]["labels"]["domainllm/run-id"]
        assert len(label) <= 63 and label != run_id and obj["metadata"]["annotations"]["domainllm/run-id"] == run_id
        assert validate_object(obj, "1.37.0").status == "valid", item.request.name


def test_an_image_without_a_ref_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    spec = load_spec(REPO / "examples" / "demo" / "spec.yaml")
    with pytest.raises(ValueError, match=r"runtime.images.worker.ref is empty: Kubernetes needs a container image"):
        render_run(spec, "spec.yaml", "demo")


def test_cli_renders_and_validates(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    done = subprocess.run([*domainllm_cmd(), "k8s", "render", "--spec", str(CLUSTER_SPEC), "--run-id", "demo", "--out", str(out),
                           "--validate"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 invalid" in done.stdout and "1 Job" in done.stdout and "1 Service" in done.stdout
    config_map = yaml.safe_load((out / "specs-configmap.yaml").read_text())
    assert set(config_map["data"]) == {"spec.k8s.yaml", "spec.yaml"}  # the spec and what it extends
    cpt = list(yaml.safe_load_all(next((out / "domain_llm").glob("*-cpt.yaml")).read_text()))
    assert [o["kind"] for o in cpt] == ["Service", "Job"]
    broken = next((out / "domain_llm").glob("*-ingest.yaml"))
    pod = yaml.safe_load(broken.read_text())
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 4}
    broken.write_text(yaml.safe_dump(pod))
    bad = subprocess.run([*domainllm_cmd(), "k8s", "validate", str(out), "--kubernetes-version", "1.33.0"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "INVALID domain_llm/" in bad.stdout and "ingest.yaml#0" in bad.stdout
    assert "spec.containers.0.resources.limits.cpu" in bad.stdout
