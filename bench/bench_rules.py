#!/usr/bin/env python
"""thresher's rule-based quality scorers vs datatrove's filters on ../shared/data/pool-en, in the same run.

Three families, each run by both tools on the same deterministic sample of the pool (default 20,000 of 93,695
records: ``numpy.random.default_rng(seed).choice(pool, n, replace=False)``, sorted):

* gopher:  thresher ``GopherScorer`` vs datatrove ``GopherQualityFilter`` + ``GopherRepetitionFilter`` (a record
  passes datatrove only if both pass; both filters run on every record, the quality reason wins when both fail);
* c4:      thresher ``C4Scorer`` vs datatrove ``C4QualityFilter`` (document decision only; it rewrites
  ``doc.text``, so every filter gets a fresh ``Document``);
* fineweb: thresher ``FineWebScorer`` vs datatrove ``FineWebQualityFilter``.

Throughput is one process, wall clock, texts already in memory: thresher calls ``scorer.score`` on pyarrow slices of
1,024 records; datatrove calls ``filter(Document(text=..., id=...))`` once per record and family (its own
``lru_cache`` on tokenization lets the repetition filter reuse the quality filter's words, as in a pipeline).
Both are warmed up on one short text first. Agreement is the share of records with the same pass/fail decision;
Cohen's kappa corrects it for chance; "only thresher" counts records thresher keeps and datatrove drops.

Tokenization on the datatrove side (``--dt-tokenizer``): datatrove 0.10.1 does not call NLTK's punkt for English.
Its filters call ``datatrove.utils.text.split_into_words`` / ``split_into_sentences``, which use a blank spaCy
English pipeline plus spaCy's rule-based sentencizer. That needs the ``spacy`` package but no downloaded data.
``native`` runs datatrove unchanged. ``patched`` swaps those names (and ``word_tokenize`` / ``sent_tokenize``
where an older datatrove imports them) inside the four filter modules for NLTK's ``wordpunct_tokenize`` and a
regex sentence splitter (split after ``.``, ``!`` or ``?`` followed by whitespace). This is the fallback for a
machine without spaCy or punkt, and it is NOT datatrove's real tokenization. ``auto`` (the default) picks
``native`` when datatrove's English tokenizer loads, else ``patched``. The mode used, and whether NLTK's punkt data
is present, are printed and written to the JSON.

Reproduce (about 2 minutes for the full 20,000 with spaCy; about 45 seconds with --dt-tokenizer patched):

    pip install -e . && pip install "datatrove" "xxhash<4" spacy   # spacy: datatrove's English tokenizer
    python bench/bench_rules.py                         # n=20,000, seed 0 -> bench/results/rules.json
    python bench/bench_rules.py --dt-tokenizer patched --out /tmp/rules_patched.json
    python bench/bench_rules.py --n 2000 --families gopher

Prints Markdown tables (throughput, agreement, pass rate per domain, most frequent disagreement reasons) and writes
the same numbers, plus example disagreements, as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.scorers.gopher import GopherScorer
from thresher.scorers.web_rules import C4Scorer, FineWebScorer

HERE = Path(__file__).resolve().parent
DEFAULT_POOL = HERE.parent.parent / "shared" / "data" / "pool-en" / "pool.parquet"
FAMILIES = ("gopher", "c4", "fineweb")
WARMUP_TEXT = "The quick brown fox jumps over the lazy dog. It was not the first time, and it would be the last."
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def regex_sentences(text: str, language: str | None = None) -> list[str]:
    """Sentence splitter for the patched mode: break after . ! ? followed by whitespace."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def wordpunct_words(text: str, language: str | None = None) -> list[str]:
    """Word splitter for the patched mode: NLTK's ``wordpunct_tokenize`` (``\\w+|[^\\w\\s]+``)."""
    from nltk.tokenize import wordpunct_tokenize

    return wordpunct_tokenize(text)


