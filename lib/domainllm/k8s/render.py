"""Everything a run would create on a cluster, built by the same code the launcher uses:
one pod per task (each shard of a sharded stage its own pod), a job for each multi-node
training stage, and the specs ConfigMap the pods read the spec from. For review by a
platform team (`domainllm k8s render`) and for validation (`domainllm k8s validate`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from domainllm.k8s.jobs import MAX_JOB_NAME, training_objects
from domainllm.k8s.names import object_name
from domainllm.k8s.pod import PodTarget, stage_pod
from domainllm.launch import LaunchRequest, run_control_request, stage_request
from domainllm.spec import Spec
from domainllm.stages.names import DOMAIN_STAGES, FLYWHEEL_STAGES, SHARDED_STAGES


@dataclass(frozen=True)
class Rendered:
    dag: str
    request: LaunchRequest
    objects: list[dict[str, Any]]


def is_multi_node(request: LaunchRequest) -> bool:
    return request.resources.nodes > 1


def launch_name(request: LaunchRequest, suffix: str) -> str:
    """Pod or job name: pipeline, step and run, readable, unique by `suffix`."""
    limit = MAX_JOB_NAME if is_multi_node(request) else 63
    return object_name(request.labels.get("domainllm/pipeline", ""), request.name, request.run_id, max_len=limit, suffix=suffix)


def objects_for(request: LaunchRequest, target: PodTarget, name: str) -> list[dict[str, Any]]:
    """What one launch creates, in creation order."""
    if is_multi_node(request):
        return training_objects(request, target, name)
    return [stage_pod(request, target, name)]


def _stable_suffix(request: LaunchRequest) -> str:
    return hashlib.sha1(f"{request.run_id}/{request.name}".encode()).hexdigest()[:5]


def run_requests(spec: Spec, spec_path: str, domain_run: str) -> list[tuple[str, LaunchRequest]]:
    """(DAG, request) for every launch of a run of both DAGs, in DAG order (the flywheel's
    run as `flywheel-<run_id>`)."""
    out: list[tuple[str, LaunchRequest]] = []
    for dag, stages, run_id in (("domain_llm", DOMAIN_STAGES, domain_run), ("data_flywheel", FLYWHEEL_STAGES,
                                                                            f"flywheel-{domain_run}")):  # fmt: skip
        out.append((dag, run_control_request(spec, spec_path, "start", run_id)))
        for stage in stages:
            if stage in SHARDED_STAGES:
                out += [(dag, stage_request(spec, spec_path, stage, run_id, shard=i)) for i in range(spec.data.shards)]
                out.append((dag, stage_request(spec, spec_path, stage, run_id, reuse_shards=True)))
            else:
                out.append((dag, stage_request(spec, spec_path, stage, run_id)))
        out.append((dag, run_control_request(spec, spec_path, "finish", run_id, "FINISHED")))
    return out


def render_run(spec: Spec, spec_path: str, run_id: str, *, mlflow_run_id: str | None = None) -> list[Rendered]:
    target = PodTarget(spec.runtime.kubernetes, Path(spec_path).name, mlflow_run_id)
    return [Rendered(dag, req, objects_for(req, target, launch_name(req, _stable_suffix(req))))
            for dag, req in run_requests(spec, spec_path, run_id)]  # fmt: skip


def specs_config_map(spec: Spec, files: list[Path]) -> dict[str, Any]:
    """The ConfigMap the pods read specs from: the spec file and the files it extends."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec.runtime.kubernetes.spec_config_map, "namespace": spec.runtime.kubernetes.namespace,
                     "labels": {"app.kubernetes.io/name": "domainllm", "app.kubernetes.io/component": "specs"}},
        "data": {f.name: f.read_text(encoding="utf-8") for f in files},
    }  # fmt: skip


def write(rendered: list[Rendered], config_map: dict[str, Any], out: Path) -> list[Path]:
    """One YAML file per launch under `<out>/<dag>/`, numbered in DAG order, plus the ConfigMap."""
    written = []
    out.mkdir(parents=True, exist_ok=True)
    path = out / "specs-configmap.yaml"
    path.write_text(yaml.safe_dump(config_map, sort_keys=False), encoding="utf-8")
    written.append(path)
    counters: dict[str, int] = {}
    for item in rendered:
        n = counters[item.dag] = counters.get(item.dag, 0) + 1
        path = out / item.dag / f"{n:02d}-{item.request.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(item.objects, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
