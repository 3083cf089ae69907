#!/usr/bin/env python
"""Build a second near-duplicate benchmark set, with a web-crawl-like edit model unlike ../shared/data/dedup's.

The shared set (../shared/data/README.md, "dedup/") plants word-level edits: words substituted, deleted or
inserted at rates, paragraphs reordered, boilerplate added. This set plants the edits a crawl or a scan makes:

* ``typo@r``: character noise, each letter with probability r (0.01, 0.03, 0.05) swapped with the next letter,
  dropped, doubled or replaced by an OCR confusion (l->1, o->0, m->rn, e->c, ...).
* ``sentence_delete@r``: that share (0.1, 0.25) of the sentences / lines removed (docs with >= 5 of them).
* ``sentence_duplicate@r``: that share (0.1, 0.3) of the sentences / lines repeated right after themselves.
* ``truncate@r``: only the prefix holding that share (0.9, 0.75) of the words kept.
* ``concat_other@r``: a run of words of another pool doc (not in this set), as long as that share (0.25, 0.5) of
  the original's words, appended or prepended: a near-duplicate by containment.
* ``numbers_dates``: every digit run replaced by random digits of the same length, month and weekday names
  changed, a "Posted on <date> at <time>" line added (docs with >= 3 numbers).
* ``case_whitespace``: case and spacing only (lower-cased, upper-cased or title-cased lines, line breaks joined
  or doubled, spaces doubled): exact dedup's default normalisation (lower + collapse whitespace) catches them.
* ``punctuation``: punctuation swapped between ``, ; : . ! ?``, quotes changed, plus some case and spacing
  changes; the words are the same, so only punctuation-stripping normalisation catches them exactly.
* ``mixed:A+B``: two of the above (typo@0.01+truncate@0.9, sentence_delete@0.1+numbers_dates,
  punctuation+concat_other@0.25, sentence_duplicate@0.1+typo@0.01).

Originals: 20,000 docs of ../shared/data/pool-en/pool.parquet with >= 50 words (words = ``re.findall(r"\\w+",
text.lower())``), drawn with another seed and another scheme than the shared set: tech_docs capped at 30%
(6,000), the other 14,000 drawn uniformly from the other domains (so large domains are not capped at 25% and
small ones are not taken whole). Each original is used for at most one planted copy.

Output, the shared set's schema (so bench/bench_dedup.py's scoring reads it unchanged): ``docs.parquet`` (id, text,
domain; rows shuffled, neutral ids ``deNNNNNN``), ``pairs.parquet`` (dup_id, orig_id, edit_kind, edit_rate,
jaccard_5gram: exact Jaccard of the word 5-gram sets), ``natural_pairs.parquet`` (id_a, id_b, jaccard_5gram: every
pair of originals with 5-gram Jaccard >= 0.5, found exactly by a prefix-filtering set-similarity join and verified
on the 5-gram sets, no sampling), plus ``manifest.json`` (counts, median Jaccard per edit, and the number of pairs
with Jaccard >= 0.5 that the planted and natural pairs do not explain, expected 0).

Reproduce (about 15 seconds on one core, 1.2 GB peak; deterministic for a given --seed):

    python bench/build_dedup_edits.py                    # -> /tmp/dedup_edits
    python bench/build_dedup_edits.py --out DIR --seed 11
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_POOL = HERE.parent.parent / "shared" / "data" / "pool-en" / "pool.parquet"
WORD_RE = re.compile(r"\w+")
NGRAM = 5
NATURAL_MIN_JACCARD = 0.5

# (edit kind, rate or None, how many planted copies): 2,000 in all
PLAN: list[tuple[str, float | None, int]] = [
    ("typo", 0.01, 150), ("typo", 0.03, 150), ("typo", 0.05, 150),
    ("sentence_delete", 0.1, 125), ("sentence_delete", 0.25, 125),
    ("sentence_duplicate", 0.1, 100), ("sentence_duplicate", 0.3, 100),
    ("truncate", 0.9, 125), ("truncate", 0.75, 125),
    ("concat_other", 0.25, 125), ("concat_other", 0.5, 125),
    ("numbers_dates", None, 100), ("case_whitespace", None, 100), ("punctuation", None, 100),
    ("mixed:typo+truncate", None, 75), ("mixed:sentence_delete+numbers_dates", None, 75),
    ("mixed:punctuation+concat_other", None, 75), ("mixed:sentence_duplicate+typo", None, 75),
]
MIXES = {
    "mixed:typo+truncate": [("typo", 0.01), ("truncate", 0.9)],
    "mixed:sentence_delete+numbers_dates": [("sentence_delete", 0.1), ("numbers_dates", None)],
    "mixed:punctuation+concat_other": [("punctuation", None), ("concat_other", 0.25)],
    "mixed:sentence_duplicate+typo": [("sentence_duplicate", 0.1), ("typo", 0.01)],
}
OCR = {"l": "1", "i": "l", "o": "0", "O": "0", "e": "c", "c": "e", "m": "rn", "w": "vv", "d": "cl", "h": "b",
       "n": "h", "S": "5", "B": "8", "I": "l", "a": "o", "u": "v"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH_RE = re.compile(r"\b(" + "|".join(MONTHS + DAYS) + r")\b")
DIGITS_RE = re.compile(r"\d+")
UNIT_RE = re.compile(r"(?<=[.!?])(?=\s)|(?<=\n)")  # cuts after a sentence's . ! ? (before the space) or a line
PUNCT = ",;:.!?"


# --------------------------------------------------------------------------------------------------- shingles


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def shingles(text: str, n: int = NGRAM) -> set[str]:
    """bench_dedup's shingles: word n-grams joined by a space (the whole text if it has fewer than n words)."""
    w = words(text)
    if 0 < len(w) < n:
        return {" ".join(w)}
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ------------------------------------------------------------------------------------------------------ edits


