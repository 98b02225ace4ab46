"""Bad input: every valid record arrives, every bad one is quarantined with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.data.records import InputError
from domainllm.spec.data import IngestConfig
from tests.lib.data.helpers import make_source, run_ingest


def _line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def test_mixed_bad_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + _line({"id": "a", "text": "first record, after a UTF-8 BOM"})
        + b'{"id": "b", "text": "broken\n'                          # malformed JSON
        + b"\n   \n"                                                 # blank lines
        + _line({"id": "c", "body": "no text field"})                # missing text
        + _line({"id": "d", "text": 42})                             # non-string text
        + _line({"id": "e", "text": None})                           # null text
        + b'{"id": "f", "text": "caf\xe9"}\n'                        # invalid UTF-8
        + b'{"id": "g", "text": "raw \x00 NUL byte"}\n'              # raw NUL: not valid JSON
        + _line({"id": "h", "text": "escaped \u0000 NUL is removed"})
        + _line(["not", "an", "object"])
        + _line({"id": "i", "text": "   "})                          # empty after normalization
        + _line({"id": ["x"], "text": "bad id type"})
        + _line({"text": "no id: a stable one is derived", "tag": "kept"})
        + _line({"id": 7, "text": "integer id", "lang": "de"})
    )  # fmt: skip
    report, docs, rejects = run_ingest(path, tmp_path / "out")

    assert [d["id"] for d in docs][:2] == ["a", "h"]
    assert len(docs) == 4
    by_id = {d["id"]: d for d in docs}
    assert by_id["a"]["text"] == "first record, after a UTF-8 BOM"
    assert by_id["h"]["text"] == "escaped  NUL is removed"
    assert by_id["7"]["lang"] == "de"
    derived = next(d for d in docs if d["id"].startswith("src-"))
    assert json.loads(derived["metadata"])["fields"] == {"tag": "kept"}

    reasons = sorted(r["reason"] for r in rejects)
    assert reasons == sorted([
        "invalid_json", "missing_text", "text_not_string", "missing_text", "invalid_utf8",
        "invalid_json", "not_an_object", "empty_text", "invalid_id",
    ])  # fmt: skip
    assert all(r["path"] == "mixed.jsonl" and r["line"] >= 2 and r["detail"] for r in rejects)
    assert next(r for r in rejects if r["reason"] == "invalid_utf8")["raw"] == b'{"id": "f", "text": "caf\xe9"}'

    c = report.counts
    assert c["records_in"] == 13 and c["records_out"] == 4 and c["quarantined"] == 9
    assert c["blank_lines"] == 2
    assert c["quarantined.missing_text"] == 2 and c["quarantined.invalid_json"] == 2
    assert c["records_in"] == c["records_out"] + c["quarantined"]


def test_empty_files_give_no_records_and_are_counted(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.jsonl").write_bytes(b"")
    (tmp_path / "in" / "empty.txt").write_bytes(b"")
    (tmp_path / "in" / "only-blank.jsonl").write_bytes(b"\n\n")
    report, docs, rejects = run_ingest(tmp_path / "in", tmp_path / "out")
    assert docs == [] and rejects == []
    assert report.counts["empty_files"] == 1 and report.counts["blank_lines"] == 2
    assert (tmp_path / "out" / "part-00000.parquet").exists()  # an empty shard keeps the schema


def test_single_30mb_record(tmp_path: Path) -> None:
    big = ("perl -e 'print \"hello\"' # " * 1_200_000)[:30_000_000] + " café"
    path = tmp_path / "big.jsonl"
    path.write_bytes(_line({"id": "small", "text": "tiny"}) + _line({"id": "big", "text": big}) + _line({"id": "z", "text": "after"}))
    report, docs, _ = run_ingest(path, tmp_path / "out")
    assert [d["id"] for d in docs] == ["small", "big", "z"]
    assert docs[1]["text"] == big
    assert report.counts["text_bytes"] > 30_000_000


def test_record_over_the_limit_is_quarantined_without_loading_it(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_line({"id": "a", "text": "x" * 5000}) + _line({"id": "b", "text": "ok"}))
    report, docs, rejects = run_ingest(path, tmp_path / "out", IngestConfig(max_record_bytes=2048))
    assert [d["id"] for d in docs] == ["b"]
    assert rejects[0]["reason"] == "record_too_large" and rejects[0]["line"] == 1 and rejects[0]["raw"] is None


def test_text_files_nul_bytes_and_legacy_encodings(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "Latin.pm").write_bytes("# Zoë's module\npackage Latin;\n1;\n".encode("latin-1"))
    (root / "blob.bin").write_bytes(b"\x7fELF\x00\x00\x01binary")
    (root / "README").write_bytes("A BOM-prefixed\r\nREADME\r\n".encode("utf-8-sig"))
    (root / "mojibake.txt").write_text("caf\u00c3\u00a9 and na\u00c3\u00afve", encoding="utf-8")
    report, docs, rejects = run_ingest(root, tmp_path / "out", format="code")
    by_path = {json.loads(d["metadata"])["path"]: d for d in docs}
    assert by_path["Latin.pm"]["text"].startswith("# Zoë's module")
    assert by_path["Latin.pm"]["lang"] == "perl" and by_path["Latin.pm"]["kind"] == "code"
    assert by_path["README"]["text"] == "A BOM-prefixed\nREADME\n" and by_path["README"]["kind"] == "text"
    assert by_path["mojibake.txt"]["text"] == "café and naïve"
    assert "fixed_encoding" in json.loads(by_path["mojibake.txt"]["metadata"])["normalized"]
    assert [(r["path"], r["reason"]) for r in rejects] == [("blob.bin", "binary_file")]


def test_missing_input_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"input path does not exist: .*/nowhere"):
        run_ingest(tmp_path / "nowhere", tmp_path / "out")


def test_unreadable_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.jsonl").write_bytes(_line({"text": "fine"}))
    # A dangling link is unreadable for every user (root ignores permission bits).
    (root / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    src = make_source(root)
    assert src.path == str(root)
    with pytest.raises(InputError, match=r"b\.jsonl"):
        run_ingest(root, tmp_path / "out")


def test_parquet_input_streams_rows_and_quarantines_bad_ones(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b", "c"], "text": ["alpha", None, "gamma"], "score": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "in.parquet")
    _, docs, rejects = run_ingest(tmp_path / "in.parquet", tmp_path / "out")
    assert [d["id"] for d in docs] == ["a", "c"]
    assert json.loads(docs[0]["metadata"])["fields"] == {"score": 1.0}
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, "missing_text")]


def test_parquet_without_the_text_column_names_the_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "in.parquet")
    with pytest.raises(InputError, match=r"no column 'text' \(columns: \['content'\]\)"):
        run_ingest(tmp_path / "in.parquet", tmp_path / "out")


def test_gzipped_jsonl_and_shard_limits(tmp_path: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "in.jsonl.gz", "wb") as fh:
        for i in range(25):
            fh.write(_line({"id": f"r{i}", "text": f"record {i}"}))
    report, docs, _ = run_ingest(tmp_path / "in.jsonl.gz", tmp_path / "out", IngestConfig(shard_max_records=10))
    assert [d["id"] for d in docs] == [f"r{i}" for i in range(25)]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]  # fmt: skip
    assert report.counts["shards"] == 3