def punkt_available() -> bool:
    try:
        import nltk
    except ImportError:
        return False
    for resource in ("tokenizers/punkt_tab/english/", "tokenizers/punkt/english.pickle"):
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            pass
    return False


def native_tokenizer_error() -> str | None:
    """None if datatrove's own English word and sentence splitters work here, else the error."""
    from datatrove.utils.text import split_into_sentences, split_into_words

    try:
        split_into_words("Tokenizer check, one two.")
        split_into_sentences("Tokenizer check. One two.")
    except Exception as e:  # ImportError (no spaCy), LookupError (no punkt), ...
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def setup_datatrove_tokenizer(mode: str) -> dict:
    """Apply the tokenizer mode; return what was done, for the output."""
    from datatrove.pipeline.filters import (
        c4_filters,
        fineweb_quality_filter,
        gopher_quality_filter,
        gopher_repetition_filter,
    )

    error = native_tokenizer_error()
    if mode == "auto":
        mode = "native" if error is None else "patched"
    if mode == "native" and error is not None:
        raise SystemExit(f"datatrove's English tokenizer does not load ({error}); use --dt-tokenizer patched")
    patched = []
    if mode == "patched":
        replacements = {"split_into_words": wordpunct_words, "word_tokenize": wordpunct_words,
                        "split_into_sentences": regex_sentences, "sent_tokenize": regex_sentences}
        for module in (gopher_quality_filter, gopher_repetition_filter, c4_filters, fineweb_quality_filter):
            for name, fn in replacements.items():
                if hasattr(module, name):
                    setattr(module, name, fn)
                    patched.append(f"{module.__name__.rsplit('.', 1)[-1]}.{name}")
    if mode == "native":
        description = "datatrove's own (spaCy blank 'en' + sentencizer), unpatched"
    else:
        description = "PATCHED: words = nltk wordpunct_tokenize, sentences = regex split after [.!?] + whitespace"
    return {"mode": mode, "description": description, "native_error": error, "patched_names": patched,
            "nltk_punkt_available": punkt_available()}


