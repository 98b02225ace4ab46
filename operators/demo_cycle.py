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
                   timeout: float = 3600) -> Cycle:  # fmt: skip
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

        echo("a retrieval-augmented answer through the gateway:\n" + ask_with_citations(gateway.url, spec.name, asked[0][0]))
    traffic = send(gateway.url, spec.name, asked)
    cycle = Cycle(requests=traffic.requests, feedback=traffic.feedback)
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
        cycle.training_state = stack.follow("domain_llm", cycle.training_run, timeout=timeout, echo=echo)
    return cycle
