"""Rollouts on real vLLM (CPU build) behind the real gateway: the first version takes all
traffic (its deployment outlives the object that started it and is kept when asked to serve
the same version again); a healthy canary (a LoRA adapter on the base) goes 50% -> 100% and
is promoted without a restart; a canary whose backend breaks is rolled back at its first step and the stable version keeps all traffic."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from domainllm.serve.local import LocalDeployments
from domainllm.serve.local_gateway import LocalGateway
from domainllm.serve.rollout import RolloutFailed, prober, roll_out
from domainllm.serve.traffic import LocalTraffic
from domainllm.serve.vllm_server import free_port, healthy
from domainllm.spec.serving import GatewayPolicy, LoraServing, RolloutConfig, ServingConfig
from tests.lib.evals.vllm_helpers import needs_vllm, tiny_chat_model

pytestmark = [pytest.mark.slow, needs_vllm]


def _lora_adapter(model: str, out: Path) -> str:
    """A LoRA adapter for `model`, its weights nudged off zero so it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(model), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    peft.save_pretrained(out)
    return str(out)


def test_first_promote_and_roll_back(home: Path, tmp_path: Path) -> None:
    model = tiny_chat_model(tmp_path / "m")
    cfg = RolloutConfig(steps=(50, 100), min_requests=8, probe_requests=12, step_timeout_s=60,
                         max_latency_ratio=1000.0, max_p95_latency_ratio=1000.0)  # two CPU vLLM servers share 2 cores here: a canary's first
    # requests took 26x the stable's in CI; latency verdicts are tested in test_canary.py, this tests the moves
    serving = ServingConfig(max_model_len=1024, lora=LoraServing(enabled=True, max_lora_rank=8))
    deployments = LocalDeployments("tiny", serving)
    adapter = _lora_adapter(model, tmp_path / "adapter")  # version 2: the base plus a LoRA adapter
    gateways = LocalGateway("tiny")
    gw = gateways.ensure(str(tmp_path / "logs"), port=free_port(), policy=GatewayPolicy(admin_port=free_port()))
    auth = {"Authorization": f"Bearer {gw.key('user')}"}
    probe = prober(gw.url, gw.key("platform"), "tiny", ["What does List::Util do?", "How do I sort numbers?"], max_tokens=4)
    try:
        assert roll_out("1", model, cfg=cfg, deployments=deployments, traffic=LocalTraffic(gw)).result == "first"
        first = deployments.get("stable")
        # the deployment outlives the object that started it: another process finds it from its record
        again = LocalDeployments("tiny", serving)
        assert again.get("stable") == first and again.all() == {"stable": first}
        assert again.start("stable", "1", model) == first  # the same version: kept, not restarted
        assert again.supervisor_state("stable")["state"] == "running"
        assert [m["id"] for m in httpx.get(f"{first.base_url}/models", timeout=10).json()["data"]] == ["tiny"]
        reply = httpx.post(f"{gw.url}/v1/completions", json={"model": "tiny", "prompt": "sub", "max_tokens": 2}, timeout=30, headers=auth)
        assert reply.status_code == 200 and reply.headers["x-model-version"] == "1"

        steps = []
        promoted = roll_out("2", model, cfg=cfg, deployments=deployments, traffic=LocalTraffic(gw), probe=probe, on_step=steps.append,
                            adapters={"tiny": adapter})  # fmt: skip
        assert promoted.result == "promoted" and promoted.previous == "1" and [s.percent for s in promoted.steps] == [50, 100]
        served = {m["id"] for m in httpx.get(f"{deployments.get('stable').base_url}/models", timeout=10).json()["data"]}
        assert served == {"tiny", "tiny-base"}  # clients ask for the adapter by the pipeline's name
        assert all(s.verdict.passed and s.verdict.canary.requests >= 8 for s in steps)
        stable = deployments.get("stable")
        assert stable.version == "2" and stable.port != first.port and deployments.get("canary") is None
        assert json.loads(Path(gw.routes_path).read_text())["routes"] == [
            {"name": "stable", "base_url": stable.base_url, "version": "2", "weight": 100}]

        killed: list[int] = []

        def broken(n: int) -> None:  # the canary's server dies under it (once: a step may probe more than once)
            canary = deployments.get("canary")
            if canary is not None and not killed:
                child = json.loads(Path(canary.state_path).read_text())["child_pid"]
                for group in (canary.supervisor_pid, child):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(group, signal.SIGKILL)
                killed.append(child)
            probe(n)

        with pytest.raises(RolloutFailed, match=r"(?s)version 3 rolled back at 50%: version 2 keeps all traffic.*too high") as err:
            roll_out("3", model, cfg=cfg, deployments=deployments, traffic=LocalTraffic(gw), probe=broken)
        assert len(err.value.steps) == 1 and err.value.steps[0].verdict.canary.errors > 0
        assert deployments.get("stable").version == "2" and deployments.get("canary") is None
        after = httpx.post(f"{gw.url}/v1/completions", json={"model": "tiny", "prompt": "sub", "max_tokens": 2}, timeout=30, headers=auth)
        assert after.status_code == 200 and after.headers["x-model-version"] == "2"
    finally:
        for name in deployments.all():
            deployments.stop(name)
        gateways.stop()
    assert not healthy(stable.port) and deployments.get("stable") is None  # stopped with everything it started
