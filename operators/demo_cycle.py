"""One turn of the data flywheel on the local stack, as the demo and the end-to-end test run
it: demo users ask the served model questions through the gateway and give feedback; the
data_flywheel DAG runs over that period; when it gathered enough pairs, its Asset event
starts a domain_llm training round (DPO -> evals -> gate -> rollout), followed to the end."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from domainllm_operators.local_stack import LocalStack


@dataclass
class Cycle:
    requests: int = 0
    answered: int = 0
    feedback: int = 0
    flywheel_run: str = ""
    flywheel_state: str = ""
    flywheel_run_id: str = ""
    training_run: str | None = None
    training_state: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.flywheel_state == "success" and self.training_state in (None, "success")

    def summary(self) -> str:
        lines = [f"\nflywheel cycle: {self.requests} demo requests ({self.feedback} with feedback) -> data_flywheel "
                 f"{self.flywheel_state} (artifacts run {self.flywheel_run_id})"]  # fmt: skip
        lines.append(f"  training round {self.training_run}: {self.training_state}" if self.training_run
                     else "  no training round triggered (not enough new pairs)")  # fmt: skip
        return "\n".join(lines + [f"  {n}" for n in self.notes])


def flywheel_cycle(stack: LocalStack, spec_path: str, synopses: Path, *, questions: int = 24, echo=print,
                   timeout: float = 3600, on_awaiting=None, more_traffic=None) -> Cycle:  # fmt: skip
    """Demo users' traffic, then `more_traffic(gateway)` (tests: an attacker), then the
    data_flywheel run over that period and the training round it starts; `on_awaiting(run,
    task)` answers a task that waits for a person (the rollout approval)."""
    from domainllm.demo.traffic import questions as demo_questions
    from domainllm.demo.traffic import send
    from domainllm.flywheel.window import window_run_id
    from domainllm.serve.local_gateway import LocalGateway
    from domainllm.spec import load_spec

    spec = load_spec(spec_path)
    gateway = LocalGateway(spec.name).get()
    if gateway is None:
        raise RuntimeError(f"nothing serves {spec.name}: the rollout stage starts the gateway (serving.enabled)")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    echo(f"\ndemo users ask {gateway.url}/v1 (model {spec.name!r}) ...")
    asked = demo_questions(synopses, questions)
    if asked:  # what a user sees: a retrieval-augmented answer with its citations
        from domainllm.demo.traffic import ask_with_citations

        echo("a retrieval-augmented answer through the gateway:\n" + ask_with_citations(gateway.url, spec.name, asked[0][0],
                                                                                           api_key=gateway.key("platform")))
    traffic = send(gateway.url, spec.name, asked, api_key=gateway.key("user"))
    cycle = Cycle(requests=traffic.requests, answered=traffic.answered, feedback=traffic.feedback)
    if more_traffic is not None:
        more_traffic(gateway)
    if traffic.answered < traffic.requests:
        cycle.notes.append(f"{traffic.requests - traffic.answered} of {traffic.requests} demo requests were not answered "
                           f"(the gateway's log: {gateway.log_path})")  # fmt: skip
    time.sleep(2)  # the gateway's log writer flushes every 0.5 s
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    cycle.flywheel_run_id = window_run_id(window)
    after = dt.datetime.now(dt.UTC).isoformat()
    stack.unpause("domain_llm")  # before the flywheel runs: a paused DAG takes no Asset events
    cycle.flywheel_run = stack.trigger("data_flywheel", {"spec": spec_path, "start": start.isoformat(), "end": end.isoformat()})
    echo(f"triggered data_flywheel, Airflow run {cycle.flywheel_run}; following it:")
    cycle.flywheel_state = stack.follow("data_flywheel", cycle.flywheel_run, timeout=timeout, echo=echo)
    states = stack.task_states("data_flywheel", cycle.flywheel_run)
    if cycle.flywheel_state == "success" and states.get("trigger_training") == "success":
        cycle.training_run = stack.triggered_run("domain_llm", after)
        echo(f"the flywheel's Asset event started domain_llm run {cycle.training_run}; following it:")
        cycle.training_state = stack.follow("domain_llm", cycle.training_run, timeout=timeout, echo=echo,
                                            on_awaiting=(lambda task: on_awaiting(cycle.training_run, task)) if on_awaiting else None)  # fmt: skip
    else:
        cycle.notes.append(why_no_round(spec, cycle.flywheel_run_id, states))
    return cycle


def why_no_round(spec, flywheel_run_id: str, states: dict[str, str | None]) -> str:
    """Why data_flywheel started no training round: its task states and the pairs it had."""
    from domainllm.artifacts import RunLayout

    said = f"no training round: data_flywheel's trigger_training is {states.get('trigger_training')}"
    prefs = RunLayout(spec.artifact_root, flywheel_run_id).read_manifest("preferences")
    if prefs is None:
        return f"{said}; its preferences stage left no manifest (task states: {states})"
    return (f"{said}; {prefs.counts.get('pending', 0)} pairs since the last round, {spec.flywheel.min_new_pairs} needed "
            f"(flywheel.min_new_pairs); {prefs.counts.get('pairs_new', 0)} new from this window")


def quantized_summary(spec_path: str, run_id: str) -> str:
    """Which quantized variants of the run this machine exported and its vLLM serves, and why
    not the others (from the quantize and eval_quantized manifests)."""
    from domainllm.artifacts import RunLayout
    from domainllm.capabilities.machine import describe
    from domainllm.spec import load_spec

    spec = load_spec(spec_path)
    layout = RunLayout(spec.artifact_root, run_id)
    exported, scored = layout.read_manifest("quantize"), layout.read_manifest("eval_quantized")
    if exported is None or not exported.info.get("enabled"):
        return "quantized variants: none (quantize.enabled is off, or the stage did not run)"
    lines = [f"quantized variants on this machine ({describe()}):"]
    checks = scored.info.get("serve_checks", {}) if scored is not None else {}
    for name, variant in exported.info["variants"].items():
        if variant["status"] != "ok":
            lines.append(f"  {name:<14} not exported: {variant.get('reason', variant['status'])}")
        elif name in checks:
            check = checks[name]
            verdict = {"ok": "vLLM serves it", "failed": "vLLM cannot serve it", "skipped": "not checked"}[check["status"]]
            lines.append(f"  {name:<14} {verdict}" + (f": {check['reason']}" if check.get("reason") else ""))
        else:
            lines.append(f"  {name:<14} exported ({variant['format']}: for llama.cpp/ollama, not vLLM)")
    return "\n".join(lines)