def units(text: str) -> list[str]:
    """The text cut into sentences and lines, each keeping its trailing punctuation / newline (joined = text)."""
    return [u for u in UNIT_RE.split(text) if u]


def n_units(text: str) -> int:
    return sum(1 for u in units(text) if WORD_RE.search(u))


def typo(text: str, rate: float, rng: random.Random) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isalpha() and rng.random() < rate:
            op = rng.randrange(4)
            if op == 0 and i + 1 < n and text[i + 1].isalpha() and text[i + 1] != c:  # swap with the next letter
                out += [text[i + 1], c]
                i += 2
                continue
            if op == 1:  # drop
                i += 1
                continue
            if op == 2 or c not in OCR:  # double
                out += [c, c]
            else:  # OCR confusion
                out.append(OCR[c])
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def sentence_delete(text: str, rate: float, rng: random.Random) -> str:
    parts = units(text)
    wordy = [i for i, u in enumerate(parts) if WORD_RE.search(u)]
    drop = set(rng.sample(wordy, max(1, round(rate * len(wordy)))))
    return "".join(u for i, u in enumerate(parts) if i not in drop)


def sentence_duplicate(text: str, rate: float, rng: random.Random) -> str:
    parts = units(text)
    wordy = [i for i, u in enumerate(parts) if WORD_RE.search(u)]
    again = set(rng.sample(wordy, max(1, round(rate * len(wordy)))))
    out = []
    for i, u in enumerate(parts):
        out.append(u)
        if i in again:
            out.append(u)
    return "".join(out)


def truncate(text: str, keep: float, rng: random.Random) -> str:
    spans = [m.end() for m in WORD_RE.finditer(text)]
    k = max(1, round(keep * len(spans)))
    cut = spans[k - 1]
    end = re.match(r"[^\w\s]*", text[cut:]).end()  # keep the punctuation right after the last word
    return text[:cut + end]


def word_run(text: str, n_words: int, rng: random.Random) -> str:
    """A run of ``n_words`` consecutive words of ``text`` (raw text between them kept), starting at random."""
    spans = [(m.start(), m.end()) for m in WORD_RE.finditer(text)]
    n_words = min(n_words, len(spans))
    start = rng.randrange(len(spans) - n_words + 1)
    return text[spans[start][0]:spans[start + n_words - 1][1]]


def concat_other(text: str, rate: float, rng: random.Random, donors: list[str]) -> str:
    need = max(1, round(rate * len(words(text))))
    for _ in range(50):
        donor = donors[rng.randrange(len(donors))]
        if len(words(donor)) >= need:
            break
    chunk = word_run(donor, need, rng)
    return text + "\n\n" + chunk if rng.random() < 0.7 else chunk + "\n\n" + text


