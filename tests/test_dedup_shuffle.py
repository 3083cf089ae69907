"""MinHash dedup as a shuffle through spill files gives exactly the decisions and counts of a straightforward
in-memory reference, for any number of partitions, workers and batch size, and the main process never holds the
band keys."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.dedup import MinHashConfig, near_duplicates
from thresher.dedup.clusters import as_batches, build_result, connected_components, split_batch
from thresher.dedup.lsh import _unique_sets, band_keys, bucket_pairs, set_jaccard, shingle_hashes
from thresher.dedup.minhash import permutations
from thresher.dedup.shuffle import spanning_forest
from thresher.dedup.spill import SPILL_PREFIX
from thresher.demo import sample_path
from thresher.engine import LocalEngine


def reference(batches, config: MinHashConfig, scores=None):
    """The whole algorithm in memory, in this process: every record's band keys, per-band buckets over all
    records, distinct pairs, verification, connected components (what dedup did before the shuffle)."""
    bands, rows = config.bands_rows
    a, b = permutations(config)
    keys, sets, lengths, ids = [], [], [], []
    for batch in as_batches(batches):
        text, id_part = split_batch(batch, config.text_field, config.id_field)
        sh, off = shingle_hashes(text, config.ngram)
        keys.append(np.where((np.diff(off) > 0)[:, None], band_keys(sh, off, a, b, bands, rows), 0))
        sets.append((_unique_sets(sh, off), np.diff(off) > 0))
        lengths.append(pa.compute.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64))
        ids.append(id_part)
    n = sum(len(x) for x in lengths)
    keys = np.concatenate(keys)
    has = np.concatenate([h for _, h in sets])
    values = np.concatenate([v for (v, _), _ in sets])
    sizes = np.concatenate([np.diff(p) for (_, p), _ in sets])
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    records = np.flatnonzero(has)
    codes = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
        i * n + j for i, j in (bucket_pairs(keys[records, band], records, config.max_bucket_size)
                               for band in range(bands))]))
    left, right = codes // max(n, 1), codes % max(n, 1)
    stats = {"bands": bands, "rows": rows, "records_without_words": int(n - len(records)),
             "candidate_pairs": len(codes), "verified": config.verify, "rejected_pairs": 0}
    if config.verify and len(codes):
        ok = set_jaccard(left, right, values, ptr) >= config.cutoff
        left, right = left[ok], right[ok]
        stats["rejected_pairs"] = int((~ok).sum())
    stats["duplicate_pairs"] = len(left)
    id_all = pa.concat_arrays(ids) if ids and all(x is not None for x in ids) else None
    return build_result(connected_components(n, left, right), "near", config.keep, np.concatenate(lengths),
                        scores, id_all, stats)


def assert_same(got, ref):
    assert got.to_table().equals(ref.to_table())
    assert got.stats == ref.stats


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    """The bundled pool (7,450 records) with 300 of its records appended again with light edits, 60 of them
    twice."""
    pool = pq.read_table(sample_path("pool.parquet"), columns=["id", "text"])
    rng = np.random.default_rng(1)
    pick = rng.choice(pool.num_rows, 300, replace=False)
    texts = pool["text"].to_pylist()
    edited = []
    for k, p in enumerate(np.concatenate([pick, pick[:60]])):
        words = texts[p].split(" ")
        if k % 2:
            words = [w for w in words if rng.random() > 0.05]  # drop 5% of the words
        edited.append(" ".join(words) if k % 3 else "Share this page\n" + " ".join(words))
    extra = pa.table({"id": [f"copy-{k}" for k in range(len(edited))], "text": edited})
    return pa.concat_tables([pool, extra.cast(pool.schema)])


@pytest.mark.parametrize("config", [MinHashConfig(threshold=0.7), MinHashConfig(threshold=0.5, keep="longest"),
                                    MinHashConfig(threshold=0.8, verify=False, max_bucket_size=3)])
def test_sample_matches_the_reference_for_any_partitioning(sample, config):
    ref = reference(sample.to_batches(max_chunksize=5000), config)
    stats = ref.stats  # real work: clusters of more than two, rejected candidates
    assert stats["dropped"] > 150 and stats["records_in_clusters"] > 2 * stats["clusters"]
    assert stats["rejected_pairs"] > 0 or not config.verify
    for parts in (1, 3, 7):
        got = near_duplicates(sample.to_batches(max_chunksize=5000), config, partitions=parts)
        assert_same(got, ref)
        assert got.shuffle["partitions"] == parts


def test_workers_batch_sizes_and_groups_do_not_change_anything(sample):
    config = MinHashConfig(threshold=0.6, keep="longest")
    ref = reference(sample.to_batches(max_chunksize=5000), config)
    with LocalEngine(2) as engine:
        for size, parts, group in ((333, 3, 1000), (5000, 7, 1), (100_000, None, 65_536)):
            got = near_duplicates(sample.to_batches(max_chunksize=size), config, engine=engine, partitions=parts,
                                  group_records=group)
            assert_same(got, ref)
            # a group closes once it holds group_records: one spill file per group
            assert (got.shuffle["sketch_files"] == 1) == (group >= sample.num_rows)
    assert got.shuffle["partitions"] == 2  # the default: one partition per worker at this size


def test_a_dataset_read_piece_by_piece_on_the_workers_gives_the_same_decisions(tmp_path, sample):
    """The job's path: each sketch (and exact-hash) task reads its own piece of a Parquet file and a JSONL file
    with bad lines; files number their records from 0 and the pieces' offsets are applied when read. Decisions,
    ids and counts equal the reference over the usable records in reading order."""
    import json

    from thresher.dedup import ExactConfig, exact_duplicates
    from thresher.io.dataset import read
    from thresher.io.errors import ErrorLog

    head, tail = sample.slice(0, 5000), sample.slice(5000)
    pq.write_table(head, tmp_path / "a.parquet", row_group_size=300)
    lines = [json.dumps(r) for r in tail.to_pylist()]
    lines[10:10] = ["{not json", json.dumps({"id": "no-text"})]  # two bad records, skipped and counted
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    pool = read([tmp_path / "a.parquet", tmp_path / "b.jsonl"], on_error="skip", batch_size=100)
    assert len(pool.pieces()) > 4
    config = MinHashConfig(threshold=0.6, keep="longest")
    ref = reference(sample.to_batches(max_chunksize=5000), config)
    with LocalEngine(2) as engine:
        errors = ErrorLog("skip")
        got = near_duplicates(pool, config, engine=engine, partitions=3, errors=errors)
        assert_same(got, ref)
        assert errors.to_dict()["total"] == 2
        assert got.shuffle["sketch_files"] == len(pool.pieces())
        exact = exact_duplicates(pool, ExactConfig(), engine=engine)
    assert exact.to_table().equals(exact_duplicates(sample.to_batches(max_chunksize=5000), ExactConfig()).to_table())


def test_pairs_formed_in_several_bands_are_counted_once():
    """Identical copies collide in every band, so each pair is formed in up to ``bands`` partitions; big buckets
    (more than max_bucket_size members) link chains; records without words never pair."""
    texts = (["one text repeated word for word in many places across the web today"] * 9
             + ["another text that is repeated many times with different words in it"] * 3
             + ["", "!!!"] + [f"unique record number {i} with its own words {i * 7} and more" for i in range(20)])
    config = MinHashConfig(threshold=0.7, max_bucket_size=4, keep="longest")
    ref = reference([texts], config)
    assert ref.stats["candidate_pairs"] == 1 + 2 * 7 + 3  # chain of 9 (first + previous), all pairs of 3
    for parts in (1, 3, 7):
        assert_same(near_duplicates([texts[:5], texts[5:]], config, partitions=parts), ref)


def test_spill_files_are_removed_and_a_stale_spill_is_ignored(tmp_path, sample):
    config = MinHashConfig(threshold=0.7)
    stale = tmp_path / f"{SPILL_PREFIX}crashed"
    stale.mkdir()
    (stale / "keys-00000000.bin").write_bytes(b"left by a run that crashed")
    got = near_duplicates(sample.to_batches(max_chunksize=4000), config, partitions=3, spill_dir=tmp_path)
    assert_same(got, reference(sample.to_batches(max_chunksize=4000), config))
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.name]  # ours is gone, the stale one untouched
    assert got.shuffle["bytes_spilled"] > 8 * 14 * sample.num_rows  # keys (at least) really went to disk


def _graphs():
    """Graphs that make connected components work: random sparse edges, a long path numbered against the grain
    (labels must travel its whole length), a star whose centre is its largest node, and a path in shuffled order."""
    rng = np.random.default_rng(3)
    yield "random", 600, rng.integers(0, 500, 400), rng.integers(0, 500, 400)
    path = np.arange(999, 0, -1)
    yield "reversed path", 1000, path, path - 1
    yield "star at its largest", 300, np.full(299, 299), np.arange(299)
    order = rng.permutation(2000)
    yield "shuffled path", 2001, order[:-1], order[1:]


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_components_on_the_engine_match_a_whole_graph_pass(tmp_path, parts):
    """Large-star/small-star rounds over spill files give the smallest member of every component, for any number
    of partitions and however the edges were spread over the tasks that wrote them."""
    from thresher.dedup.components import component_labels, write_undirected

    for k, (name, n, a, b) in enumerate(_graphs()):
        spill = tmp_path / f"{parts}-{k}"
        spill.mkdir()
        writers = 4
        for w in range(writers):  # edges spread over writers as spanning forests, as the verify tasks write them
            child, root = spanning_forest(a[w::writers], b[w::writers])
            write_undirected(spill, 0, w, child, root, parts)
        (members, labels), rounds = component_labels(spill, writers, parts, LocalEngine(1))
        want = connected_components(n, a, b)
        dense = np.arange(n)
        dense[members] = labels
        np.testing.assert_array_equal(dense, want, err_msg=name)
        sizes = np.bincount(want, minlength=n)
        np.testing.assert_array_equal(members, np.flatnonzero(sizes[want] > 1), err_msg=name)  # only the paired
        assert rounds["component_rounds"] >= 3
        assert not list(spill.glob("edges-000-*")), "a finished round's files are removed"


def test_spanning_forest_keeps_the_components():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 500, 400), rng.integers(0, 500, 400)
    child, root = spanning_forest(a, b)
    assert len(child) == len(np.unique(child)) and (root < child).all()
    np.testing.assert_array_equal(connected_components(600, child, root), connected_components(600, a, b))


def test_the_main_process_never_holds_the_band_keys():
    """With 64 bands the keys of all records take 512 bytes per record; with the work in two worker processes, the
    main process's numpy peak stays far below that (ids and per-record decisions only)."""
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    n = 20_000
    texts = [" ".join(vocab[rng.integers(0, 5000, 30)]) for _ in range(n - 200)]
    texts += texts[:200]  # 200 exact copies: real clusters
    table = pa.table({"id": [f"r{i}" for i in range(n)], "text": texts})
    config = MinHashConfig(threshold=0.7, bands=64, rows=2)
    key_bytes = n * 64 * 8
    with LocalEngine(2) as engine:
        near_duplicates(table.slice(0, 100), config, engine=engine)  # start the workers outside the measurement
        tracemalloc.start()
        try:
            # groups of 2,048 records: this process holds one group's texts while it is sent, never all of them
            got = near_duplicates(table.to_batches(max_chunksize=2000), config, engine=engine, group_records=2048)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert got.stats["dropped"] == 200
    assert peak < key_bytes / 4, f"peak {peak / n:.0f} bytes per record"
    tracemalloc.start()  # the same measurement sees the keys when they are in this process
    try:
        reference(table.to_batches(max_chunksize=2000), config)
        _, ref_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref_peak > key_bytes


