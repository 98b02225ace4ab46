"""Reference answers scored by token F1, and the retrieving generator: each prompt gets the
knowledge base's chunks (the gateway's own augmentation) before the model answers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from domainllm.evals.qa import token_f1
from domainllm.evals.rag import RetrievingGenerator, augmenter_for
from domainllm.spec.evals import Decoding


def test_token_f1_by_hand() -> None:
    assert token_f1("The sort function sorts a list", "sort sorts the list") == pytest.approx(2 * (3 / 4) * (3 / 3) / (3 / 4 + 1))
    assert token_f1("Use open(my $fh, '<', $path)", "use open my $fh $path") == 1.0
    assert token_f1("nothing alike", "sort sorts") == 0.0 and token_f1("", "") == 1.0 and token_f1("", "x") == 0.0


class Echo:
    name = "echo"

    def __init__(self) -> None:
        self.seen: list = []

    def __call__(self, prompts, decoding):
        self.seen.extend(prompts)
        return [["answer"] * decoding.n for _ in prompts]


def test_prompts_get_the_knowledge_base_first(tmp_path: Path) -> None:
    from domainllm.knowledge.embedding import Embedder
    from domainllm.knowledge.lance_store import LanceStore
    from domainllm.knowledge.store import chunk_schema
    from domainllm.spec.knowledge import BUILTIN_EMBEDDING

    embedder = Embedder(BUILTIN_EMBEDDING)
    texts = ["chomp removes the trailing newline from a string.", "HTTPConnection sends HTTP requests."]
    batch = pa.RecordBatch.from_pydict({
        "chunk_id": ["c:0", "h:0"], "doc_id": ["c", "h"], "source": ["perl-docs", "python"], "title": ["perlfunc.pod", "client.py"],
        "chunk_index": [0, 0], "start_char": [0, 0], "end_char": [50, 35], "text": texts,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(embedder.encode(texts).reshape(-1)), embedder.dims)}, schema=chunk_schema(embedder.dims))  # fmt: skip
    ref = LanceStore(str(tmp_path / "kb"), "kb").write("r", [batch], chunk_schema(embedder.dims))
    inner = Echo()
    policy = {"k": 1, "mode": "context", "template": "Context:\n{context}", "min_score": -1.0, "max_chars": 500}
    generate = RetrievingGenerator(inner, augmenter_for({"store": ref, "embedding": {"path": embedder.path}}, policy))
    out = generate([[{"role": "user", "content": "How do I remove a newline in Perl?"}], "def fetch(url):"], Decoding(max_new_tokens=4))
    assert out == [["answer"], ["answer"]] and generate.name == "echo_rag"
    chat, code = inner.seen
    assert chat[0] == {"role": "system", "content": "Context:\n[1] perlfunc.pod\nchomp removes the trailing newline from a string."}
    assert chat[1] == {"role": "user", "content": "How do I remove a newline in Perl?"}
    assert code.startswith("Context:\n[1] client.py\nHTTPConnection") and code.endswith("def fetch(url):")
