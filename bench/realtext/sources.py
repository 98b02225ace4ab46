"""Real documents from what this machine carries, cut at natural boundaries, near-duplicates removed.

Sources (each skipped when missing; `collect` reports how many files and documents each gave):

- prose_en: /usr/share/doc README/NEWS/CHANGES/*.txt/*.md/*.rst, Debian changelogs, copyright files
  (gzip read through `gzip`);
- man: man pages of /usr/share/man/man{1,3,5,8} rendered to text (`man -l`, MANWIDTH=80,
  overstrikes removed), a deterministic sample, each with a timeout; gcloud's generated pages
  (most of man1 here) a source of their own with a smaller share;
- code: Python (the project venv's site-packages), C/C++ headers (/usr/include), Perl modules,
  shell scripts, JavaScript (/usr/lib/node_modules);
- config: /etc and /usr/share *.conf/*.cfg/*.ini, YAML/TOML/INI/CFG files of site-packages;
- prose_zh: msgstrs of zh_CN/zh_TW gettext catalogs, zh_CN/zh_TW man pages, vim's Chinese
  tutors, systemd's zh_CN catalog, GnuPG's zh_CN help (scarce: other kinds make up for it).

Cutting: prose at blank-line paragraph groups, code at top-level blocks (a blank line followed by
an unindented line; Python's top-level def/class blocks are such blocks), man pages at sections,
catalogs by joining consecutive msgstrs; packed to a target length drawn per document
(log-uniform, 300-4000 characters overall), an over-long block cut at lines.

Near-duplicates among the real documents (the same license in many copyright files, shared
headers, sibling man pages) are removed before anything is planted, by a measure independent of
ours: character 5-grams after lower-casing and deleting all whitespace, datasketch MinHashLSH at
0.5 for candidates, exact Jaccard >= 0.5 to confirm; the first document of each group is kept
(documents are offered in a deterministic order), exact duplicates dropped too.
"""

from __future__ import annotations

import concurrent.futures as cf
import gzip
import hashlib
import math
import os
import random
import re
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("prose_en", "man", "code", "config", "prose_zh")
DEFAULT_MIX = {"prose_en": 0.22, "man": 0.20, "code": 0.36, "config": 0.07, "prose_zh": 0.15}
SITE_PACKAGES = Path(__file__).resolve().parents[2] / ".venv" / "lib" / "python3.11" / "site-packages"
MAX_FILE_BYTES = 2_000_000
MIN_CHARS, MAX_CHARS = 300, 4000


@dataclass(slots=True)
class Doc:
    text: str
    kind: str
    path: str
    """The source file (the unit of the tune/heldout split)."""
    origin: str
    """The source's name, e.g. `code:python`."""
    id: str = ""
    minhash: object = None


# ---------------------------------------------------------------- reading files


def read_text(path: str) -> str | None:
    """The file's text (gzip read through `gzip`), None when unreadable, binary or too large."""
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return None
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES * 4)
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if b"\x00" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def walk(roots: list[str], keep: Callable[[str, str], bool], skip_dirs: tuple[str, ...] = ()) -> list[str]:
    """Sorted regular files under `roots` for which keep(dirpath, name) holds (links not followed)."""
    out = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not d.startswith("."))
            for name in filenames:
                p = os.path.join(dirpath, name)
                if keep(dirpath, name) and os.path.isfile(p) and not os.path.islink(p):
                    out.append(p)
    return sorted(set(out))


def mo_pairs(path: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) of a gettext .mo file in file order (sorted by msgid), the header and
    empty translations left out; of plural forms the first."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if end is None:
        return []
    _, n, oorig, otrans = struct.unpack(end + "4I", data[4:20])
    out = []
    try:
        for i in range(n):
            olen, ooff = struct.unpack(end + "2I", data[oorig + 8 * i : oorig + 8 * i + 8])
            tlen, toff = struct.unpack(end + "2I", data[otrans + 8 * i : otrans + 8 * i + 8])
            msgid = data[ooff : ooff + olen].split(b"\x00")[0]
            msgstr = data[toff : toff + tlen].split(b"\x00")[0]
            if not msgid or not msgstr:
                continue
            try:
                out.append((msgid.decode("utf-8"), msgstr.decode("utf-8")))
            except UnicodeDecodeError:
                continue
    except struct.error:
        return out
    return out