def test_a_dedup_run_spills_in_its_folder_and_clears_what_a_crashed_run_left(tmp_path, small_pool):
    import thresher as th

    out = tmp_path / "run"
    stale = out / f"{SPILL_PREFIX}crashed"
    stale.mkdir(parents=True)
    (stale / "keys-00000000.bin").write_bytes(b"left by a run that crashed")
    run = th.deduplicate(str(small_pool), out=out, method="minhash", workers=2, report=False)
    assert not list(out.glob(f"{SPILL_PREFIX}*"))
    assert run.manifest["shuffle"]["minhash"]["bytes_spilled"] > 0
    pool = pq.read_table(small_pool)
    ref = reference(pool, MinHashConfig())
    assert pq.read_table(out / "scores" / "scores.parquet").equals(ref.to_table())


def test_decisions_combine_methods_and_write_the_same_table_in_any_slices(sample):
    """An exact reason wins over a near one; the decision table built slice by slice (as the job writes it) equals
    the whole table, and the counts by kind match the reasons."""
    from thresher.dedup import ExactConfig, exact_duplicates
    from thresher.dedup.decisions import Decisions

    copies = sample.slice(0, 50)
    table = pa.concat_tables([sample, copies.set_column(0, "id", pa.array([f"again-{k}" for k in range(50)]))])
    exact = exact_duplicates(table.to_batches(max_chunksize=4000), ExactConfig())
    near = near_duplicates(table.to_batches(max_chunksize=4000), MinHashConfig(threshold=0.7))
    d = Decisions.of({"exact": exact, "minhash": near})
    whole = d.table()
    assert pa.concat_tables(d.slices(rows=777)).equals(whole)
    reasons = whole["dup_reason"].to_pylist()
    both = np.flatnonzero(~exact.keep & ~near.keep)
    assert len(both) >= 50  # exact copies are near copies too: exact names them
    assert all(reasons[i].startswith("exact_duplicate_of:") for i in both)
    near_only = np.flatnonzero(exact.keep & ~near.keep)
    assert len(near_only) > 0 and all(reasons[i] == near.reasons()[i].as_py() for i in near_only)
    assert d.dropped() == {"exact": sum(r is not None and r.startswith("exact") for r in reasons),
                           "near": sum(r is not None and r.startswith("near") for r in reasons), "semantic": 0}
    assert whole["dup_keep"].to_pylist() == list(exact.keep & near.keep)
    # held sparse, the columns are the dense combination of the two methods' per-record arrays, each cluster followed
    # to the record finally kept (an exact copy of a near-dropped record: here there are some)
    named = np.where(exact.keep, near.cluster, exact.cluster)
    final = named.copy()
    while not np.array_equal(final[final], final):
        final = final[final]
    assert (final != named).any() and whole["dup_cluster"].to_pylist() == final.tolist()
    ids = whole["id"].to_pylist()
    assert all(r is None or r.endswith(f"_of:{ids[named[i]]}") for i, r in enumerate(reasons))
    assert whole["dup_exact_cluster"].to_pylist() == exact.cluster.tolist()
    assert whole["dup_near_cluster"].to_pylist() == near.cluster.tolist()
    assert len(d.members) < table.num_rows // 2 and d.n == table.num_rows
    keep, reasons_ = d.keep_and_reasons(1000, 3000)
    assert keep.tolist() == whole["dup_keep"].to_pylist()[1000:3000]
    assert reasons_.to_pylist() == reasons[1000:3000]


