"""The versioned preference dataset: versions stack, a retried run gets its version back,
pending pairs count from the last training round, lineage is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.flywheel.dataset import PreferenceDataset
from domainllm.flywheel.label import pair_id


def _pair(i: int) -> dict:
    prompt = [{"role": "user", "content": f"question {i}"}]
    return {"id": pair_id(prompt, f"good {i}", f"bad {i}"), "prompt": prompt, "chosen": [{"role": "assistant", "content": f"good {i}"}],
            "rejected": [{"role": "assistant", "content": f"bad {i}"}], "margin": 0.5, "label_source": "rules",
            "chosen_model": "a@1", "rejected_model": "b@2", "request_id": f"r{i}", "prompt_hash": f"h{i}"}  # fmt: skip


def test_versions_stack_and_retries_do_not_append_twice(tmp_path: Path) -> None:
    ds = PreferenceDataset(str(tmp_path / "prefs"))
    assert ds.latest() is None and ds.pending() == 0 and ds.read().num_rows == 0
    v1 = ds.append([_pair(1), _pair(2)], run_id="flywheel-a", lineage={"window": {"start": "s", "end": "e"}})
    assert ds.append([_pair(2), _pair(1)], run_id="flywheel-a", lineage={}) == v1  # the same run, retried
    v2 = ds.append([_pair(3)], run_id="flywheel-b", lineage={"window": {"start": "e", "end": "f"}})
    assert (v1["version"], v2["version"], v2["parent"], v2["pairs_total"]) == ("v000001", "v000002", "v000001", 3)
    assert ds.read().column("id").to_pylist() == [_pair(1)["id"], _pair(2)["id"], _pair(3)["id"]]
    assert ds.read("v000001").num_rows == 2 and ds.read().column("version").to_pylist() == ["v000001", "v000001", "v000002"]
    assert ds.prompt_texts() == ["question 1", "question 2", "question 3"]
    assert ds.versions()[0]["lineage"] == {"window": {"start": "s", "end": "e"}}
    with pytest.raises(KeyError, match="no version v000009"):
        ds.read("v000009")

    assert ds.pending() == 3
    ds.mark_trained("v000002", "flywheel-b")
    assert ds.pending() == 0
    ds.append([], run_id="flywheel-c", lineage={})  # an empty night is on record too
    ds.append([_pair(4)], run_id="flywheel-d", lineage={})
    assert ds.pending() == 1 and ds.latest()["version"] == "v000004"


def test_a_version_without_its_record_does_not_exist(tmp_path: Path) -> None:
    ds = PreferenceDataset(str(tmp_path / "prefs"))
    ds.append([_pair(1)], run_id="r1", lineage={})
    (tmp_path / "prefs" / "parts" / "v000002.parquet").write_bytes(b"half a file")  # killed before its record was written
    assert ds.latest()["version"] == "v000001" and ds.read().num_rows == 1
    assert ds.append([_pair(2)], run_id="r2", lineage={})["version"] == "v000002" and ds.read().num_rows == 2
