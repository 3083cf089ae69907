"""thresher dedup --against: pool records sharing a 13-word n-gram (or their normalised text) with a reference set are
dropped, the reference is never touched, the flags equal a brute-force set implementation on real text, and every
record is accounted for."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.dedup.reference import ReferenceConfig, contaminated, match_texts, record_hashes
from thresher.demo import sample_path
from thresher.errors import ConfigError

BBC = sample_path("labeled/bbc_news.parquet")
POOL = sample_path("pool.parquet")


def words_of(text: str) -> list[str]:
    """Words as thresher's n-grams read them: ``\\w+`` runs after Arrow's lower-casing (which differs from Python's
    on a few letters, such as the Turkish dotted I)."""
    return re.findall(r"\w+", pc.utf8_lower(pa.scalar(text, pa.large_string())).as_py())


def brute_force(pool: list[str], reference: list[str], n: int = 13) -> list[tuple[int, int]]:
    """(n-grams, n-grams shared with any reference record) per pool text, with Python sets of word tuples."""
    def grams(text: str) -> set[tuple[str, ...]]:
        words = words_of(text)
        if 0 < len(words) < n:
            return {tuple(words)}
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    seen = set().union(*(grams(t) for t in reference))
    out = []
    for text in pool:
        words = words_of(text)
        total = max(len(words) - n + 1, 1) if words else 0
        windows = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)] if len(words) >= n else \
            ([tuple(words)] if words else [])
        out.append((total, sum(w in seen for w in windows)))
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Reference: the BBC dev articles. Pool: the sample pool, the BBC pool articles, and four planted records: a
    dev article's 13-word passage inside other text, a dev article retyped in other case and spacing, a passage of
    only 12 of its words, and a copy of a whole dev article."""
    root = tmp_path_factory.mktemp("decon")
    bbc = pq.read_table(BBC)
    dev = bbc.filter(pc.equal(bbc.column("split"), "dev")).select(["id", "text"])
    pq.write_table(dev, root / "reference.parquet")
    words = dev.column("text")[0].as_py().split()
    planted = [
        {"id": "passage13", "text": "An unrelated opening line about the weather. " + " ".join(words[20:33])
         + " And then something else entirely, said nobody."},
        {"id": "retyped", "text": "  ".join(dev.column("text")[1].as_py().upper().split())},
        {"id": "passage12", "text": "Nothing to see here. " + " ".join(words[40:52]) + " The end."},
        {"id": "copy", "text": dev.column("text")[2].as_py()},
        {"id": "near", "text": " ".join(w if i % 40 != 7 else "changed" for i, w in
                                        enumerate(dev.column("text")[3].as_py().split()))},
    ]
    rest = bbc.filter(pc.equal(bbc.column("split"), "pool")).select(["id", "text"])
    sample = pq.read_table(POOL).select(["id", "text"]).cast(rest.schema)
    pool = pa.concat_tables([sample, rest, pa.Table.from_pylist(planted, schema=rest.schema)])
    pq.write_table(pool, root / "pool.parquet")
    return root, pool, dev


def test_flags_equal_brute_force_and_the_planted_copies(planted, tmp_path):
    root, pool, dev = planted
    before = hashlib.sha256((root / "reference.parquet").read_bytes()).hexdigest()
    run = th.deduplicate(root / "pool.parquet", out=tmp_path / "run", against=root / "reference.parquet",
                         workers=1, report=False)
    scores = run.scores()
    expect = brute_force(pool.column("text").to_pylist(), dev.column("text").to_pylist())
    assert scores.column("ref_ngrams").to_pylist() == [e[0] for e in expect]
    assert scores.column("ref_matched").to_pylist() == [e[1] for e in expect]
    dropped = {i for i, keep in zip(scores.column("id").to_pylist(), scores.column("dup_keep").to_pylist())
               if not keep}
    assert {"passage13", "retyped", "copy"} <= dropped and "passage12" not in dropped
    assert dropped == {i for i, e in zip(pool.column("id").to_pylist(), expect) if e[1] > 0}
    match = dict(zip(scores.column("id").to_pylist(), scores.column("ref_match").to_pylist()))
    dev_ids = dev.column("id").to_pylist()
    assert (match["passage13"], match["retyped"], match["copy"]) == tuple(dev_ids[:3])
    reasons = dict(zip(scores.column("id").to_pylist(), scores.column("dup_reason").to_pylist()))
    assert reasons["copy"] == f"ngram_match_in_reference:{dev_ids[2]}" and reasons["passage12"] is None
    c = run.manifest["counts"]
    assert c["all_accounted_for"] and c["selected"] + c["filtered"]["reference_duplicate"] == pool.num_rows
    assert c["reference"]["records"] == dev.num_rows
    kept = (run.path / "selected" / "ids.txt").read_text().split()
    assert len(kept) == pool.num_rows - len(dropped) and not dropped & set(kept)
    assert hashlib.sha256((root / "reference.parquet").read_bytes()).hexdigest() == before
    two = th.deduplicate(root / "pool.parquet", out=tmp_path / "two", against=root / "reference.parquet",
                         workers=2, report=False)
    assert two.scores().equals(scores)


