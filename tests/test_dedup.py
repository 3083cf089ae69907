"""Exact and MinHash near-duplicate detection on the bundled sample, with planted duplicates."""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.dedup import (
    ExactConfig,
    MinHashConfig,
    MinHashDeduplicator,
    connected_components,
    exact_duplicates,
    near_duplicates,
    optimal_bands,
)
from thresher.dedup.lsh import set_jaccard, shingle_hashes, word_hashes
from thresher.demo import sample_path
from thresher.errors import ConfigError

WORD = re.compile(r"\w+")


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The ground truth's shingles: word n-grams of ``re.findall(r"\\w+", text.lower())``."""
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def substitute(text: str, rate: float, rng: np.random.Generator, vocab: list[str]) -> str:
    """Replace ``rate`` of the whitespace tokens by random vocabulary words (as the benchmark's planted edits)."""
    words = text.split()
    for i in rng.choice(len(words), max(1, int(rate * len(words))), replace=False):
        words[i] = vocab[rng.integers(len(vocab))]
    return " ".join(words)


@pytest.fixture(scope="module")
def originals() -> pa.Table:
    """240 real records of the bundled pool with at least 80 words."""
    pool = pq.read_table(sample_path("pool.parquet"), columns=["id", "text"])
    texts = pool.column("text").to_pylist()
    keep = [i for i, t in enumerate(texts) if len(t.split()) >= 80][:240]
    return pool.take(pa.array(keep))


@pytest.fixture(scope="module")
def planted(originals: pa.Table) -> tuple[pa.Table, list[tuple[int, int]]]:
    """The originals plus 12 planted near-duplicates (substitutions, a boilerplate header, a truncation), shuffled
    in; returns the table and the (original, copy) index pairs."""
    rng = np.random.default_rng(0)
    ids, texts = originals.column("id").to_pylist(), originals.column("text").to_pylist()
    vocab = sorted({w for t in texts[:50] for w in t.split()})
    copies = []
    for k, src in enumerate(range(0, 240, 20)):
        t = texts[src]
        if k % 3 == 0:
            t = substitute(t, 0.02, rng, vocab)
        elif k % 3 == 1:
            t = "Home | About | Contact\nSubscribe to our newsletter!\n\n" + t
        else:
            t = " ".join(t.split()[: int(len(t.split()) * 0.95)])
        copies.append((src, f"copy-{k}", t))
    rows = [(i, t) for i, t in zip(ids, texts)]
    order = list(range(len(rows)))
    for src, cid, t in copies:  # each copy lands somewhere after its original
        pos = int(rng.integers(order.index(src) + 1, len(order) + 1))
        order.insert(pos, len(rows))
        rows.append((cid, t))
    table = pa.table({"id": [rows[i][0] for i in order], "text": [rows[i][1] for i in order]})
    where = {rows[i][0]: p for p, i in enumerate(order)}
    pairs = [(where[ids[src]], where[cid]) for src, cid, _ in copies]
    return table, pairs


def batches(table: pa.Table, size: int) -> list[pa.RecordBatch]:
    return table.to_batches(max_chunksize=size)


# --------------------------------------------------------------------------------------------- near duplicates


def test_planted_near_duplicates_are_found(planted):
    table, pairs = planted
    result = near_duplicates(batches(table, 64), MinHashConfig(threshold=0.7))
    ids = table.column("id").to_pylist()
    for orig, copy in pairs:
        assert jaccard(table["text"][orig].as_py(), table["text"][copy].as_py()) >= 0.7
        assert result.cluster[orig] == result.cluster[copy] == orig
        assert result.keep[orig] and not result.keep[copy]
    reasons = result.reasons().to_pylist()
    assert {reasons[c] for _, c in pairs} == {f"near_duplicate_of:{ids[o]}" for o, _ in pairs}
    t = result.to_table()
    assert t.column_names == ["id", "dup_cluster", "dup_keep", "dup_reason"]
    assert result.stats["dropped"] == int((~result.keep).sum()) >= len(pairs)


