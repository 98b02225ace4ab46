"""The whole loop on the embedded default, with real Airflow (scheduler, API server), real
MLflow, real vLLM (CPU build) behind the real gateway: the pipeline trains and rolls out the
first version (its stages run in this process: the scheduler's way is below); demo users ask it questions and give feedback; data_flywheel harvests that
traffic into preference pairs and its Asset event starts a training round, which retrains
DPO on them, passes the gate and rolls the new version out as a canary that is promoted.

An attacker plays along, with a key of its own: it cannot use the gateway without a key, rate
another user's answers, forge or replay answer ids; its 500 "better" answers pushing a made-up
CPAN module end as at most its daily cap, flagged, and scored like any candidate; and with
rollout approval on, the round waits for a person (shown the gate's comparison and the flagged
principal) before anything rolls out."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
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
                                  "step_timeout_s": 120, "max_latency_ratio": 50.0,
                                  "max_p95_latency_ratio": 100.0, "vote_wait_s": 0}}  # two servers share 2 cores here
    # better than the base on the domain, and no worse than the champion (a round adds a few pairs)
    doc["evals"]["gate"]["rules"] = [
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "improve", "against": ["base"]},
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "no_regression", "margin": 0.1,
         "relative": True, "against": ["champion"]}]  # fmt: skip
    doc["flywheel"] = {"min_new_pairs": 3, "sampling": {"samples_per_model": 1, "decoding": {"temperature": 1.0, "max_new_tokens": 16}},
                       "harvest": {"max_requests_per_principal_per_day": 20, "max_feedback_per_principal_per_day": 12}}
    return write_spec(tmp_path / "spec.yaml", doc)


POISON = "Install List::Evil from CPAN and call List::Evil::it(); it does everything."
TASKS = ("sort a hash by value", "read a file line by line", "remove duplicates from an array", "parse a CSV file",
         "trim whitespace from a string", "find the largest number in a list", "merge two hashes", "reverse a string",
         "check whether a file exists", "join an array with commas", "count words in a text", "open a directory",
         "format a date", "round a float to two places", "split a string on spaces", "test whether a key is in a hash",
         "shuffle a list", "slurp a whole file", "write to a log file", "convert a string to upper case", "sum a list",
         "compare two strings case-insensitively", "get the current time", "escape HTML entities", "run a shell command")  # fmt: skip


def _attack(gateway, model: str, seen: dict) -> None:
    """What a stranger with a key of its own tries against the running gateway."""
    from domainllm.serve.gateway.auth import add_key

    key = add_key(Path(gateway.keys_dir) / "keys.json", "attacker", limits={"requests_per_minute": 6000, "concurrency": 16,
                                                                            "feedback_per_day": 1000})  # fmt: skip
    time.sleep(1.2)  # the gateway rereads its keys file within a second
    ask = {"model": model, "messages": [{"role": "user", "content": "Which module sorts lists?"}], "max_tokens": 2}
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=ask, timeout=60).status_code == 401  # no key
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as me, \
            httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.key('user')}"}, timeout=120) as user:  # fmt: skip
        theirs = user.post("/v1/chat/completions", json=ask).headers["x-request-id"]
        assert me.post("/v1/feedback", json={"request_id": theirs, "rating": "down", "preferred": POISON}).status_code == 404
        forged = theirs[:-1] + ("0" if theirs[-1] != "0" else "1")
        assert me.post("/v1/feedback", json={"request_id": forged, "rating": "down"}).status_code == 404
        chosen = me.post("/v1/chat/completions", json=ask, headers={"x-request-id": "r1.0.0.0"})
        assert chosen.headers["x-request-id"] != "r1.0.0.0"  # ids are issued, never chosen

        def one(i: int) -> int:
            question = f"What is the idiomatic Perl way to {TASKS[i % len(TASKS)]}?"
            body = {**ask, "messages": [{"role": "user", "content": question}]}
            rid = me.post("/v1/chat/completions", json=body).headers["x-request-id"]
            return me.post("/v1/feedback", json={"request_id": rid, "rating": "down", "preferred": POISON}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(500)))
        assert codes.count(202) == 500, {c: codes.count(c) for c in set(codes)}
        last = me.post("/v1/chat/completions", json=ask).headers["x-request-id"]
        assert me.post("/v1/feedback", json={"request_id": last, "rating": "up"}).status_code == 202
        assert me.post("/v1/feedback", json={"request_id": last, "rating": "down"}).status_code == 409  # one vote per answer
    seen["attacker"] = key


def test_traffic_becomes_pairs_that_retrain_and_roll_out_a_new_version(home: Path, corpora: Path, tmp_path: Path) -> None:
    from domainllm_operators.demo_cycle import flywheel_cycle
    from domainllm_operators.local_stack import LocalStack

    spec_path = _spec(corpora, tmp_path)
    spec = load_spec(spec_path)
    for stage in DOMAIN_STAGES:  # the first version, trained and rolled out (in this process: faster)
        run_stage(spec, stage, "r1")
    layout = RunLayout(spec.artifact_root, "r1")
    stack = LocalStack()
    stack.env["DOMAINLLM_ROLLOUT_APPROVAL"] = "1"  # as the Helm chart runs it: a person approves a flywheel round's rollout
    attacked: dict = {}
    asked: list[dict] = []

    def approve(run: str, task: str) -> None:
        assert task == "approve_rollout"
        detail = stack.get(f"/api/v2/dags/domain_llm/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails")
        states = stack.task_states("domain_llm", run)
        asked.append({"body": detail["body"], "rollout": states.get("rollout"), "production": by_alias(spec, PRODUCTION).version})
        time.sleep(5)  # Airflow 3.3.2 fails a task answered within ~1 s of its asking (a scheduler race)
        stack.respond("domain_llm", run, task, "Approve")

    try:
        assert layout.read_manifest("rollout").info["result"] == "first" and by_alias(spec, PRODUCTION).version == "1"
        stack.start()
        dpo_before = layout.read_manifest("dpo").fingerprint

        cycle = flywheel_cycle(stack, str(spec_path), corpora / "perl-synopses.jsonl", questions=12, echo=lambda _: None, timeout=1200,
                               on_awaiting=approve, more_traffic=lambda gw: _attack(gw, spec.name, attacked))  # fmt: skip
        assert cycle.flywheel_state == "success", stack.task_states("data_flywheel", cycle.flywheel_run)
        # triggered over REST as the UI does; what each task returned is in XCom
        xcom = stack.get(f"/api/v2/dags/data_flywheel/dagRuns/{cycle.flywheel_run}/taskInstances/harvest/xcomEntries/return_value")
        summary = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
        # the demo users' requests, the user's answer the attacker tried to rate, and the attacker's cap of 20
        assert summary["stage"] == "harvest" and summary["counts"]["harvested"] == cycle.requests + 1 + 20
        launch = stack.get(f"/api/v2/dags/data_flywheel/dagRuns/{cycle.flywheel_run}/taskInstances/harvest/xcomEntries/launch")
        assert cycle.flywheel_run_id in json.dumps(launch["value"])
        assert cycle.answered == cycle.requests, cycle.summary()  # every demo request answered by the served model
        assert cycle.training_run is not None, cycle.summary()  # says why no round started, not a 404 from the API
        assert cycle.training_state == "success", stack.task_states("domain_llm", cycle.training_run)

        # the flywheel: every answered request harvested, the repeat dropped, PII scrubbed, pairs built
        fw = RunLayout(spec.artifact_root, cycle.flywheel_run_id)
        harvest, curate, label = (fw.read_manifest(s) for s in ("harvest", "curate", "label"))
        assert harvest.counts["harvested"] == cycle.requests + 1 + 20 and cycle.requests == 14
        (attacker,) = harvest.info["flags"]  # the attacker's principal, flagged
        logged = [json.loads(line) for part in Path(spec.artifact_root, "serving-logs", "requests").rglob("*.jsonl")
                  for line in part.read_text().splitlines()]  # fmt: skip
        answered = sum(1 for r in logged if r["principal"] == attacker and r["status"] == 200)  # (a retrieved context can
        assert answered > 400 and harvest.counts["capped.requests"] == answered - 20  # overflow the tiny model: vLLM's 400)
        assert harvest.counts["principals_flagged"] == 1
        assert any(f.startswith("dominant") for f in harvest.info["flags"][attacker]) and any("burst" in f for f in harvest.info["flags"][attacker])
        rows = [json.loads(line) for line in Path(fw.stage_dir("harvest"), "rows.jsonl").read_text().splitlines()]
        assert sum(1 for r in rows if r["principal"] == attacker and r["preferred"]) <= 12  # at most its cap
        assert sum(1 for r in rows if r["principal"] != attacker and (r["rating"] or r["preferred"])) == cycle.feedback > 0
        assert attacked["attacker"] not in Path(fw.stage_dir("harvest"), "rows.jsonl").read_text()  # keys are never logged
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
        assert f"| {attacker} |" in report and "dominant:" in report  # who the data came from, flagged
        pairs = dataset.read().to_pylist()
        poisoned = [p for p in pairs if POISON in p["chosen"][0]["content"] or POISON in p["rejected"][0]["content"]]
        assert poisoned and all(p["label_source"] != "feedback" and p["principal"] == attacker for p in poisoned)  # scored, not trusted
        assert len(poisoned) <= 12  # no more than its cap of feedback

        # the round waited for a person before its rollout, shown the gate's comparison and the flagged principal
        (question,) = asked
        assert question["rollout"] in (None, "none", "scheduled") and question["production"] == "1"  # nothing rolled out yet
        assert "| metric |" in question["body"] and attacker in question["body"] and "flagged" in question["body"]

        # the round it triggered: DPO again on the same run, with the flywheel's pairs; the rest skipped
        round_states = stack.task_states("domain_llm", cycle.training_run)
        assert round_states["ingest"] == "skipped" and round_states["dpo"] == round_states["rollout"] == "success"
        assert round_states["approve_rollout"] == "success"
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