def test_exact_method_and_min_overlap(planted, tmp_path):
    root, pool, dev = planted
    exact = th.deduplicate(root / "pool.parquet", out=tmp_path / "exact", against=root / "reference.parquet",
                           method="exact", workers=1, report=False)
    flagged = {i for i, keep in zip(exact.scores().column("id").to_pylist(),
                                    exact.scores().column("dup_keep").to_pylist()) if not keep}
    assert {"copy", "retyped"} <= flagged and "passage13" not in flagged  # case and spacing are normalised away
    half = th.deduplicate(root / "pool.parquet", out=tmp_path / "half", against=root / "reference.parquet",
                          min_overlap=0.5, workers=1, report=False)
    s = half.scores()
    overlap = np.asarray(s.column("ref_overlap").to_pylist())
    keep = np.asarray(s.column("dup_keep").to_pylist())
    assert (~keep == (overlap >= 0.5) & (np.asarray(s.column("ref_matched").to_pylist()) > 0)).all()
    assert not keep[s.column("id").to_pylist().index("copy")] and keep[s.column("id").to_pylist().index("passage13")]


def shingle_sets(texts: list[str], n: int = 5) -> list[set[tuple[str, ...]]]:
    out = []
    for text in texts:
        words = words_of(text)
        out.append({tuple(words[i:i + n]) for i in range(len(words) - n + 1)} if len(words) >= n else
                   ({tuple(words)} if words else set()))
    return out


def best_jaccard(pool: list[str], reference: list[str]) -> list[tuple[float, int]]:
    """(highest exact Jaccard similarity of 5-gram sets with any reference text, that text's row; -1 if none shares
    a shingle) per pool text, by an inverted index of the reference's shingles: exact, no sampling."""
    from collections import Counter, defaultdict

    ref_sets = shingle_sets(reference)
    where = defaultdict(list)
    for row, grams in enumerate(ref_sets):
        for g in grams:
            where[g].append(row)
    out = []
    for grams in shingle_sets(pool):
        shared = Counter(row for g in grams for row in where.get(g, ()))
        scored = [(k / (len(grams) + len(ref_sets[row]) - k), -row) for row, k in shared.items()]
        best = max(scored, default=(0.0, 1))
        out.append((best[0], -best[1]))
    return out


def test_minhash_against_a_reference_finds_near_copies_verified_exactly(planted, tmp_path, monkeypatch):
    """--method minhash: every dropped record's Jaccard similarity with its reference match is the exact one and
    reaches the threshold; every record at >= 0.9 with some reference record is found (LSH misses such a pair with
    probability ~0.001); the same at two workers and from the cached index; the reference is untouched."""
    root, pool, dev = planted
    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "cache"))
    run = th.deduplicate(root / "pool.parquet", out=tmp_path / "near", against=root / "reference.parquet",
                         method="minhash", threshold=0.7, workers=1, report=False)
    s = run.scores()
    expect = best_jaccard(pool.column("text").to_pylist(), dev.column("text").to_pylist())
    ids, keep = s.column("id").to_pylist(), s.column("dup_keep").to_pylist()
    overlap, match = s.column("ref_overlap").to_pylist(), s.column("ref_match").to_pylist()
    dev_ids = dev.column("id").to_pylist()
    dropped = {i for i, k in zip(ids, keep) if not k}
    assert {"near", "copy", "retyped"} <= dropped and not {"passage13", "passage12"} & dropped
    for i, k, o, m, (j, row) in zip(ids, keep, overlap, match, expect):
        if not k:
            assert o == pytest.approx(j) and o >= 0.7 and m == dev_ids[row], i
        assert not (j >= 0.9 and k), i
    assert 0.7 < dict(zip(ids, overlap))["near"] < 1.0
    reasons = dict(zip(ids, s.column("dup_reason").to_pylist()))
    assert reasons["near"] == f"minhash_match_in_reference:{dev_ids[3]}"
    assert run.manifest["metrics"]["reference"]["threshold"] == 0.7 and run.manifest["counts"]["all_accounted_for"]
    again = th.deduplicate(root / "pool.parquet", out=tmp_path / "near2", against=root / "reference.parquet",
                           method="minhash", threshold=0.7, workers=2, report=False)
    assert again.manifest["metrics"]["reference"]["index_from_cache"] and again.scores().equals(s)
    with pytest.raises(ConfigError, match="min_overlap applies to matching by ngram"):
        th.deduplicate(root / "pool.parquet", out=tmp_path / "bad", against=root / "reference.parquet",
                       method="minhash", min_overlap=0.5)


