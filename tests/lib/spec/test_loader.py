from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from domainllm.spec import Spec, SpecError, load_spec
from domainllm.spec.loader import spec_files
from tests.conftest import REPO, domainllm_cmd, tiny_spec_doc, write_spec


def test_demo_spec_loads_with_defaults(home: Path) -> None:
    spec = load_spec(REPO / "examples" / "demo" / "spec.yaml")
    assert isinstance(spec, Spec)
    assert spec.artifact_root == str(home / "artifacts")
    assert spec.data.ingest.unicode_normalization == "NFC"
    assert spec.runtime.launcher == "local"
    assert spec.runtime.resources("base_model").memory == "8Gi"
    assert spec.runtime.resources("ingest").memory == "4Gi"  # default
    assert {s.domain for s in spec.sources} == {"domain", "general"}


def test_relative_paths_resolve_against_the_spec_folder(home: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(tmp_path, artifact_root="out")
    doc["sources"][0]["path"] = "data/perl"
    spec = load_spec(write_spec(tmp_path / "s.yaml", doc))
    assert spec.artifact_root == str(tmp_path / "out")
    assert spec.sources[0].path == str(tmp_path / "data" / "perl")


def test_object_store_uris_are_kept(home: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", tiny_spec_doc(tmp_path, artifact_root="s3://bucket/runs")))
    assert spec.artifact_root == "s3://bucket/runs"


def _error(tmp_path: Path, doc: dict) -> str:
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path / "bad.yaml", doc))
    return str(err.value)


def test_bad_enum_names_field_value_and_allowed_values(home: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(tmp_path)
    doc["sources"][1]["format"] = "jsn"
    msg = _error(tmp_path, doc)
    assert "sources[1].format" in msg
    assert "'jsn'" in msg
    for allowed in ("auto", "jsonl", "parquet", "text", "code"):
        assert allowed in msg


def test_unknown_field_lists_allowed_fields(home: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(tmp_path)
    doc["data"]["ingest"]["shard_records"] = 5
    msg = _error(tmp_path, doc)
    assert "data.ingest" in msg and "unknown field 'shard_records'" in msg
    assert "shard_max_records" in msg


def test_every_problem_is_reported_at_once(home: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(tmp_path)
    doc["data"]["ingest"]["shard_max_records"] = 0
    doc["runtime"] = {"stages": {"ingest": {"memory": "lots"}}}
    msg = _error(tmp_path, doc)
    assert "data.ingest.shard_max_records: got 0" in msg
    assert "runtime.stages.ingest.memory: got 'lots'" in msg and "Kubernetes quantity" in msg


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("name"), "name: required field is missing"),
        (lambda d: d["base_model"].update(path="/models/x"), "set exactly one of `path`"),
        (lambda d: d["base_model"]["demo"].update(corpus_sources=["nope"]), "unknown source(s) ['nope']"),
        (lambda d: d["sources"].append(dict(d["sources"][0])), "duplicate names ['perl-code']"),
        (lambda d: d["sources"][0].update(name="Perl Code"), "sources[0].name: got 'Perl Code'"),
        (lambda d: d["runtime"].update(stages={"trainn": {}}), "unknown stage(s) ['trainn']"),
        (lambda d: d["runtime"].update(launcher="slurm"), "runtime.launcher: got 'slurm'"),
        (lambda d: d["base_model"]["demo"].update(num_heads=3), "divisible by num_heads"),
        (lambda d: d.update(sources=[{**d["sources"][2]}]), "at least one source must have `domain: domain`"),
        (lambda d: d["data"].update(quality={"skip_sources": ["nope"]}), "data.quality.skip_sources: unknown source(s) ['nope']"),
        (lambda d: d["data"].update(quality={"prose": {"min_wrods": 3}}), "data.quality.prose.min_wrods: unknown field 'min_wrods'"),
        (lambda d: d["runtime"].update(stages={"eval_code": {"nodes": 2}}), "only ['cpt', 'dpo', 'sft'] run on several nodes"),
        (lambda d: d["runtime"].update(kubernetes={"namespace": "Domain_LLM"}), "is not a Kubernetes name"),
        (lambda d: d["runtime"].update(kubernetes={"secret_env": {"JUDGE-KEY": {"secret": "j", "key": "k"}}}),
         "not environment variable names: ['JUDGE-KEY']"),
        (lambda d: d["runtime"].update(kubernetes={"shm_size": "lots"}), "runtime.kubernetes.shm_size: got 'lots'"),
        (lambda d: d["runtime"].update(kubernetes={"interconnect": {"mode": "infiniband"}}),
         "runtime.kubernetes.interconnect.mode: got 'infiniband'"),
    ],
)
def test_invalid_specs_fail_with_a_fix(home: Path, tmp_path: Path, mutate, expected: str) -> None:
    doc = tiny_spec_doc(tmp_path)
    doc.setdefault("runtime", {})
    mutate(doc)
    assert expected in _error(tmp_path, doc)


def test_unset_environment_variable_is_named(home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CORPUS_ROOT", raising=False)
    doc = tiny_spec_doc(tmp_path)
    doc["sources"][0]["path"] = "${CORPUS_ROOT}/perl"
    msg = _error(tmp_path, doc)
    assert "sources[0].path: environment variable CORPUS_ROOT is not set" in msg
    monkeypatch.setenv("CORPUS_ROOT", "/data")
    assert load_spec(tmp_path / "bad.yaml").sources[0].path == "/data/perl"


def test_default_in_interpolation(home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RUNS", raising=False)
    doc = tiny_spec_doc(tmp_path, artifact_root="${RUNS:-/tmp/runs}")
    assert load_spec(write_spec(tmp_path / "s.yaml", doc)).artifact_root == "/tmp/runs"


def test_not_yaml_and_missing_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "x.yaml")
    with pytest.raises(SpecError, match="spec file not found: .*nope.yaml"):
        load_spec(tmp_path / "nope.yaml")


def test_cli_validate_exits_2_with_the_message(home: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(tmp_path)
    doc["sources"][0]["domain"] = "medical"
    path = write_spec(tmp_path / "bad.yaml", doc)
    proc = subprocess.run(domainllm_cmd("spec", "validate", str(path)), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "sources[0].domain: got 'medical'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_spec_extends_another(home: Path, tmp_path: Path) -> None:
    base = write_spec(tmp_path / "base.yaml", tiny_spec_doc(tmp_path))
    (tmp_path / "cluster").mkdir()
    over = tmp_path / "cluster" / "spec.yaml"
    over.write_text("extends: ../base.yaml\nruntime:\n  launcher: kubernetes\n  stages:\n    cpt: {gpus: 8, nodes: 2}\n"
                    "data:\n  pack: {seq_len: 128}\n")
    spec = load_spec(over)
    assert spec.runtime.launcher == "kubernetes" and spec.runtime.resources("cpt").nodes == 2
    assert spec.data.pack.seq_len == 128 and spec.data.ingest.shard_max_records == 200  # merged key by key
    assert [p.name for p in spec_files(over)] == ["spec.yaml", "base.yaml"]
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(SpecError, match="`extends` loops"):
        load_spec(loop)
    missing = tmp_path / "missing.yaml"
    missing.write_text("extends: nowhere.yaml\n")
    with pytest.raises(SpecError, match="spec file not found: .*nowhere.yaml"):
        load_spec(missing)
    assert base.exists()