def numbers_dates(text: str, rate: float | None, rng: random.Random) -> str:
    def digits(m: re.Match) -> str:
        s = m.group(0)
        first = rng.choice("123456789") if s[0] != "0" or len(s) == 1 else "0"
        new = first + "".join(rng.choice("0123456789") for _ in s[1:])
        return new if new != s else str((int(s) + 1) % 10 ** len(s)).zfill(len(s))

    def name(m: re.Match) -> str:
        pool = MONTHS if m.group(0) in MONTHS else DAYS
        return rng.choice([x for x in pool if x != m.group(0)])

    text = MONTH_RE.sub(name, DIGITS_RE.sub(digits, text))
    stamp = (f"Posted on {rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2009, 2024)} at "
             f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} {rng.choice(['AM', 'PM'])}")
    return stamp + "\n" + text


def _ascii_word_case(text: str, rng: random.Random, p: float) -> str:
    def flip(m: re.Match) -> str:
        w = m.group(0)
        if not w.isascii() or rng.random() >= p:
            return w
        return w.upper() if rng.random() < 0.5 else w.capitalize()

    return re.sub(r"[A-Za-z]+", flip, text)


def case_whitespace(text: str, rate: float | None, rng: random.Random) -> str:
    ops = rng.sample(["lower", "words", "lines", "join", "double"], rng.randint(2, 3))
    if "lower" in ops:
        text = text.lower()
    if "words" in ops:
        text = _ascii_word_case(text, rng, 0.15)
    if "lines" in ops:  # some lines upper-cased, as headings are
        text = "\n".join(ln.upper() if ln.isascii() and rng.random() < 0.2 else ln for ln in text.split("\n"))
    if "join" in ops:
        text = re.sub(r"\s*\n\s*", " ", text)
    if "double" in ops:
        text = re.sub(r"(?<=\S) (?=\S)", lambda m: "  " if rng.random() < 0.2 else " ", text)
        text = re.sub(r"\n", lambda m: "\n\n" if rng.random() < 0.5 else "\n", text)
    return text


def punctuation(text: str, rate: float | None, rng: random.Random) -> str:
    def swap(m: re.Match) -> str:
        return rng.choice([c for c in PUNCT if c != m.group(1)]) + m.group(2) if rng.random() < 0.5 else m.group(0)

    text = re.sub(r"([,;:.!?])(\s|$)", swap, text)  # only punctuation followed by space: words never merge
    text = text.replace('"', "\u201c" if rng.random() < 0.5 else "'")
    text = re.sub(r"(?<=\w)(\s)(?=[A-Za-z])", lambda m: " - " if rng.random() < 0.03 else m.group(1), text)
    return case_whitespace(text, None, rng) if rng.random() < 0.5 else text


EDITS = {"typo": typo, "sentence_delete": sentence_delete, "sentence_duplicate": sentence_duplicate,
         "truncate": truncate, "numbers_dates": numbers_dates, "case_whitespace": case_whitespace,
         "punctuation": punctuation}


def apply_edit(kind: str, rate: float | None, text: str, rng: random.Random, donors: list[str]) -> str:
    steps = MIXES.get(kind, [(kind, rate)])
    for k, r in steps:
        text = concat_other(text, r, rng, donors) if k == "concat_other" else EDITS[k](text, r, rng)
    return text


def eligible(kind: str, text: str) -> bool:
    steps = [k for k, _ in MIXES.get(kind, [(kind, None)])]
    few_units = any(k.startswith("sentence_") for k in steps) and n_units(text) < 5
    few_numbers = "numbers_dates" in steps and len(DIGITS_RE.findall(text)) < 3
    return not (few_units or few_numbers)


# ----------------------------------------------------------------------------------------------- exact join


_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                  0xFF51AFD7ED558CCD], dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hashed_shingles(texts: list[str], n: int = NGRAM) -> list[np.ndarray]:
    """Per text, the sorted unique 64-bit hashes of its word n-grams (word ids from one vocabulary, combined
    linearly with odd 64-bit multipliers, then mixed); a text with fewer than n words hashes as one shingle."""
    vocab: dict[str, int] = {}
    out = []
    with np.errstate(over="ignore"):
        for text in texts:
            ids = np.array([vocab.setdefault(w, len(vocab) + 1) for w in words(text)], dtype=np.uint64)
            if len(ids) == 0:
                out.append(np.zeros(0, np.uint64))
                continue
            if len(ids) < n:  # padded with word id 0, which no word has
                ids = np.concatenate([ids, np.zeros(n - len(ids), np.uint64)])
            h = (np.lib.stride_tricks.sliding_window_view(ids, n) * _MULT[:n]).sum(axis=1)
            out.append(np.unique(_mix(h)))
    return out