def test_minhash_decision_and_reported_similarity_agree_at_the_threshold_and_buckets_are_capped():
    """A Jaccard similarity exactly at the threshold is a match, as verification within a pool counts it (the drop
    decision and ``ref_overlap`` come from one computation); a reference of many copies of one short item keeps at
    most max_bucket_size of them per bucket and still finds it."""
    from thresher.dedup import MinHashConfig
    from thresher.dedup.reference import _build, overlap, reference_config

    words = [f"w{i}" for i in range(104)]  # 100 shingles; a reference of the first 59 words has 55 of them
    config = reference_config("minhash", minhash=MinHashConfig(threshold=0.55, bands=20, rows=1))
    ref = pa.array([" ".join(words[:59])], pa.large_string())
    index = _build([_table_dataset(ref)], config)
    result = match_texts(pa.array([" ".join(words)], pa.large_string()), *index.lookup()[:2], config,
                         *index.lookup()[2:])
    assert result.tolist() == [[100, 55, 0]]
    assert overlap(result, config, index.set_ptr).tolist() == [0.55]
    assert contaminated(result, config, index.set_ptr).tolist() == [True]
    short = _build([_table_dataset(pa.array(["Yes."] * 200, pa.large_string()))], config)
    assert np.unique(short.hashes, return_counts=True)[1].max() == config.minhash.max_bucket_size
    found = match_texts(pa.array(["yes", "no"], pa.large_string()), *short.lookup()[:2], config, *short.lookup()[2:])
    assert found.tolist() == [[1, 1, 0], [1, 0, -1]]


def _table_dataset(texts: pa.Array):
    """A Dataset over an in-memory table, via a temporary Parquet file."""
    import tempfile

    folder = tempfile.mkdtemp()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts}), f"{folder}/ref.parquet")
    return th.read(f"{folder}/ref.parquet")


def test_best_match_is_the_reference_record_sharing_most():
    config = ReferenceConfig(ngram=2)
    reference = pa.array(["a b c d", "c d e f g", "x y"], pa.large_string())
    h, off = record_hashes(reference, config)
    owner = np.repeat(np.arange(3), np.diff(off))
    hashes, first = np.unique(h, return_index=True)
    result = match_texts(pa.array(["c d e f", "a b", "q r s", "x y"], pa.large_string()), hashes, owner[first],
                         config)
    # "c d e f": c-d is in both reference records (the first owns it), d-e and e-f only in the second
    assert result.tolist() == [[3, 3, 1], [1, 1, 0], [2, 0, -1], [1, 1, 2]]
    assert contaminated(result, ReferenceConfig(ngram=2, min_overlap=0.9)).tolist() == [True, True, False, True]