def test_exact_dedup_as_a_shuffle_matches_grouping_every_hash_at_once(sample, tmp_path):
    """Exact dedup's reduce tasks each group one range of hashes: the first record of every text, over all
    records at once (np.unique on the hashes), is what they find for any number of partitions and workers."""
    from thresher.dedup import ExactConfig, exact_duplicates
    from thresher.dedup.exact import text_hashes

    table = pa.concat_tables([sample, sample.slice(100, 400).set_column(
        0, "id", pa.array([f"again-{k}" for k in range(400)]))])
    config = ExactConfig(keep="longest")
    text = table["text"].combine_chunks().cast(pa.large_string())
    h = np.ascontiguousarray(text_hashes(text, config)).view(np.dtype((np.void, 16))).ravel()
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    ref = build_result(first[inverse.ravel()].astype(np.int64), "exact", "longest",
                       pa.compute.utf8_length(text).to_numpy().astype(np.int64), None,
                       table["id"].combine_chunks().cast(pa.large_string()), {})
    assert ref.stats["dropped"] >= 400
    with LocalEngine(2) as engine:
        for parts, size in ((1, 5000), (3, 333), (7, 20_000)):
            got = exact_duplicates(table.to_batches(max_chunksize=size), config, engine=engine, partitions=parts,
                                   spill_dir=tmp_path)
            assert got.to_table().equals(ref.to_table()) and got.stats == ref.stats
            assert got.shuffle["partitions"] == parts
    assert not list(tmp_path.iterdir())  # the spill is removed