def similar_pairs(texts: list[str], t: float) -> list[tuple[int, int, float]]:
    """Every pair (i < j) of ``texts`` whose word-5-gram sets have Jaccard >= t, exactly.

    On 64-bit shingle hashes: tokens ranked rarest first, each set's prefix of |x| - ceil(t |x|) + 1 tokens (two
    sets with J >= t share a prefix token), a size filter, the hashed Jaccard of each candidate; then the exact
    Jaccard of the string 5-gram sets of every pair that passed (a hash collision can only raise the hashed Jaccard,
    so no pair with J >= t is lost)."""
    sets = hashed_shingles(texts)
    sizes = np.array([len(x) for x in sets], dtype=np.int64)
    flat = np.concatenate(sets)
    uniq, inverse, df = np.unique(flat, return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.lexsort((uniq, df))] = np.arange(len(uniq))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    ranked = [np.sort(rank[inverse[bounds[i]:bounds[i + 1]]]) for i in range(len(sets))]
    prefix = sizes - np.ceil(t * sizes - 1e-9).astype(np.int64) + 1
    tok = np.concatenate([r[:p] for r, p in zip(ranked, prefix)])
    doc = np.repeat(np.arange(len(sets)), np.minimum(prefix, sizes))
    order = np.lexsort((doc, tok))
    tok, doc = tok[order], doc[order]
    starts = np.flatnonzero(np.concatenate([[True], tok[1:] != tok[:-1]]))
    ends = np.concatenate([starts[1:], [len(tok)]])
    cand = set()
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        members = doc[a:b]
        for x in range(len(members) - 1):
            i = int(members[x])
            for j in members[x + 1:]:
                j = int(j)
                lo, hi = sorted((sizes[i], sizes[j]))
                if lo >= t * hi - 1e-9:
                    cand.add((i, j))
    found = []
    for i, j in sorted(cand):
        ov = len(np.intersect1d(ranked[i], ranked[j], assume_unique=True))
        if ov / (sizes[i] + sizes[j] - ov) >= t - 1e-9:
            jac = jaccard(shingles(texts[i]), shingles(texts[j]))
            if jac >= t:
                found.append((i, j, jac))
    return found


# ------------------------------------------------------------------------------------------------------- build


def sample_originals(pool: pa.Table, n: int, seed: int) -> list[int]:
    texts = pool.column("text").to_pylist()
    domains = pool.column("domain").to_pylist()
    ok = [i for i, x in enumerate(texts) if len(words(x)) >= 50]
    rng = np.random.default_rng(seed)
    tech = [i for i in ok if domains[i] == "tech_docs"]
    other = [i for i in ok if domains[i] != "tech_docs"]
    n_tech = min(len(tech), int(0.3 * n))
    picked = list(rng.choice(tech, n_tech, replace=False)) + list(rng.choice(other, n - n_tech, replace=False))
    return sorted(int(i) for i in picked)


