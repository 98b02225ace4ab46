"""Demo corpora from files every machine of ours has: Perl's core modules and POD (the
domain) and Python's standard library (the general corpus)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

log = logging.getLogger(__name__)

_PERL_SUFFIXES = (".pm", ".pl", ".pod")
_PY_SKIP = re.compile(r"(^|/)(test|tests|idlelib|lib2to3|site-packages|ensurepip|turtledemo|__pycache__)(/|$)")
_SYNOPSIS = re.compile(r"^=head1\s+NAME\s*\n+(.+?)\n.*?^=head1\s+SYNOPSIS\s*\n(.*?)(?=^=head1|\Z)", re.S | re.M)


def perl_lib_dirs() -> list[Path]:
    try:
        out = subprocess.run(
            ["perl", "-MConfig", "-e", "print qq($Config{privlib}\\n$Config{archlib}\\n)"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"the demo's domain corpus needs `perl` on PATH ({exc})") from None
    return [Path(p).resolve() for p in out.split() if Path(p).is_dir()]


def _copy_tree(src_root: Path, dest: Path, keep, max_bytes: int) -> tuple[int, int]:
    files, total = 0, 0
    for dirpath, dirnames, filenames in os.walk(src_root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            src = Path(dirpath) / name
            rel = src.relative_to(src_root).as_posix()
            if not keep(rel):
                continue
            size = src.stat().st_size
            if total + size > max_bytes:
                return files, total
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
            files, total = files + 1, total + size
    return files, total


def build_corpora(out: Path, *, max_domain_mb: float = 12.0, max_general_mb: float = 6.0) -> dict[str, object]:
    """Writes `out/perl/` (modules and POD), `out/python/` (stdlib sources) and
    `out/perl-synopses.jsonl` (module synopses, plus a few malformed lines on purpose so
    the demo shows the quarantine) and `out/evals/perl-usage.jsonl` (an evaluation set of
    usage examples taken from every 25th synopsis: the training data holds them, so the
    decontamination stage has something to remove) and `out/evals/kb-queries.jsonl` (a labelled
    retrieval set: a module's one-line description as the query, its synopsis as the answer). Deterministic for a given machine image; when `out`
    already holds corpora built with the same limits it is left untouched, so source
    fingerprints (and therefore the pipeline's stages) stay up to date."""
    marker = out / "_corpora.json"
    params = {"max_domain_mb": max_domain_mb, "max_general_mb": max_general_mb, "layout": 3}
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous.get("params") == params:
            log.info("demo corpora in %s are up to date", out)
            return previous["summary"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    summary: dict[str, object] = {}

    domain_budget = int(max_domain_mb * 1e6)
    n, size = 0, 0
    for lib in perl_lib_dirs():
        got = _copy_tree(
            lib, out / "perl" / lib.name,
            lambda rel: rel.endswith(_PERL_SUFFIXES) and not rel.startswith("unicore/"),
            domain_budget - size,
        )  # fmt: skip
        n, size = n + got[0], size + got[1]
    summary["perl"] = {"files": n, "bytes": size}

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    got = _copy_tree(
        stdlib, out / "python", lambda rel: rel.endswith(".py") and not _PY_SKIP.search(rel),
        int(max_general_mb * 1e6),
    )  # fmt: skip
    summary["python"] = {"files": got[0], "bytes": got[1]}

    records = 0
    evals: list[dict] = []
    queries: list[dict] = []
    with open(out / "perl-synopses.jsonl", "wb") as fh:
        for pm in sorted((out / "perl").rglob("*.pm")):
            match = _SYNOPSIS.search(pm.read_text(encoding="utf-8", errors="replace"))
            if not match:
                continue
            name, _, about = (part.strip() for part in match.group(1).partition(" - "))
            if records % 7 == 0 and len(about.split()) >= 4 and len(queries) < 40:
                queries.append({"query": about, "relevant": [f"synopsis:{name}"]})
            text = f"{match.group(1).strip()}\n\nSYNOPSIS\n\n{match.group(2).strip()}\n"
            row = {"id": f"synopsis:{name}", "text": text, "module": name, "lang": "en"}
            fh.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
            records += 1
            usage = match.group(2).strip()
            if records % 25 == 0 and len(usage.split()) >= 20:
                evals.append({"id": f"usage:{name}", "prompt": f"Show how to use the Perl module {name}.",
                              "answer": usage})  # fmt: skip
        # Deliberately bad lines: the demo's quarantine shows what happens to them.
        fh.write(b'{"id": "broken-json", "text": "unterminated\n')
        fh.write(b'{"id": "no-text", "body": "the text field is missing"}\n')
        fh.write(b'{"id": "bad-utf8", "text": "caf\xe9 au lait"}\n')
        fh.write(b"\n")
    summary["perl-synopses"] = {"records": records, "bad_lines": 3}
    (out / "evals").mkdir()
    with open(out / "evals" / "perl-usage.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in evals)
    with open(out / "evals" / "kb-queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    summary["evals"] = {"perl-usage": len(evals), "kb-queries": len(queries)}
    marker.write_text(json.dumps({"params": params, "summary": summary}, sort_keys=True))
    log.info("demo corpora in %s: %s", out, summary)
    return summary
