"""The whole loop on the embedded default, with real Airflow (scheduler, API server), real
MLflow, real vLLM (CPU build) behind the real gateway: the pipeline trains and rolls out the
first version (its stages run in this process: the scheduler's way is below); demo users ask it questions and give feedback; data_flywheel harvests that
traffic into preference pairs and its Asset event starts a training round, which retrains
DPO on them, passes the gate and rolls the new version out as a canary that is promoted."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from domainllm.artifacts import RunLayout
from domainllm.evals.registry import PRODUCTION, by_alias
from domainllm.flywheel.dataset import PreferenceDataset, dataset_root
from domainllm.serve.local import LocalDeployments
from domainllm.serve.local_gateway import LocalGateway
from domainllm.serve.vllm_server import free_port
from domainllm.spec import load_spec
from domainllm.stages.names import DOMAIN_STAGES
from domainllm.stages.runner import run_stage
from domainllm.tracking import tracking_uri
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.evals.vllm_helpers import needs_vllm

pytestmark = [pytest.mark.slow, needs_vllm]


def _spec(corpora: Path, tmp_path: Path) -> Path:
    doc = tiny_spec_doc(corpora)
    doc["base_model"]["demo"].update(hidden_size=64, intermediate_size=128)  # head size 32: what vLLM's CPU build serves
    doc["serving"] = {"enabled": True, "max_model_len": 512, "gateway_port": free_port(), "gateway": {"admin_port": free_port()}, "enforce_eager": True,
                      "rollout": {"steps": [50, 100], "min_requests": 4, "probe_requests": 6, "probe_max_tokens": 8,
                                  "step_timeout_s": 120, "max_latency_ratio": 50.0}}  # two servers share 2 cores here
    # better than the base on the domain, and no worse than the champion (a round adds a few pairs)
    doc["evals"]["gate"]["rules"] = [
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "improve", "against": ["base"]},
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "no_regression", "margin": 0.1,
         "relative": True, "against": ["champion"]}]  # fmt: skip
    doc["flywheel"] = {"min_new_pairs": 3, "sampling": {"samples_per_model": 1, "decoding": {"temperature": 1.0, "max_new_tokens": 16}}}
    return write_spec(tmp_path / "spec.yaml", doc)


def test_traffic_becomes_pairs_that_retrain_and_roll_out_a_new_version(home: Path, corpora: Path, tmp_path: Path) -> None:
    from domainllm_operators.demo_cycle import flywheel_cycle
    from domainllm_operators.local_stack import LocalStack

    spec_path = _spec(corpora, tmp_path)
    spec = load_spec(spec_path)
    for stage in DOMAIN_STAGES:  # the first version, trained and rolled out (in this process: faster)
        run_stage(spec, stage, "r1")
    layout = RunLayout(spec.artifact_root, "r1")
    stack = LocalStack()
    try:
        assert layout.read_manifest("rollout").info["result"] == "first" and by_alias(spec, PRODUCTION).version == "1"
        stack.start()
        dpo_before = layout.read_manifest("dpo").fingerprint

        cycle = flywheel_cycle(stack, str(spec_path), corpora / "perl-synopses.jsonl", questions=12, echo=lambda _: None, timeout=1200)
        assert cycle.flywheel_state == "success", stack.task_states("data_flywheel", cycle.flywheel_run)
        # triggered over REST as the UI does; what each task returned is in XCom
        xcom = stack.get(f"/api/v2/dags/data_flywheel/dagRuns/{cycle.flywheel_run}/taskInstances/harvest/xcomEntries/return_value")
        summary = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
        assert summary["stage"] == "harvest" and summary["counts"]["harvested"] == cycle.requests
        launch = stack.get(f"/api/v2/dags/data_flywheel/dagRuns/{cycle.flywheel_run}/taskInstances/harvest/xcomEntries/launch")
        assert cycle.flywheel_run_id in json.dumps(launch["value"])
        assert cycle.answered == cycle.requests, cycle.summary()  # every demo request answered by the served model
        assert cycle.training_run is not None, cycle.summary()  # says why no round started, not a 404 from the API
        assert cycle.training_state == "success", stack.task_states("domain_llm", cycle.training_run)

        # the flywheel: every answered request harvested, the repeat dropped, PII scrubbed, pairs built
        fw = RunLayout(spec.artifact_root, cycle.flywheel_run_id)
        harvest, curate, label = (fw.read_manifest(s) for s in ("harvest", "curate", "label"))
        assert harvest.counts["harvested"] == cycle.requests == 14 and harvest.counts["with_feedback"] == cycle.feedback > 0
        assert harvest.counts.get("skipped.source.rollout-probe", 0) == 0  # the first version had no canary probes
        assert curate.counts["dropped.duplicate"] >= 1
        harvested = Path(fw.stage_dir("harvest"), "rows.jsonl").read_text()
        assert "<EMAIL>" in harvested and "ann.smith@example.org" not in harvested  # scrubbed before it was logged
        dataset = PreferenceDataset(dataset_root(spec))
        version = dataset.latest()
        assert version["version"] == "v000001" and version["pairs_new"] == label.counts["pairs"] >= 3
        assert version["lineage"]["production"]["run_id"] == "r1" and dataset.trained()["version"] == "v000001"
        assert set(dataset.read().column("label_source").to_pylist()) <= {"feedback", "judge", "rules"}
        report = Path(fw.stage_dir("flywheel_report"), "report.md").read_text()
        assert "a DPO -> evals -> gate -> rollout round is triggered on run r1" in report

        # the round it triggered: DPO again on the same run, with the flywheel's pairs; the rest skipped
        round_states = stack.task_states("domain_llm", cycle.training_run)
        assert round_states["ingest"] == "skipped" and round_states["dpo"] == round_states["rollout"] == "success"
        dpo_data = layout.read_manifest("dpo_data")
        assert dpo_data.counts["flywheel_pairs"] == version["pairs_total"] and dpo_data.info["preferences_version"] == "v000001"
        assert layout.read_manifest("dpo").fingerprint != dpo_before
        rollout = layout.read_manifest("rollout")
        assert rollout.info["result"] == "promoted" and rollout.info["previous"] == "1" and rollout.info["version"] == "2"
        record = json.loads(Path(layout.stage_dir("rollout"), "rollout.json").read_text())
        assert [s["percent"] for s in record["steps"]] == [50, 100] and all(s["passed"] for s in record["steps"])
        assert by_alias(spec, PRODUCTION).version == "2"
        mlflow.set_tracking_uri(tracking_uri(spec))
        run = mlflow.get_run(rollout.mlflow_run_id)
        assert run.data.tags["domainllm.rollout"] == "promoted" and run.data.metrics["rollout.canary_percent"] == 100
        assert LocalDeployments(spec.name, spec.serving).get("stable").version == "2"
    finally:
        stack.stop()
        deployments = LocalDeployments(spec.name, spec.serving)
        for name in deployments.all():
            deployments.stop(name)
        LocalGateway(spec.name).stop()