def test_merges_only_true_near_duplicates(originals):
    """Every cluster is held together by pairs whose exact Jaccard reaches the threshold, and every pair above
    0.85 is found (checked against all pairs in plain Python)."""
    texts = originals.column("text").to_pylist()[:160]
    result = near_duplicates(texts, MinHashConfig(threshold=0.7))
    sets = [shingle_set(t) for t in texts]
    close = [(i, j) for i, j in combinations(range(len(texts)), 2)
             if len(sets[i] & sets[j]) >= 0.7 * len(sets[i] | sets[j])]
    allowed = connected_components(len(texts), [i for i, _ in close], [j for _, j in close])
    for i, j in combinations(range(len(texts)), 2):
        if result.cluster[i] == result.cluster[j]:
            assert allowed[i] == allowed[j], (i, j)
    for i, j in close:
        if len(sets[i] & sets[j]) >= 0.85 * len(sets[i] | sets[j]):
            assert result.cluster[i] == result.cluster[j]


def test_verification_removes_a_false_candidate():
    """One-row bands make a pair with Jaccard ~0.4 a candidate; verification rejects it, no verification keeps it."""
    words = [f"w{i}" for i in range(200)]
    a = " ".join(words[:120])
    b = " ".join(words[:70] + [f"x{i}" for i in range(50)])
    assert 0.3 < jaccard(a, b) < 0.5
    loose = dict(threshold=0.7, bands=40, rows=1)
    verified = near_duplicates([a, b], MinHashConfig(**loose))
    assert verified.stats["candidate_pairs"] == 1 and verified.stats["rejected_pairs"] == 1
    assert verified.keep.all()
    unverified = near_duplicates([a, b], MinHashConfig(**loose, verify=False))
    assert unverified.keep.tolist() == [True, False]


def test_same_output_whatever_the_batch_size(planted):
    table, _ = planted
    cfg = MinHashConfig(threshold=0.6, keep="longest")
    ref = near_duplicates(batches(table, 10_000), cfg)
    for size in (1, 7, 100):
        got = near_duplicates(batches(table, size), cfg)
        np.testing.assert_array_equal(got.cluster, ref.cluster)
        assert got.stats == ref.stats
    one_shot = near_duplicates(iter(batches(table, 33)), cfg)  # a generator: shingle sets cached, not re-read
    np.testing.assert_array_equal(one_shot.cluster, ref.cluster)
    fresh = near_duplicates(lambda: iter(batches(table, 50)), cfg)
    np.testing.assert_array_equal(fresh.cluster, ref.cluster)
    other_seed = near_duplicates(batches(table, 64), MinHashConfig(threshold=0.6, keep="longest", seed=1))
    assert other_seed.stats["dropped"] == ref.stats["dropped"]  # planted pairs are far above the threshold


def test_big_buckets_stay_linear_and_whole():
    """200 copies of one text share every bucket: linked to the bucket's first and previous member, not all-pairs."""
    text = "the same announcement is posted again and again on every page of the site " * 3
    result = near_duplicates([text] * 200 + ["an unrelated record with other words in it entirely"],
                             MinHashConfig(threshold=0.8, max_bucket_size=64))
    assert result.stats["candidate_pairs"] < 2 * 200
    assert result.keep.sum() == 2 and (result.cluster[:200] == 0).all()