def _semantic_reference(X: np.ndarray, blocks, config, order: np.ndarray):
    """SemDeDup over all pairs at once: the same k-means clusters (over the same blocks), then every pair within
    a cluster at or above the threshold, components over all of them, in reading order (record order[k] is block
    row k)."""
    from thresher.selectors.kmeans import kmeans

    k = config.n_clusters
    labels = kmeans(blocks, k, seed=config.seed).labels
    Y = np.concatenate([b.rows() for b in blocks])
    a, b = [], []
    for c in range(k):
        m = np.flatnonzero(labels == c)
        i, j = np.nonzero(np.triu(Y[m] @ Y[m].T >= config.threshold, 1))
        a.append(order[m[i]])
        b.append(order[m[j]])
    a, b = np.concatenate(a), np.concatenate(b)
    return connected_components(len(X), a, b), len(a)


def test_semantic_dedup_on_the_engine_matches_all_pairs_within_clusters():
    """Vectors shuffled by cluster, pairs per partition of clusters and components in rounds give exactly the
    components of all in-cluster pairs at once, for blocks in reading order and in another order (an embed run
    of a shuffled pool), on one or two worker processes."""
    from thresher.dedup.semantic import SemanticConfig, semantic_duplicates
    from thresher.selectors.diversity import normalize_rows
    from thresher.selectors.kmeans import blocks_of

    rng = np.random.default_rng(4)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    X = normalize_rows(np.concatenate([base, base[:120] + rng.normal(scale=0.02, size=(120, 16)),
                                       base[:40] + rng.normal(scale=0.02, size=(40, 16))]).astype(np.float32))
    config = SemanticConfig(threshold=0.97, n_clusters=7, keep="first")
    shuffled = rng.permutation(len(X))  # block row k holds record shuffled[k]
    for order in (np.arange(len(X)), shuffled):
        blocks = blocks_of(X[order], 70)
        ref_labels, ref_pairs = _semantic_reference(X, blocks, config, order)
        ref = build_result(ref_labels, "semantic", "first", None, None, None, {})
        assert ref.stats["dropped"] >= 100
        for workers in (1, 2):
            with LocalEngine(workers) as engine:
                got = semantic_duplicates(blocks, config, engine=engine, order=None if order is None else order)
            assert np.array_equal(got.keep, ref.keep) and np.array_equal(got.cluster, ref.cluster)
            assert got.stats["duplicate_pairs"] == ref_pairs and got.shuffle["partitions"] == min(7, workers)