def mo_strings(path: str) -> list[str]:
    """The msgstrs of a gettext .mo file in file order."""
    return [s for _, s in mo_pairs(path)]


_OVERSTRIKE = re.compile(r".\x08")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def render_man(path: str, timeout: float = 10.0) -> str | None:
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "MAN_DISABLE_SECCOMP": "1",
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}  # fmt: skip
    try:
        r = subprocess.run(["man", "-l", path], capture_output=True, timeout=timeout, env=env, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return None
    if r.returncode != 0 or not r.stdout:
        return None
    text = r.stdout.decode("utf-8", "replace")
    text = _ANSI.sub("", _OVERSTRIKE.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines())


# ---------------------------------------------------------------- cutting


def _target(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _split_long(block: str, hi: int) -> list[str]:
    """A block over `hi` characters cut into line windows (a single over-long line at `hi`)."""
    if len(block) <= hi:
        return [block]
    out, cur, n = [], [], 0
    for line in block.split("\n"):
        while len(line) > hi:
            if cur:
                out.append("\n".join(cur))
                cur, n = [], 0
            out.append(line[:hi])
            line = line[hi:]
        if cur and n + len(line) + 1 > hi:
            out.append("\n".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += len(line) + 1
    if cur:
        out.append("\n".join(cur))
    return out


def pack(blocks: list[str], rng: random.Random, lo: int = 400, hi: int = 3000, sep: str = "\n\n",
         max_chars: int = MAX_CHARS, min_chars: int = MIN_CHARS) -> list[str]:  # fmt: skip
    """Consecutive blocks joined into documents of a length drawn per document (log-uniform in
    [lo, hi]); documents under `min_chars` dropped."""
    pieces = [p for b in blocks if b.strip() for p in _split_long(b.strip("\n"), max_chars)]
    out, cur, n = [], [], 0
    target = _target(rng, lo, hi)
    for p in pieces:
        if cur and n + len(sep) + len(p) > min(target, max_chars) and n >= min_chars:
            out.append(sep.join(cur))
            cur, n = [], 0
            target = _target(rng, lo, hi)
        if cur and n + len(sep) + len(p) > max_chars:
            cur, n = [], 0  # too short yet cannot take the next block: dropped
        cur.append(p)
        n += len(p) + (len(sep) if n else 0)
    if cur and n >= min_chars:
        out.append(sep.join(cur))
    return [d for d in out if min_chars <= len(d) <= max_chars]


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if p.strip()]


_TOP_LEVEL = re.compile(r"\n[ \t]*\n(?=[^\s}\])])")


def code_blocks(text: str) -> list[str]:
    """Top-level blocks: a blank line followed by an unindented line that does not close a
    bracket (Python's def/class blocks, C/Perl/JS/shell functions and declaration groups)."""
    return [b.strip("\n") for b in _TOP_LEVEL.split(text.replace("\r\n", "\n")) if b.strip()]


_MAN_SECTION = re.compile(r"\n(?=\S[^\n]{0,40}\n)")


def man_blocks(text: str) -> list[str]:
    """Sections (a short line at column 0, e.g. `DESCRIPTION` or `描述`, starts one), the page's
    header/footer lines kept with the first and last section."""
    return [s.strip("\n") for s in _MAN_SECTION.split(text) if s.strip()]


def usable(text: str, kind: str) -> bool:
    """Enough words (CJK characters for Chinese) and mostly text."""
    if kind == "prose_zh":
        return len(re.findall(r"[\u4e00-\u9fff]", text)) >= 80
    words = re.findall(r"[^\W_]{2,}", text)
    alnum = sum(c.isalnum() for c in text)
    return len(words) >= 40 and alnum >= 0.45 * len(text.replace(" ", ""))


# ---------------------------------------------------------------- sources


@dataclass
class Source:
    name: str
    kind: str
    list_files: Callable[[], list[str]]
    cut: Callable[[str, random.Random], list[str]]
    weight: float = 1.0
    per_file: int = 6
    parallel: bool = False
    files: list[str] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)


_DOC_NAME = re.compile(
    r"^(README|NEWS|CHANGES|CHANGELOG|ChangeLog|changelog|FAQ|TODO|THANKS|AUTHORS|INTRO|HISTORY|BUGS|"
    r"COMPAT|POSIX|USAGE|NOTES|copyright)([^/]*)$|\.(txt|md|rst)(\.gz)?$"
)


def _doc_files(which: str) -> Callable[[], list[str]]:
    def keep(_: str, name: str) -> bool:
        if not _DOC_NAME.search(name) or name.endswith((".html", ".css", ".png", ".py", ".pdf")):
            return False
        is_cl = name.lower().startswith("changelog")
        if which == "changelog":
            return is_cl
        if which == "copyright":
            return name == "copyright"
        return not is_cl and name != "copyright"

    return lambda: walk(["/usr/share/doc"], keep)


def _cut_prose(path: str, rng: random.Random) -> list[str]:
    text = read_text(path)
    return pack(paragraphs(text), rng) if text else []


def _cut_code(path: str, rng: random.Random) -> list[str]:
    text = read_text(path)
    if not text:
        return []
    lines = text.split("\n")
    if sum(len(x) > 300 for x in lines) > 0.02 * len(lines):  # minified or generated
        return []
    return pack(code_blocks(text), rng, sep="\n\n")


def _cut_man(path: str, rng: random.Random) -> list[str]:
    text = render_man(path)
    return pack(man_blocks(text), rng, sep="\n\n") if text else []


def _cut_mo(path: str, rng: random.Random, lo: int = 300, hi: int = 2000) -> list[str]:
    strings = [s.strip() for s in mo_strings(path) if s.strip()]
    return pack(strings, rng, lo=lo, hi=hi, sep="\n", max_chars=hi)


def _has_shebang(dirpath: str, name: str) -> bool:
    if name.endswith(".sh"):
        return True
    if dirpath not in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        return False
    try:
        with open(os.path.join(dirpath, name), "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return bool(re.match(rb"#!\s*\S*/(env\s+)?(ba|da)?sh\b", head))


def sources() -> list[Source]:
    sp = str(SITE_PACKAGES)
    zh_files = ["/usr/share/vim/vim90/tutor/tutor.zh.utf-8", "/usr/share/vim/vim90/tutor/tutor.zh_cn.utf-8",
                "/usr/share/vim/vim90/tutor/tutor.zh_tw.utf-8", "/usr/lib/systemd/catalog/systemd.zh_CN.catalog",
                "/usr/share/gnupg/help.zh_CN.txt"]  # fmt: skip
    man_dirs = [f"/usr/share/man/man{s}" for s in "1358"]
    return [
        Source("doc:readme-news-txt", "prose_en", _doc_files("other"), _cut_prose, 1.0),
        Source("doc:changelog", "prose_en", _doc_files("changelog"), _cut_prose, 1.0, per_file=4),
        Source("doc:copyright", "prose_en", _doc_files("copyright"), _cut_prose, 0.6, per_file=4),
        # 16.6k of man1's 17.8k pages are gcloud's (generated, siblings): their own, smaller share
        Source("man:gcloud", "man", lambda: walk(man_dirs, lambda _d, n: n.startswith("gcloud")), _cut_man, 0.3,
               per_file=3, parallel=True),  # fmt: skip
        Source("man:other", "man", lambda: walk(man_dirs, lambda _d, n: not n.startswith("gcloud")), _cut_man, 1.0,
               per_file=4, parallel=True),  # fmt: skip
        Source("code:python", "code", lambda: walk([sp], lambda _d, n: n.endswith(".py"), ("__pycache__",)),
               _cut_code, 2.0, per_file=4),  # fmt: skip
        Source("code:c-headers", "code", lambda: walk(["/usr/include"], lambda _d, n: n.endswith((".h", ".hpp", ".hh")) or "." not in n),
               _cut_code, 1.0, per_file=4),  # fmt: skip
        Source("code:perl", "code", lambda: walk(["/usr/share/perl", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl",
               "/usr/lib/x86_64-linux-gnu/perl5", "/usr/lib/x86_64-linux-gnu/perl-base"], lambda _d, n: n.endswith((".pm", ".pl"))),
               _cut_code, 1.0, per_file=4),  # fmt: skip
        Source("code:shell", "code", lambda: walk(["/usr/bin", "/usr/sbin", "/usr/share", "/usr/lib", "/etc"], _has_shebang,
               ("node_modules", "locale", "man", "doc")), _cut_code, 0.7, per_file=4),  # fmt: skip
        Source("code:javascript", "code", lambda: walk(["/usr/lib/node_modules", "/usr/share/javascript"],
               lambda _d, n: n.endswith((".js", ".mjs", ".cjs")) and ".min." not in n), _cut_code, 1.0, per_file=4),  # fmt: skip
        Source("config:etc", "config", lambda: walk(["/etc"], lambda _d, n: n.endswith((".conf", ".cfg", ".ini", ".cnf"))),
               _cut_code, 1.0),  # fmt: skip
        Source("config:usr-share", "config", lambda: walk(["/usr/share"], lambda _d, n: n.endswith((".conf", ".cfg", ".ini")),
               ("locale", "man", "node_modules")), _cut_code, 1.0),  # fmt: skip
        Source("config:site-packages", "config", lambda: walk([sp], lambda _d, n: n.endswith((".yaml", ".yml", ".toml", ".ini", ".cfg")),
               ("__pycache__",)), _cut_code, 1.0),  # fmt: skip
        Source("zh:mo-zh_CN", "prose_zh", lambda: walk(["/usr/share/locale/zh_CN/LC_MESSAGES"], lambda _d, n: n.endswith(".mo")),
               _cut_mo, 1.0, per_file=40),  # fmt: skip
        Source("zh:mo-zh_TW", "prose_zh", lambda: walk(["/usr/share/locale/zh_TW/LC_MESSAGES"], lambda _d, n: n.endswith(".mo")),
               _cut_mo, 1.0, per_file=40),  # fmt: skip
        Source("zh:man-zh_CN-zh_TW", "prose_zh", lambda: walk(["/usr/share/man/zh_CN", "/usr/share/man/zh_TW"],
               lambda _d, n: True), _cut_man, 1.0, per_file=8, parallel=True),  # fmt: skip
        Source("zh:tutor-catalog-help", "prose_zh", lambda: [p for p in zh_files if os.path.isfile(p)], _cut_prose, 1.0,
               per_file=30),  # fmt: skip
    ]


def source_docs(src: Source, rng: random.Random) -> Iterator[Doc]:
    """The source's documents: files in a shuffled (seeded) order, at most `per_file` per file."""
    files = src.list_files()
    src.files = files
    order = list(files)
    rng.shuffle(order)
    seeds = [rng.getrandbits(32) for _ in order]

    def cut(i: int) -> list[str]:
        try:
            return src.cut(order[i], random.Random(seeds[i]))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the collection
            print(f"  {src.name}: {order[i]}: {exc!r}", file=sys.stderr)
            return []

    def results() -> Iterator[tuple[int, list[str]]]:
        if not src.parallel:
            for i in range(len(order)):
                yield i, cut(i)
            return
        with cf.ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
            for lo in range(0, len(order), 16):
                batch = range(lo, min(lo + 16, len(order)))
                yield from zip(batch, pool.map(cut, batch), strict=True)

    for i, texts in results():
        src.stats["files_read"] += 1
        texts = [t for t in texts if usable(t, src.kind)]
        if len(texts) > src.per_file:
            pick = sorted(random.Random(seeds[i] ^ 1).sample(range(len(texts)), src.per_file))
            texts = [texts[j] for j in pick]
        if texts:
            src.stats["files_used"] += 1
        for t in texts:
            src.stats["docs_offered"] += 1
            yield Doc(t, src.kind, order[i], src.name)


# ---------------------------------------------------------------- near-duplicate filter


_WS = re.compile(r"\s+")


def char5(text: str) -> set[bytes]:
    """Character 5-grams after lower-casing and deleting all whitespace (the filter's measure)."""
    s = _WS.sub("", text.lower())
    if len(s) < 5:
        return {s.encode()} if s else set()
    return {s[i : i + 5].encode("utf-8", "surrogatepass") for i in range(len(s) - 4)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(len(a | b), 1)


class NearDupFilter:
    """Greedy: a document is kept when no kept document is an exact duplicate or has char-5-gram
    Jaccard >= `threshold` with it (MinHashLSH candidates, exact Jaccard to confirm)."""

    def __init__(self, threshold: float = 0.5, num_perm: int = 128) -> None:
        import xxhash
        from datasketch import MinHash, MinHashLSH

        self._minhash = lambda: MinHash(num_perm=num_perm, seed=7, hashfunc=xxhash.xxh32_intdigest)
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.exact: set[bytes] = set()
        self.kept: dict[str, Doc] = {}
        self.counts: Counter = Counter()

    def offer(self, doc: Doc) -> bool:
        key = hashlib.sha1(doc.text.strip().encode("utf-8", "surrogatepass")).digest()
        if key in self.exact:
            self.counts["exact_duplicates"] += 1
            return False
        sh = char5(doc.text)
        m = self._minhash()
        m.update_batch(list(sh))
        for cand in self.lsh.query(m):
            if jaccard(sh, char5(self.kept[cand].text)) >= self.threshold:
                self.counts["near_duplicates"] += 1
                return False
        self.exact.add(key)
        doc.id = doc.id or f"k{len(self.kept):07d}"
        doc.minhash = m
        self.lsh.insert(doc.id, m)
        self.kept[doc.id] = doc
        self.counts["kept"] += 1
        return True


# ---------------------------------------------------------------- collecting


def collect(wanted: dict[str, int], seed: int = 0, log: Callable[[str], None] = print) -> tuple[dict[str, list[Doc]], list[Source]]:  # fmt: skip
    """wanted[kind] distinct documents per kind in collection order; a kind the machine has too
    few of is made up for by the others (in proportion to what they were asked for). Sources of
    a kind are drawn from in proportion to their weights."""
    rng = random.Random(seed)
    filt = NearDupFilter()
    srcs = sources()
    out: dict[str, list[Doc]] = {k: [] for k in KINDS}
    live = {k: [s for s in srcs if s.kind == k] for k in KINDS}
    gens = {s.name: source_docs(s, random.Random(rng.getrandbits(64))) for s in srcs}
    pulled: Counter = Counter()

    def pull(kind: str) -> bool:
        """One more distinct document of `kind`; False once its sources are exhausted."""
        while live[kind]:
            s = min(live[kind], key=lambda s: (pulled[s.name] / s.weight, s.name))
            doc = next(gens[s.name], None)
            if doc is None:
                live[kind].remove(s)
                continue
            pulled[s.name] += 1
            if filt.offer(doc):
                s.stats["docs_kept"] += 1
                out[kind].append(doc)
                return True
        return False

    for kind in KINDS:
        while len(out[kind]) < wanted.get(kind, 0) and pull(kind):
            pass
    goal = sum(wanted.values())
    fill = [k for k in KINDS if wanted.get(k) and len(out[k]) >= wanted[k]]
    while sum(map(len, out.values())) < goal and fill:
        k = min(fill, key=lambda k: (len(out[k]) / wanted[k], k))
        if not pull(k):
            fill.remove(k)
    for s in srcs:
        s.stats["files_found"] = len(s.files)
    for kind in KINDS:
        log(f"  {kind}: {len(out[kind])} distinct documents ({wanted.get(kind, 0)} asked for)")
    log(f"  near-duplicate filter (char 5-grams, Jaccard >= 0.5): {dict(filt.counts)}")
    return out, srcs


def source_table(srcs: list[Source]) -> str:
    rows = ["| source | kind | files found | files read | files used | docs offered | docs kept (distinct) |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in srcs:
        st = s.stats
        rows.append(f"| {s.name} | {s.kind} | {st['files_found']} | {st['files_read']} | {st['files_used']} | "
                    f"{st['docs_offered']} | {st['docs_kept']} |")  # fmt: skip
    return "\n".join(rows)