def build(pool_path: Path, out: Path, seed: int, n_originals: int) -> dict:
    t0 = time.perf_counter()
    pool = pq.read_table(pool_path, columns=["id", "text", "domain"])
    texts = pool.column("text").to_pylist()
    domains = pool.column("domain").to_pylist()
    picked = sample_originals(pool, n_originals, seed)
    picked_set = set(picked)
    donors = [texts[i] for i in range(len(texts)) if i not in picked_set and len(words(texts[i])) >= 50]
    rng = random.Random(seed)

    # planted copies: constrained kinds pick their originals first, each original used once
    order = list(picked)
    rng.shuffle(order)
    used: set[int] = set()
    jobs = []
    for kind, rate, count in sorted(PLAN, key=lambda p: (p[0] not in MIXES and p[0] not in ("numbers_dates",)
                                                          and not p[0].startswith("sentence_"))):
        got = 0
        for i in order:
            if got == count:
                break
            if i in used or not eligible(kind, texts[i]):
                continue
            used.add(i)
            jobs.append((i, kind, rate))
            got += 1
        if got < count:
            raise SystemExit(f"only {got} originals fit {kind}@{rate}")
    jobs.sort()
    docs = [(i, texts[i], domains[i]) for i in picked]  # (source row, text, domain); planted copies follow
    planted = []
    for i, kind, rate in jobs:
        edit_rng = random.Random(f"{seed}:{i}:{kind}:{rate}")
        dup = apply_edit(kind, rate, texts[i], edit_rng, donors)
        if dup == texts[i]:  # nothing to change (rare): a trailing line break is still a different string
            dup += "\n"
        planted.append((len(docs), i, kind, rate))
        docs.append((i, dup, domains[i]))
    print(f"sampled {len(picked):,} originals, planted {len(planted):,} copies "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    # neutral ids, shuffled rows
    perm = np.random.default_rng(seed + 1).permutation(len(docs))
    new_id = {int(old): f"de{new:06d}" for new, old in enumerate(perm)}  # row `new` holds docs[perm[new]]
    orig_pos = {src: k for k, (src, _, _) in enumerate(docs[:len(picked)])}
    pairs = []
    for k, src, kind, rate in planted:
        o = orig_pos[src]
        pairs.append({"dup_id": new_id[k], "orig_id": new_id[o], "edit_kind": kind, "edit_rate": rate,
                      "jaccard_5gram": round(jaccard(shingles(docs[k][1]), shingles(docs[o][1])), 6)})

    # every pair with J >= 0.5 among all docs: among originals they are the natural pairs; the others must be
    # explained by the planted and natural pairs (same ground-truth group), else the set has an unplanned link
    t1 = time.perf_counter()
    close = similar_pairs([text for _, text, _ in docs], NATURAL_MIN_JACCARD)
    n_orig = len(picked)
    natural = [(a, b, j) for a, b, j in close if a < n_orig and b < n_orig]
    parent = list(range(len(docs)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in [(k, orig_pos[src]) for k, src, _, _ in planted] + [(a, b) for a, b, _ in natural]:
        parent[find(a)] = find(b)
    unexplained = [(a, b, j) for a, b, j in close if find(a) != find(b)]
    print(f"exact join at J >= {NATURAL_MIN_JACCARD}: {len(close):,} pairs, {len(natural)} natural, "
          f"{len(unexplained)} unexplained ({time.perf_counter() - t1:.1f} s)", file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    rows = [docs[int(old)] for old in perm]
    pq.write_table(pa.table({"id": [f"de{k:06d}" for k in range(len(rows))], "text": [t for _, t, _ in rows],
                             "domain": [d for _, _, d in rows]}), out / "docs.parquet")
    pq.write_table(pa.Table.from_pylist(pairs, schema=pa.schema([
        ("dup_id", pa.large_string()), ("orig_id", pa.large_string()), ("edit_kind", pa.large_string()),
        ("edit_rate", pa.float64()), ("jaccard_5gram", pa.float64())])), out / "pairs.parquet")
    nat = [{"id_a": new_id[a], "id_b": new_id[b], "jaccard_5gram": round(j, 6)} for a, b, j in natural]
    pq.write_table(pa.Table.from_pylist(nat, schema=pa.schema([
        ("id_a", pa.large_string()), ("id_b", pa.large_string()), ("jaccard_5gram", pa.float64())])),
        out / "natural_pairs.parquet")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for p in pairs:
        by_kind[p["edit_kind"] if p["edit_rate"] is None else f"{p['edit_kind']}@{p['edit_rate']:g}"].append(
            p["jaccard_5gram"])
    manifest = {
        "builder": "bench/build_dedup_edits.py", "seed": seed, "source": str(pool_path), "docs": len(rows),
        "originals": n_orig, "planted": len(pairs), "natural_pairs": len(natural),
        "originals_per_domain": dict(sorted(Counter(domains[i] for i in picked).items())),
        "planted_per_kind": {k: len(v) for k, v in sorted(by_kind.items())},
        "median_jaccard_by_kind": {k: round(float(np.median(v)), 3) for k, v in sorted(by_kind.items())},
        "pairs_at_or_above_0.5": len(close),
        "unexplained_pairs": [{"a": new_id[a], "b": new_id[b], "jaccard_5gram": round(j, 6)}
                              for a, b, j in unexplained],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, default=DEFAULT_POOL)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dedup_edits"))
    ap.add_argument("--seed", type=int, default=20250518)
    ap.add_argument("--originals", type=int, default=20_000)
    args = ap.parse_args(argv)
    manifest = build(args.pool, args.out, args.seed, args.originals)
    print(json.dumps({k: v for k, v in manifest.items() if k != "unexplained_pairs"}, indent=1))
    print(f"unexplained pairs: {len(manifest['unexplained_pairs'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