def test_cli_end_to_end_and_clear_errors(planted, tmp_path):
    root, pool, _ = planted
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(root / "pool.parquet"),
                           "--against", str(root / "reference.parquet"), "--out", str(tmp_path / "cli"),
                           "--workers", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "reference duplicates dropped" in done.stdout and "distinct 13-grams" in done.stdout
    page = (tmp_path / "cli" / "report.html").read_text()
    assert "reference" in page and "ngram_match_in_reference" in page
    for args, message in ((["--against", str(root / "reference.parquet"), "--method", "semantic"],
                           "is by ngram (the default), exact or minhash"),
                          (["--against", str(root / "reference.parquet"), "--method", "minhash", "--no-verify"],
                           "always verifies"),
                          (["--method", "ngram"], "give --against")):
        bad = subprocess.run([sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(root / "pool.parquet"),
                              *args, "--out", str(tmp_path / "bad")], capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr
    with pytest.raises(ConfigError, match="min_overlap"):
        ReferenceConfig(min_overlap=1.5)


def test_recipe_dedup_stage_against_a_reference(planted, tmp_path):
    """A recipe's first step '- dedup: ngram' with 'against:' drops what the job drops, before scoring, with the same
    reasons; a reference that changes invalidates the cached scores."""
    import shutil

    root, pool, dev = planted
    for name in ("pool.parquet", "reference.parquet"):
        shutil.copy(root / name, tmp_path / name)
    job = th.deduplicate(tmp_path / "pool.parquet", out=tmp_path / "job", against=tmp_path / "reference.parquet",
                         workers=1, report=False)
    recipe = tmp_path / "decon.yaml"
    recipe.write_text("pool: pool.parquet\nsteps:\n  - dedup: ngram\n    against: [reference.parquet]\n"
                      "  - score: gopher\n  - select: topk\n    score: gopher_pass\n    budget: 50%\n")
    command = [sys.executable, "-m", "thresher.cli", "run", str(recipe), "--out", str(tmp_path / "r"), "--workers",
               "1", "--no-report"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scores = pq.read_table(tmp_path / "r" / "scores" / "scores.parquet", columns=["id", "dup_reason"])
    assert scores.column("dup_reason").to_pylist() == job.scores().column("dup_reason").to_pylist()
    run = th.Run(tmp_path / "r")
    dropped = job.counts["filtered"]["reference_duplicate"]
    assert run.counts["filtered"]["dedup"] == dropped == run.manifest["metrics"]["dedup"]["reference"]["dropped"]
    pq.write_table(dev.slice(3), tmp_path / "reference.parquet")  # the planted copies' sources leave the reference
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert th.Run(tmp_path / "r").counts["filtered"]["dedup"] < dropped
    from thresher.pipeline import Dedup

    with pytest.raises(ConfigError, match="give 'against'"):
        Dedup(method="ngram")
    with pytest.raises(ConfigError, match="matches by ngram, exact or minhash .say which., not 'both'"):
        Dedup(against="x.parquet")
    assert Dedup(method="minhash", against="x.parquet", threshold=0.8).configs()["reference"].minhash.cutoff == 0.8


def test_the_reference_index_is_cached_by_content(planted, tmp_path, monkeypatch):
    """The second run against the same reference loads its index (same scores); a reference whose contents change
    is indexed again; bad reference lines are counted on both runs."""
    root, pool, dev = planted
    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "cache"))
    lines = [json.dumps({"id": i, "text": t}) for i, t in zip(dev.column("id").to_pylist(), dev.column("text")
                                                               .to_pylist())] + ["{broken"]
    (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n")
    ref = th.read(tmp_path / "ref.jsonl", on_error="skip")
    first = th.deduplicate(root / "pool.parquet", out=tmp_path / "a", against=ref, workers=1, report=False)
    second = th.deduplicate(root / "pool.parquet", out=tmp_path / "b", against=th.read(tmp_path / "ref.jsonl",
                                                                                        on_error="skip"),
                            workers=1, report=False)
    assert not first.manifest["metrics"]["reference"]["index_from_cache"]
    assert second.manifest["metrics"]["reference"]["index_from_cache"]
    assert second.scores().equals(first.scores())
    assert first.counts["reference"]["failed"] == second.counts["reference"]["failed"] == 1
    (tmp_path / "ref.jsonl").write_text("\n".join(lines[3:]) + "\n")  # the first three articles leave
    third = th.deduplicate(root / "pool.parquet", out=tmp_path / "c", against=th.read(tmp_path / "ref.jsonl",
                                                                                       on_error="skip"),
                           workers=1, report=False)
    assert not third.manifest["metrics"]["reference"]["index_from_cache"]
    assert third.counts["filtered"]["reference_duplicate"] < first.counts["filtered"]["reference_duplicate"]