def test_exact_duplicates_are_not_sketched_and_decide_the_same(tmp_path, sample):
    """With --method both, the records exact dedup drops skip MinHash: the decisions, clusters and reasons equal
    those of both methods run in full (and combined), on a pool read in many pieces where every third record is
    an exact copy (other case and spacing) of an earlier one."""
    from thresher.dedup import ExactConfig, exact_duplicates
    from thresher.dedup.decisions import Decisions
    from thresher.io.dataset import read
    from thresher.jobs.dedup import run_dedup

    base = sample.slice(0, 3000)
    copies = [t.upper().replace(" ", "  ") if k % 2 else t for k, t in enumerate(base["text"].to_pylist()[::3])]
    table = pa.concat_tables([base, pa.table({"id": [f"exact-{k}" for k in range(len(copies))],
                                              "text": copies}).cast(base.schema)])
    table = table.take(np.random.default_rng(0).permutation(table.num_rows))  # copies before and after originals
    pq.write_table(table, tmp_path / "pool.parquet", row_group_size=100)
    pool = read([tmp_path / "pool.parquet"], batch_size=25)
    assert len(pool.pieces()) > 4
    run = run_dedup(pool, tmp_path / "run", method="both", minhash=MinHashConfig(threshold=0.7), report=False,
                    workers=2)
    batches = table.to_batches(max_chunksize=1000)
    exact = exact_duplicates(batches, ExactConfig())
    near = near_duplicates(batches, MinHashConfig(threshold=0.7))
    full = Decisions.of({"exact": exact, "minhash": near}).table()
    got = run.scores()
    for column in ("id", "dup_keep", "dup_reason", "dup_cluster", "dup_exact_cluster"):
        assert got[column].equals(full[column]), column
    stats = run.manifest["metrics"]["minhash"]
    assert stats["skipped_exact_duplicates"] == exact.n_dropped > 0.9 * len(copies)
    assert stats["records_without_words"] == near.stats["records_without_words"]
    assert stats["duplicate_pairs"] < near.stats["duplicate_pairs"]  # the copies' pairs were never formed
