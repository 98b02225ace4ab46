"""`domainllm data scrub-pii INPUT OUTPUT`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import domainllm_cmd
from tests.lib.data.pii.test_labelled_benchmark import spacy_model


def test_scrub_pii_writes_placeholders_and_a_report_by_type(tmp_path: Path) -> None:
    rows = [
        {"id": "en", "text": "Contact Jane Smith at jane.smith@example.com or (555) 123-4567, version 1.2.3."},
        {"id": "zh", "text": "手机 138 1234 5678，身份证 11010519491231002X，服务器 192.168.1.20。"},
        {"id": "code", "text": 'db_password = "S3cret!pw"\nAPI_KEY = "AKIAIOSFODNN7EXAMPLE"\n'},
        {"id": "clean", "text": "Nothing to see here: HTTP 404 on 2024-01-15."},
    ]
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = subprocess.run(domainllm_cmd("data", "scrub-pii", str(src), str(out)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    texts = {r["id"]: r["text"] for r in pq.read_table(out / "part-00000.parquet").to_pylist()}
    assert texts == {
        "en": "Contact <PERSON> at <EMAIL> or <PHONE>, version 1.2.3.",  # names: the shipped English model
        "zh": "手机 <PHONE>，身份证 <CN_ID>，服务器 <IP_ADDRESS>。",
        "code": 'db_password = "<PASSWORD>"\nAPI_KEY = "<API_KEY>"\n',
        "clean": rows[3]["text"],
    }
    report = json.loads((out / "report.json").read_text())
    assert report["found"] == {"API_KEY": 1, "CN_ID": 1, "EMAIL": 1, "IP_ADDRESS": 1, "PASSWORD": 1, "PERSON": 1, "PHONE": 2}
    assert report["docs_with_pii"] == 3 and report["not_detected"] == []
    everything = proc.stdout + proc.stderr + (out / "report.json").read_text() + (out / "_manifest.json").read_text()
    for value in ("Jane Smith", "jane.smith@example.com", "138 1234 5678", "11010519491231002X", "S3cret!pw", "AKIAIOSFODNN7EXAMPLE"):
        assert value not in everything


def test_scrub_pii_with_an_ner_model_finds_names(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Yesterday Barack Obama met Angela Merkel in Berlin."}) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run(domainllm_cmd("data", "scrub-pii", str(src), str(out), "--ner-model", str(spacy_model())),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = pq.read_table(out / "part-00000.parquet").to_pylist()[0]["text"]
    assert text == "Yesterday <PERSON> met <PERSON> in Berlin."
    report = json.loads((out / "report.json").read_text())
    assert report["found"] == {"PERSON": 2} and report["not_detected"] == []


def test_names_can_be_turned_off(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Yesterday Barack Obama wrote to bob@example.org."}) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run(domainllm_cmd("data", "scrub-pii", str(src), str(out), "--no-names"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out / "part-00000.parquet").to_pylist()[0]["text"] == "Yesterday Barack Obama wrote to <EMAIL>."
    assert json.loads((out / "report.json").read_text())["not_detected"] == ["PERSON"]


def test_unknown_entities_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    proc = subprocess.run(domainllm_cmd("data", "scrub-pii", str(src), str(tmp_path / "o"), "--entities", "EMAIL,SHOE"),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "unknown entities ['SHOE']" in proc.stderr