def datatrove_filters() -> dict[str, Callable[[str, str], tuple[bool, str | None]]]:
    """Per family, a function (text, id) -> (passed, reason) around datatrove's filters."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    def decision(result: object) -> tuple[bool, str | None]:
        if isinstance(result, tuple):
            return bool(result[0]), (str(result[1]) if len(result) > 1 and not result[0] else None)
        return bool(result), None if result else "rejected"

    gq, gr, c4, fw = GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()

    def gopher(text: str, doc_id: str) -> tuple[bool, str | None]:
        doc = Document(text=text, id=doc_id)
        q, r = decision(gq.filter(doc)), decision(gr.filter(doc))
        return q[0] and r[0], q[1] if not q[0] else r[1]

    return {"gopher": gopher,
            "c4": lambda text, doc_id: decision(c4.filter(Document(text=text, id=doc_id))),
            "fineweb": lambda text, doc_id: decision(fw.filter(Document(text=text, id=doc_id)))}


def run_thresher(family: str, text: pa.Array, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    scorer = {"gopher": GopherScorer, "c4": C4Scorer, "fineweb": FineWebScorer}[family]()
    scorer.score(pa.array([WARMUP_TEXT]))
    passed, reason = [], []
    t0 = time.perf_counter()
    for start in range(0, len(text), batch):
        out = scorer.score(text.slice(start, batch))
        passed.append(out[f"{family}_pass"])
        reason.append(out[f"{family}_reason"])
    seconds = time.perf_counter() - t0
    return np.concatenate(passed).astype(bool), np.concatenate(reason).astype(object), seconds


def run_datatrove(fn: Callable, texts: list[str], ids: list[str]) -> tuple[np.ndarray, np.ndarray, float, int]:
    fn(WARMUP_TEXT, "warmup")
    passed = np.zeros(len(texts), dtype=bool)
    reason = np.full(len(texts), None, dtype=object)
    errors = 0
    t0 = time.perf_counter()
    for i, (text, doc_id) in enumerate(zip(texts, ids)):
        try:
            passed[i], reason[i] = fn(text, doc_id)
        except Exception as e:  # counted and reported; such a record counts as dropped
            errors += 1
            reason[i] = f"error:{type(e).__name__}"
    seconds = time.perf_counter() - t0
    return passed, reason, seconds, errors


def agreement_stats(t: np.ndarray, d: np.ndarray) -> dict:
    n = len(t)
    po = float(np.mean(t == d)) if n else float("nan")
    pt, pd = float(np.mean(t)), float(np.mean(d))
    pe = pt * pd + (1 - pt) * (1 - pd)
    kappa = (po - pe) / (1 - pe) if pe < 1 else float("nan")
    return {"thresher_pass_rate": pt, "datatrove_pass_rate": pd, "agreement": po, "kappa": kappa,
            "both_pass": int(np.sum(t & d)), "only_thresher": int(np.sum(t & ~d)),
            "only_datatrove": int(np.sum(~t & d)), "both_fail": int(np.sum(~t & ~d))}


def disagreements(t_pass, t_reason, d_pass, d_reason, texts, ids, top: int, per_pair: int) -> list[dict]:
    """The most frequent (thresher decision, datatrove decision) reason pairs among disagreeing records."""
    idx = np.flatnonzero(t_pass != d_pass)
    key = [(bool(t_pass[i]), t_reason[i] or "pass", d_reason[i] or "pass") for i in idx]
    pairs = Counter(key).most_common(top)
    out = []
    for (t_ok, tr, dr), count in pairs:
        rows = [i for i, k in zip(idx, key) if k == (t_ok, tr, dr)][:per_pair]
        out.append({"thresher": tr, "datatrove": dr, "kept_by": "thresher" if t_ok else "datatrove", "count": count,
                    "examples": [{"id": ids[i], "text": texts[i][:200]} for i in rows]})
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown(results: dict) -> str:
    meta, fam = results["meta"], results["families"]
    tok = meta["datatrove_tokenizer"]
    lines = [f"## Rule filters: thresher {meta['versions']['thresher']} vs datatrove {meta['versions']['datatrove']}",
             "",
             f"{meta['n']:,} of {meta['pool_rows']:,} pool-en records (seed {meta['seed']}), one process, "
             f"{meta['cpu']}.",
             f"datatrove tokenizer: {tok['description']}; NLTK punkt data available: "
             f"{'yes' if tok['nltk_punkt_available'] else 'no'}; punkt patched: "
             f"{'yes (' + ', '.join(tok['patched_names']) + ')' if tok['patched_names'] else 'no'}.",
             "",
             "| family | thresher docs/s | datatrove docs/s | thresher/datatrove | thresher s | datatrove s "
             "| datatrove errors |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f, r in fam.items():
        lines.append(f"| {f} | {r['thresher_docs_per_s']:,.0f} | {r['datatrove_docs_per_s']:,.0f} | "
                     f"{r['speed_ratio']:.2f}x | {r['thresher_seconds']:.1f} | {r['datatrove_seconds']:.1f} | "
                     f"{r['datatrove_errors']} |")
    lines += ["", "| family | thresher pass | datatrove pass | agreement | kappa | both pass | only thresher "
                  "| only datatrove | both fail |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f, r in fam.items():
        lines.append(f"| {f} | {pct(r['thresher_pass_rate'])} | {pct(r['datatrove_pass_rate'])} | "
                     f"{pct(r['agreement'])} | {r['kappa']:.3f} | {r['both_pass']:,} | {r['only_thresher']:,} | "
                     f"{r['only_datatrove']:,} | {r['both_fail']:,} |")
    lines += ["", "Pass rate per domain, thresher / datatrove:", "",
              "| domain | n | " + " | ".join(fam) + " |", "| --- | ---: |" + " ---: |" * len(fam)]
    for dom, row in results["per_domain"].items():
        cells = [f"{100 * row[f]['thresher']:.1f} / {100 * row[f]['datatrove']:.1f}" for f in fam]
        lines.append(f"| {dom} | {row['n']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Most frequent disagreements (reason given by each tool; `pass` = kept):", "",
              "| family | thresher | datatrove | records |", "| --- | --- | --- | ---: |"]
    for f, r in fam.items():
        lines += [f"| {f} | {p['thresher']} | {p['datatrove']} | {p['count']:,} |" for p in r["disagreements"]]
    return "\n".join(lines)


def pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, default=DEFAULT_POOL)
    ap.add_argument("--n", type=int, default=20_000, help="sample size (0 or more than the pool: whole pool)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1024, help="thresher batch size")
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    ap.add_argument("--dt-tokenizer", choices=("auto", "native", "patched"), default="auto")
    ap.add_argument("--top", type=int, default=4, help="disagreement reason pairs to list per family")
    ap.add_argument("--examples", type=int, default=3, help="example records kept per disagreement pair (JSON)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "rules.json")
    args = ap.parse_args()

    tokenizer = setup_datatrove_tokenizer(args.dt_tokenizer)
    table = pq.read_table(args.pool, columns=["id", "text", "domain"])
    rows = table.num_rows
    n = rows if args.n <= 0 or args.n >= rows else args.n
    idx = np.sort(np.random.default_rng(args.seed).choice(rows, size=n, replace=False)) if n < rows else np.arange(rows)
    sample = table.take(pa.array(idx))
    text = sample["text"].combine_chunks().fill_null("")
    texts, ids = text.to_pylist(), [str(i) for i in sample["id"].to_pylist()]
    domain = np.asarray(sample["domain"].to_pylist(), dtype=object)

    dt = datatrove_filters()
    families, decisions = {}, {}
    for family in args.families:
        t_pass, t_reason, t_sec = run_thresher(family, text, args.batch)
        d_pass, d_reason, d_sec, errors = run_datatrove(dt[family], texts, ids)
        decisions[family] = (t_pass, d_pass)
        families[family] = {
            "thresher_seconds": t_sec, "datatrove_seconds": d_sec,
            "thresher_docs_per_s": n / t_sec, "datatrove_docs_per_s": n / d_sec, "speed_ratio": d_sec / t_sec,
            "datatrove_errors": errors, **agreement_stats(t_pass, d_pass),
            "thresher_reasons": dict(Counter(r or "pass" for r in t_reason).most_common()),
            "datatrove_reasons": dict(Counter(r or "pass" for r in d_reason).most_common()),
            "disagreements": disagreements(t_pass, t_reason, d_pass, d_reason, texts, ids, args.top, args.examples),
        }
        print(f"[{family}] thresher {t_sec:.1f}s, datatrove {d_sec:.1f}s, agreement "
              f"{pct(families[family]['agreement'])}", flush=True)

    per_domain = {}
    for dom in sorted(set(domain), key=lambda d: (-np.sum(domain == d), d)):
        m = domain == dom
        per_domain[dom] = {"n": int(m.sum()), **{f: {"thresher": float(t[m].mean()), "datatrove": float(d[m].mean())}
                                                 for f, (t, d) in decisions.items()}}

    results = {
        "meta": {"pool": str(args.pool), "pool_rows": rows, "n": n, "seed": args.seed, "thresher_batch": args.batch,
                 "datatrove_tokenizer": tokenizer, "cpu": cpu_name(), "python": platform.python_version(),
                 "versions": {p: pkg_version(p) for p in ("thresher", "datatrove", "spacy", "nltk", "numpy",
                                                          "pyarrow", "xxhash")}},
        "families": families,
        "per_domain": per_domain,
    }
    print()
    print(markdown(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