def test_keep_policies():
    base = ("The committee met on Tuesday to discuss the annual budget and the plans for the new library "
            "building, which has been delayed twice because of rising costs and a shortage of workers")
    texts = [base, base + " in the city.", base.replace("Tuesday", "Monday"), "Something else entirely, " * 5]
    first = near_duplicates(texts, MinHashConfig(threshold=0.5))
    assert first.keep.tolist() == [True, False, False, True]
    assert first.cluster.tolist() == [0, 0, 0, 3]
    longest = near_duplicates(texts, MinHashConfig(threshold=0.5, keep="longest"))
    assert longest.keep.tolist() == [False, True, False, True]
    assert longest.duplicate_of.tolist() == [1, -1, 1, -1]
    highest = near_duplicates(texts, MinHashConfig(threshold=0.5, keep="highest"),
                              scores=np.array([0.1, 0.2, 0.9, 0.0]))
    assert highest.keep.tolist() == [False, False, True, True]
    assert highest.reasons().to_pylist() == ["near_duplicate_of:2", "near_duplicate_of:2", None, None]
    with pytest.raises(ConfigError):
        near_duplicates(texts, MinHashConfig(keep="highest"))


def test_optimal_bands_matches_datasketch():
    # Verified against datasketch 2.0.0 with:
    #   python -c "from datasketch.lsh import _optimal_param as o; print([o(t, 128, .5, .5) for t in
    #   (.5, .7, .8, .9)], o(.5, 256, .5, .5), o(.8, 128, .3, .7))"
    assert [optimal_bands(t, 128) for t in (0.5, 0.7, 0.8, 0.9)] == [(25, 5), (14, 9), (9, 13), (5, 25)]
    assert optimal_bands(0.5, 256) == (42, 6)
    assert optimal_bands(0.8, 128, (0.3, 0.7)) == (11, 11)
    assert MinHashConfig(threshold=0.8).bands_rows == (9, 13)


def test_words_and_shingles_match_the_python_definition():
    texts = ["Hello, WORLD! It's  snake_case and 3.14\tpi", "Ünïcode—dash “quotes” naïve café 東京 ２０２４",
             "", "   ", "...!!!", "one two", "ends with a word", "starts the next"]
    hashes, offsets = word_hashes(pa.array(texts, pa.large_string()))
    for k, t in enumerate(texts):
        words = WORD.findall(t.lower())
        got = hashes[offsets[k]:offsets[k + 1]].tolist()
        assert len(got) == len(words), (t, words)
        assert len(set(got)) == len(set(words))  # equal words, equal hashes; distinct words, distinct hashes
        assert {w: h for w, h in zip(words, got)} == {w: h for w, h in reversed(list(zip(words, got)))}
    sh, off = shingle_hashes(pa.array(texts, pa.large_string()), 3)
    # >= 3 words: one shingle per 3-gram; 1-2 words: one shingle of all of them; no words: none
    assert np.diff(off).tolist() == [len(WORD.findall(t)) - 2 if len(WORD.findall(t)) >= 3
                                     else int(bool(WORD.findall(t))) for t in texts]


def test_set_jaccard_is_exact(originals):
    texts = originals.column("text").to_pylist()[:6]
    sh, off = shingle_hashes(pa.array(texts, pa.large_string()), 5)
    values, ptr = [], [0]
    for k in range(len(texts)):
        v = np.unique(sh[off[k]:off[k + 1]])
        values.append(v)
        ptr.append(ptr[-1] + len(v))
    a, b = np.array([0, 1, 2, 3, 0]), np.array([0, 2, 4, 5, 5])
    sim = set_jaccard(a, b, np.concatenate(values), np.array(ptr))
    for (i, j), s in zip(zip(a, b), sim):
        assert s == pytest.approx(jaccard(texts[i], texts[j]), abs=1e-9)


def test_records_without_words_are_never_near_duplicates():
    result = near_duplicates(pa.array(["", None, "!!!", "", "a b c d e f", "a b c d e f"]),
                             MinHashConfig(threshold=0.8))
    assert result.keep.tolist() == [True, True, True, True, True, False]
    assert result.stats["records_without_words"] == 4


def test_input_is_read_once(planted):
    """Verification reads shingle sets that the first pass spilled: a re-iterable input is not read again."""
    table, _ = planted

    class Counting:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return iter(batches(table, 100))

    source = Counting()
    result = near_duplicates(source, MinHashConfig(threshold=0.7))
    assert source.passes == 1
    np.testing.assert_array_equal(result.cluster, near_duplicates(batches(table, 100), MinHashConfig()).cluster)


