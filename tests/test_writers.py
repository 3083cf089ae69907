"""Writing the selected records on the engine: each task reads its own run of the pool's pieces and writes its own
file; the records, their order and every field equal a sequential pick by position, for any task layout."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.engine import LocalEngine
from thresher.io import writers
from thresher.io.dataset import read
from thresher.io.errors import ErrorLog
from thresher.io.pieces import count_records
from thresher.io.writers import write_selection


@pytest.fixture(scope="module")
def dirty_pool(tmp_path_factory, sample_pool) -> tuple:
    """1,200 real records in Parquet row groups of 80, with a record of empty text every 97 rows and extra fields
    (nested, numeric), so positions skip bad records and records keep fields beyond id and text."""
    root = tmp_path_factory.mktemp("writers")
    rows, good = [], []
    for i, r in enumerate(pq.read_table(sample_pool).slice(0, 1200).to_pylist()):
        if i % 97 == 5:
            rows.append({**r, "id": f"empty-{i}", "text": "", "rank": -1, "tags": []})
        rec = {**r, "rank": i, "tags": ["t", str(i % 3)]}
        good.append(rec)
        rows.append(rec)
    path = root / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=80)
    return path, good


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "jsonl.gz"])
@pytest.mark.parametrize("layout", [(65_536, 1 << 20), (200, 1 << 20), (10**6, 150)])
def test_records_written_by_tasks_equal_a_sequential_pick(tmp_path, dirty_pool, monkeypatch, fmt, layout):
    path, good = dirty_pool
    monkeypatch.setattr(writers, "PART_ROWS", layout[0])
    monkeypatch.setattr(writers, "TASK_POOL_ROWS", layout[1])
    pool = read(path, batch_size=20, on_error="skip")  # pieces of 4 row groups (320 rows): four of them
    assert len(pool.pieces()) == 4
    rows = np.random.default_rng(0).choice(len(good), 300, replace=False)
    ids = pa.array([good[i]["id"] for i in rows], pa.large_string())
    with LocalEngine(2) as engine:
        written = write_selection(pool, ids, tmp_path, fmt, rows, engine)
    want = [good[i] for i in np.sort(rows)]  # input order, every field
    sel = tmp_path / "selected"
    if fmt == "parquet":
        got = pa.concat_tables(pq.read_table(sel / f) for f in written["files"]).to_pylist()
        assert written["files"] == [f"part-{k:05d}.parquet" for k in range(len(written["files"]))]
        expected_files = {(65_536, 1 << 20): 1, (200, 1 << 20): 2, (10**6, 150): 4}[layout]
        assert len(written["files"]) == expected_files
    else:
        opener = gzip.open if fmt == "jsonl.gz" else open
        with opener(sel / written["files"][0], "rt", encoding="utf-8") as f:
            got = [json.loads(line) for line in f]
    assert written["rows"] == 300 and got == want
    assert (sel / "ids.txt").read_text().splitlines() == ids.to_pylist()  # priority order kept
    assert sorted(p.name for p in sel.iterdir() if p.name.startswith(".")) == []  # no chunk left behind


@pytest.mark.parametrize("layout", [(65_536, 1 << 20), (200, 1 << 20), (10**6, 150)])
def test_every_record_but_the_dropped_ones_is_written_as_the_same_pick_listed(tmp_path, dirty_pool, monkeypatch,
                                                                              layout):
    """What a dedup run writes, told by the rows it drops (AllBut), equals listing every kept row, in files, rows
    and ids.txt, whatever the task layout."""
    from thresher.io.writers import AllBut

    path, good = dirty_pool
    monkeypatch.setattr(writers, "PART_ROWS", layout[0])
    monkeypatch.setattr(writers, "TASK_POOL_ROWS", layout[1])
    pool = read(path, batch_size=20, on_error="skip")
    dropped = np.sort(np.random.default_rng(1).choice(len(good), 400, replace=False))
    kept = np.setdiff1d(np.arange(len(good)), dropped)
    ids = pa.array([r["id"] for r in good], pa.large_string())
    with LocalEngine(2) as engine:
        told = write_selection(pool, None, tmp_path / "a", "parquet", None, engine, selection=AllBut(dropped, ids))
        listed = write_selection(pool, ids.take(pa.array(kept)), tmp_path / "b", "parquet", kept, engine)
    assert told == listed and told["rows"] == len(kept)
    a, b = tmp_path / "a" / "selected", tmp_path / "b" / "selected"
    for name in told["files"]:
        assert pq.read_table(a / name).equals(pq.read_table(b / name))
    assert (a / "ids.txt").read_text() == (b / "ids.txt").read_text()
    assert (a / "ids.txt").read_text().splitlines() == [good[i]["id"] for i in kept]


def test_piece_counts_skip_bad_records_and_given_counts_skip_the_counting_pass(tmp_path, dirty_pool, monkeypatch):
    path, good = dirty_pool
    pool = read(path, batch_size=20, on_error="skip")
    counts = [count_records(p) for p in pool.pieces()]
    assert sum(counts) == len(good) == sum(len(b) for b in pool.iter_batches(ErrorLog("skip")))
    monkeypatch.setattr(writers, "count_records", lambda piece: pytest.fail("counted again"))
    rows = np.array([0, 640, 1199])
    ids = pa.array([good[i]["id"] for i in rows], pa.large_string())
    written = write_selection(pool, ids, tmp_path, "jsonl", rows, None, np.array(counts))
    assert written["rows"] == 3


def test_a_position_beyond_the_pool_or_a_changed_id_is_refused(tmp_path, dirty_pool):
    path, good = dirty_pool
    pool = read(path, batch_size=20, on_error="skip")
    with pytest.raises(Exception, match="usable records now"):
        write_selection(pool, pa.array(["x"], pa.large_string()), tmp_path / "a", "parquet", np.array([len(good)]))
    with pytest.raises(Exception, match="changed between scoring and writing"):
        write_selection(pool, pa.array([good[3]["id"]], pa.large_string()), tmp_path / "b", "parquet", np.array([4]))


def test_a_select_runs_feature_store_knows_each_pieces_record_count(tmp_path, dirty_pool):
    """The select job hands the writer its pieces' record counts from the feature store (no counting pass): they
    must be the counts a counting pass finds, bad records skipped."""
    from thresher.features.hashed_ngrams import HashedNgramConfig
    from thresher.jobs.featurize import featurize_pool, piece_rows, store_for

    path, _ = dirty_pool
    pool = read(path, batch_size=20, on_error="skip")
    store = store_for(pool, HashedNgramConfig(), tmp_path / "cache", None)
    with LocalEngine(2) as engine:
        index = featurize_pool(pool, store, engine, None, progress=False)
    assert piece_rows(store, index.shard_sizes).tolist() == [count_records(p) for p in pool.pieces()]
