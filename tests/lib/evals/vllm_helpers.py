"""A tiny chat model vLLM's CPU build can serve (head size 32), fitted for a few seconds to
a line of Perl so its greedy output is text (a random one emits stray bytes, which the
backends' detokenizers render differently), and the skip for machines without the serving
environment (`make test` creates it and exports its path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.serve.vllm_server import PYTHON_ENV, vllm_python

# For a tiny model as judge: JSON without free whitespace (it would pad the object with blanks).
JUDGE_SERVER_ARGS = ("--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}))

needs_vllm = pytest.mark.skipif(vllm_python() is None, reason=f"no vLLM environment: run `make serve-env` and set {PYTHON_ENV}")


def tiny_chat_model(path: Path) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from domainllm.demo.tokenizer import CHAT_TEMPLATE, train_tokenizer

    text = "sub hello { return 'world'; } my %h = (a => 1); print join(', ', @list);"
    tok = train_tokenizer([text] * 50, vocab_size=300, model_max_length=4096)
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tok.eos_token_id)  # fmt: skip
    model = LlamaForCausalLM(cfg)
    ids = torch.tensor([tok(" ".join([text] * 4))["input_ids"]])
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        model(input_ids=ids, labels=ids).loss.backward()
        optim.step()
        optim.zero_grad()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line or process title) of every live process below `pid` (a supervised server runs in a
    session of its own, so its process group is not the supervisor's)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            title = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append((int(stat.parent.name), title))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def kill_engine_once_ready(monkeypatch: pytest.MonkeyPatch, signum: int, times: int | None = None) -> list[int]:
    """Makes the vLLM servers started from now on (the first `times` of them; all by default)
    lose their model worker to `signum` as soon as they are healthy, before their first
    request: the death a kernel with an unsupported instruction causes (SIGILL) or the
    out-of-memory killer (SIGKILL). Returns the pids killed."""
    import os

    from domainllm.serve.vllm_server import VllmServer

    killed: list[int] = []
    start = VllmServer.start

    def start_then_kill(self: VllmServer, **kwargs: object) -> VllmServer:
        start(self, **kwargs)
        if times is not None and len(killed) >= times:
            return self
        procs = descendants(self.proc.pid)
        worker = [p for p, t in procs if t.startswith("VLLM::Worker")] or [p for p, t in procs if t.startswith("VLLM::EngineCore")]
        assert worker, f"no vLLM engine process in {procs}"
        os.kill(worker[0], signum)
        killed.append(worker[0])
        return self

    monkeypatch.setattr(VllmServer, "start", start_then_kill)
    return killed