def test_minhash_config_is_validated():
    for bad in (dict(threshold=1.0), dict(num_perm=1), dict(ngram=0), dict(keep="last"), dict(bands=4),
                dict(bands=20, rows=10), dict(weights=(0.5, 0.6)), dict(verify_threshold=2.0)):
        with pytest.raises(ConfigError):
            MinHashConfig(**bad)
    with pytest.raises(ConfigError):
        MinHashDeduplicator(MinHashConfig(text_field="body")).fit([pa.record_batch({"text": ["x"]})])


# ----------------------------------------------------------------------------------------------------- exact


def test_exact_duplicates_ignore_case_and_whitespace(originals):
    texts = originals.column("text").to_pylist()[:50]
    variants = [texts[3].upper(), "  " + re.sub(r"\s+", "\n\t ", texts[7]) + "\n", texts[3]]
    table = pa.table({"id": [f"r{i}" for i in range(53)], "text": texts + variants})
    result = exact_duplicates(table.to_batches(max_chunksize=16))
    assert result.keep.tolist() == [True] * 50 + [False] * 3
    assert result.duplicate_of[50:].tolist() == [3, 7, 3]
    assert result.reasons().to_pylist()[50:] == ["exact_duplicate_of:r3", "exact_duplicate_of:r7",
                                                 "exact_duplicate_of:r3"]
    raw = exact_duplicates(table, ExactConfig(lowercase=False, collapse_whitespace=False))
    assert raw.keep.tolist() == [True] * 52 + [False]  # only the byte-identical copy


def test_exact_normalisation_options():
    texts = ["Hello, world!", "hello world", "ｈｅｌｌｏ　ｗｏｒｌｄ", "Hello world"]
    assert exact_duplicates(texts).keep.tolist() == [True, True, True, False]
    assert exact_duplicates(texts, ExactConfig(strip_punctuation=True)).keep.tolist() == [True, False, True, False]
    assert exact_duplicates(texts, ExactConfig(nfkc=True)).keep.tolist() == [True, True, False, False]
    longest = exact_duplicates(["ab", "AB  ", "Ab"], ExactConfig(keep="longest"))
    assert longest.keep.tolist() == [False, True, False]
    highest = exact_duplicates(["ab", "AB", "Ab"], ExactConfig(keep="highest"), scores=np.array([1.0, np.nan, 3.0]))
    assert highest.keep.tolist() == [False, False, True]
    with pytest.raises(ConfigError):
        ExactConfig(keep="random")


def test_connected_components_label_by_smallest_member():
    labels = connected_components(7, np.array([5, 1, 3]), np.array([3, 2, 6]))
    assert labels.tolist() == [0, 1, 1, 3, 4, 3, 3]


def test_whitespace_collapses_as_the_regex_does_on_real_and_awkward_text():
    """collapse_whitespace (numpy on UTF-8 bytes) gives the same strings as Arrow's \\s+ regex: runs at record
    edges, empty and null records, vertical tab and non-breaking spaces (not \\s in RE2), multi-byte text, slices."""
    import pyarrow.compute as pc

    from thresher.dedup.exact import collapse_whitespace

    awkward = pa.array(["", " ", "a", "  a  b\t\tc\n", "\n\n", "x\x0by", "x\u00a0\u00a0y", "\r\n\r\n z",
                        "é  ü\t\t中 文", "a\x0c\x0cb", None, "  ", "end  ", ""], pa.large_string())
    real = pq.read_table(sample_path("pool.parquet"), columns=["text"]).column("text").combine_chunks()
    for text in (awkward, awkward.slice(3, 6), awkward.slice(10, 4), real, real.slice(1000, 777)):
        expect = pc.replace_substring_regex(text.cast(pa.large_string()).fill_null(""), r"\s+", " ")
        assert collapse_whitespace(text).equals(expect)
