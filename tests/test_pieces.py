"""Workers read their own pieces of the input (a file, or runs of a Parquet file's row groups): every record once, in
reading order, with the ids, the error counts and examples, the first error and the duplicate-id check of a
sequential read (``Dataset.iter_batches``); featurizing, the score pass, LF application and embeddings by pieces give
what a sequential read gives, at any worker count, and no work item sent to a worker holds a record's text."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.demo import sample_path
from thresher.engine import LocalEngine
from thresher.errors import InputError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.io.dataset import read
from thresher.io.errors import ErrorLog
from thresher.io.ids import DuplicateIdError
from thresher.io.pieces import PieceMerge, PieceReader
from thresher.jobs.featurize import featurize_pool, store_for
from thresher.scorers.importance import ImportanceConfig, ImportanceScorer

TARGET = str(sample_path("target_news.jsonl"))


def _texts(n: int, start: int = 0) -> list[str]:
    return [f"record {i} talks about topic {i % 7} and then word{i % 11} again" for i in range(start, start + n)]


def _mixed(root: Path) -> list[tuple[str, str]]:
    """A folder of JSONL, gzipped JSONL, multi-row-group Parquet, CSV and .txt; the (id, text) of every record in
    reading order, worked out from how the files were written."""
    root.mkdir()
    expected = []
    lines = []
    for i, t in enumerate(_texts(30)):
        lines.append(json.dumps({"text": t}))
        if i % 10 == 9:
            lines.append("")  # blank lines are skipped but still count as lines
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    for line, raw in enumerate(lines, 1):
        if raw:
            expected.append((f"a.jsonl:{line}", json.loads(raw)["text"]))
    gz = _texts(20, 100)
    with gzip.open(root / "b.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"id": f"b{i}", "text": t}) + "\n" for i, t in enumerate(gz))
    expected += [(f"b{i}", t) for i, t in enumerate(gz)]
    pt = _texts(200, 1000)
    pq.write_table(pa.table({"text": pt}), root / "c.parquet", row_group_size=15)
    expected += [(f"c.parquet:{i}", t) for i, t in enumerate(pt)]
    ct = _texts(25, 5000)
    pa.csv.write_csv(pa.table({"id": [f"d{i}" for i in range(25)], "text": ct}), root / "d.csv")
    expected += [(f"d{i}", t) for i, t in enumerate(ct)]
    (root / "e.txt").write_text("a whole file is one record")
    expected.append(("e.txt", "a whole file is one record"))
    return expected


def _read_by_pieces(ds, extra=()) -> tuple[list[pa.RecordBatch], ErrorLog, pa.Array]:
    """What the workers and the main process do, in this process: each piece read alone, then merged in order."""
    errors = ErrorLog(ds.on_error)
    merge = ds.merge(errors)
    batches, ids = [], []
    for piece in ds.pieces(extra):
        reader = PieceReader(piece)
        batches += list(reader.batches())
        ids.append(merge.add(piece, reader.result()))
    ds.merged(merge)
    return batches, errors, pa.concat_arrays(ids)


def _sequential(ds, extra=()) -> tuple[list[pa.RecordBatch], ErrorLog]:
    errors = ErrorLog(ds.on_error)
    return list(ds.iter_batches(errors, extra)), errors


def _column(batches, name) -> list:
    return [v for b in batches for v in b.column(name).to_pylist()]


def test_pieces_cover_every_record_once_in_reading_order(tmp_path):
    expected = _mixed(tmp_path / "mixed")
    ds = read(tmp_path / "mixed", batch_size=4)
    pieces = ds.pieces()
    assert [p.file.name for p in pieces].count("c.parquet") == 3  # 14 row groups of 15 rows, cut after >= 64 rows
    assert [p.row_groups for p in pieces if p.file.name == "c.parquet"] == [(0, 5), (5, 10), (10, 14)]
    batches, errors, ids = _read_by_pieces(ds)
    assert list(zip(_column(batches, "id"), _column(batches, "text"))) == expected
    assert ids.to_pylist() == [i for i, _ in expected]
    assert max(b.num_rows for b in batches) == 4 and errors.n_failed == 0
    seq, _ = _sequential(read(tmp_path / "mixed", batch_size=4))
    assert list(zip(_column(seq, "id"), _column(seq, "text"))) == expected


def test_a_piece_is_small_and_is_the_same_whatever_the_batch_size_of_other_files(tmp_path):
    _mixed(tmp_path / "mixed")
    import pickle

    pieces = read(tmp_path / "mixed", batch_size=4).pieces(["domain"])
    assert all(len(pickle.dumps(p)) < 1000 for p in pieces)  # a place in a file, not its records
    assert pieces[0].options.extra == ("domain",)
    assert [p.index for p in pieces] == list(range(len(pieces)))


def _dirty(root: Path) -> None:
    """Bad JSON, empty texts and a short CSV row spread over several files and several pieces of one file."""
    root.mkdir()
    lines = [json.dumps({"text": t}) for t in _texts(12)]
    lines[2] = '{"text": "unterminated'
    lines[4] = json.dumps({"text": "   "})
    lines[7] = "[1, 2]"
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    texts = _texts(120, 300)
    for i in (2, 40, 41, 100):
        texts[i] = ""
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(120)], "text": texts}), root / "b.parquet",
                   row_group_size=10)
    (root / "c.csv").write_text('id,text\nc1,"one fine text"\nc2\nc3,"another fine text"\n')


def test_skipped_records_are_counted_and_named_as_by_a_sequential_read(tmp_path):
    _dirty(tmp_path / "dirty")
    ds = read(tmp_path / "dirty", batch_size=4, on_error="skip")
    assert len([p for p in ds.pieces() if p.file.name == "b.parquet"]) == 2
    batches, errors, ids = _read_by_pieces(ds)
    seq, seq_errors = _sequential(read(tmp_path / "dirty", batch_size=4, on_error="skip"))
    assert errors.to_dict() == seq_errors.to_dict()
    assert errors.counts == {"bad_json": 1, "empty_text": 5, "not_an_object": 1, "bad_csv_row": 1}
    assert {(e["path"].rsplit("/", 1)[1], e["reason"]) for e in errors.examples} >= {("a.jsonl", "bad_json"),
                                                                                   ("c.csv", "bad_csv_row")}
    assert ids.to_pylist() == _column(seq, "id") == _column(batches, "id")
    assert "p40" not in ids.to_pylist() and "p39" in ids.to_pylist()


def test_skipped_records_match_the_unchanged_sequential_reader_on_single_piece_files(tmp_path):
    """Against a sequential read written out independently: JSONL and CSV files are one piece each, so the error
    log (counts and examples) must be what reading them one line after another reports."""
    _dirty(tmp_path / "dirty")
    (tmp_path / "dirty" / "b.parquet").unlink()
    ds = read(tmp_path / "dirty", on_error="skip")
    _, errors, _ = _read_by_pieces(ds)
    reasons = [(e["path"].rsplit("/", 1)[1], e["line"], e["reason"]) for e in errors.examples]
    # the reader's problems come as it reads a chunk, empty texts once the chunk is checked
    assert reasons == [("a.jsonl", 3, "bad_json"), ("a.jsonl", 8, "not_an_object"), ("a.jsonl", 5, "empty_text"),
                       ("c.csv", None, "bad_csv_row")]


def _store(tmp_path: Path, ds, workers: int):
    config = HashedNgramConfig(num_buckets=1 << 12)
    store = store_for(ds, config, tmp_path / f"cache-{workers}", None)
    with LocalEngine(workers) as engine:
        return store, featurize_pool(ds, store, engine, None, progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_featurizing_by_pieces_gives_the_sequential_ids_and_errors(tmp_path, workers):
    _dirty(tmp_path / "dirty")
    ds = read(tmp_path / "dirty", batch_size=4, on_error="skip")
    store, index = _store(tmp_path, ds, workers)
    seq, seq_errors = _sequential(read(tmp_path / "dirty", batch_size=4, on_error="skip"))
    # the per-record index is on disk, a row group per shard, never gathered in the main process
    assert pq.read_table(index.path)["id"].to_pylist() == _column(seq, "id")
    assert [index.shard(i).num_rows for i in range(len(index.shard_sizes))] == index.shard_sizes.tolist()
    assert index.errors == seq_errors.to_dict()
    names = sorted(p.name for p in store.root.glob("shard-*.npz"))
    assert len(names) == len(index.shard_sizes) and names[0] == "shard-000000-0000.npz"
    # shard files and the per-record features are fixed by the input, not the worker count
    again = read(tmp_path / "dirty", batch_size=4, on_error="skip")
    other, other_index = _store(tmp_path / "again", again, 3 - workers)
    assert names == sorted(p.name for p in other.root.glob("shard-*.npz"))
    assert (index.shard_sizes == other_index.shard_sizes).all()
    for i in range(len(index.shard_sizes)):
        a, b = store.read(i), other.read(i)
        assert (a.n_tokens == b.n_tokens).all() and all((x == y).all() for x, y in zip(a.buckets, b.buckets))


def _raises(fn) -> str:
    with pytest.raises(InputError) as e:
        fn()
    return str(e.value)


def test_the_first_error_raised_is_the_one_a_sequential_read_meets_first(tmp_path):
    """The Parquet file's bad record is in its second piece, which a worker may finish before the first; the
    later file's bad line is met even later: the error raised is the Parquet one, as in a sequential read."""
    root = tmp_path / "raise"
    root.mkdir()
    texts = _texts(120)
    texts[105] = ""
    pq.write_table(pa.table({"text": texts}), root / "a.parquet", row_group_size=10)
    (root / "b.jsonl").write_text('{"text": "fine"}\nnot json\n')
    sequential = _raises(lambda: _sequential(read(root, batch_size=4)))
    assert "a.parquet" in sequential and "row 105" in sequential
    assert _raises(lambda: _read_by_pieces(read(root, batch_size=4))) == sequential
    assert _raises(lambda: _store(tmp_path, read(root, batch_size=4), 2)) == sequential


def test_a_repeated_id_in_another_piece_is_found_naming_both_places(tmp_path):
    path = tmp_path / "ids.parquet"
    ids = [f"r{i}" for i in range(200)]
    ids[150] = "r3"
    pq.write_table(pa.table({"id": ids, "text": _texts(200)}), path, row_group_size=15)
    ds = read(path, batch_size=4)
    assert len(ds.pieces()) == 3
    with pytest.raises(DuplicateIdError) as seq:
        _sequential(read(path, batch_size=4))
    with pytest.raises(DuplicateIdError) as by_pieces:
        _store(tmp_path, read(path, batch_size=4), 2)
    assert str(by_pieces.value) == str(seq.value)
    assert f"{path} row 150 repeats the id of {path} row 3" in str(seq.value)


def test_renamed_ids_are_those_of_a_sequential_read(tmp_path):
    path = tmp_path / "ids.parquet"
    ids = [f"r{i}" for i in range(200)]
    ids[150] = ids[170] = "r3"
    ids[180] = "r3#2"  # an id that looks like a renamed one: renaming skips it
    pq.write_table(pa.table({"id": ids, "text": _texts(200)}), path, row_group_size=15)
    ds = read(path, batch_size=4, duplicate_ids="rename")
    _, index = _store(tmp_path, ds, 2)
    seq_ds = read(path, batch_size=4, duplicate_ids="rename")
    seq, _ = _sequential(seq_ds)
    ids = pq.read_table(index.path)["id"]
    assert ids.to_pylist() == _column(seq, "id")
    assert [ids[i].as_py() for i in (150, 170, 180)] == ["r3#2", "r3#3", "r3#2#2"]
    assert ds.renamed_ids == seq_ds.renamed_ids == 3
    assert ds.rename_examples == seq_ds.rename_examples


def test_a_merge_refuses_pieces_out_of_order(tmp_path):
    _mixed(tmp_path / "mixed")
    ds = read(tmp_path / "mixed", batch_size=4)
    pieces = ds.pieces()
    reader = PieceReader(pieces[1])
    list(reader.batches())
    with pytest.raises(AssertionError):
        PieceMerge(ErrorLog(), None).add(pieces[1], reader.result())


def _cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def _reference_scores(pool: Path, batch_size: int, ngrams: int = 2, whole: bool = False) -> pa.Table:
    """DSIR scores from a sequential read in this process (no engine, no feature store): what select must give
    (``whole``: each file read whole, as one piece)."""
    config = HashedNgramConfig(ngrams=ngrams)
    featurizer = HashedNgramFeaturizer(config)
    target = [featurizer.transform(b.column("text")) for b in read(TARGET).iter_batches(ErrorLog())]
    target_counts = sum(f.counts(config.num_buckets) for f in target)
    target_tokens = np.concatenate([f.n_tokens for f in target])
    ds = read(pool, batch_size=batch_size, on_error="skip")
    batches = list((_whole(ds) if whole else ds).iter_batches(ErrorLog("skip")))
    features = [featurizer.transform(b.column("text")) for b in batches]
    pool_counts = sum(f.counts(config.num_buckets) for f in features)
    target_ngrams = sum(np.maximum(target_tokens - j, 0) for j in range(ngrams))
    scorer = ImportanceScorer(ImportanceConfig()).fit(target_counts, pool_counts, target_ngrams)
    parts = [scorer.score(f) for f in features]
    columns = {"id": _column(batches, "id")}
    columns.update({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    return pa.table(columns)


def _select_at_1_and_2_workers(pool: Path, tmp_path: Path) -> dict[int, Path]:
    """``thresher select`` on ``pool`` (batch size 64, skipping bad records) at 1 and 2 workers, whose scores and
    selection must be the same bytes; the two output folders."""
    runs = {}
    for workers in (1, 2):
        runs[workers] = out = tmp_path / f"w{workers}"
        _cli("select", "--pool", str(pool), "--target", TARGET, "--budget", "10%", "--batch-size", "64",
             "--on-error", "skip", "--workers", str(workers), "--out", str(out), "--no-report", "--quiet")
    for name in ("scores/scores.parquet", "selected/ids.txt", "selected/part-00000.parquet"):
        assert (runs[1] / name).read_bytes() == (runs[2] / name).read_bytes(), name
    return runs


def test_select_by_pieces_scores_as_a_sequential_read_at_any_worker_count(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 2000), pool / "a.parquet", row_group_size=100)
    lines = [json.dumps({"id": f"j{i}", "text": t}) for i, t in enumerate(_texts(40))]
    lines[5], lines[17] = "{broken", json.dumps({"id": "j17", "text": ""})
    (pool / "b.jsonl").write_text("\n".join(lines) + "\n")
    runs = _select_at_1_and_2_workers(pool, tmp_path)
    for out in runs.values():
        cache = next((out / "cache").iterdir())
        assert len(list(cache.glob("shard-000001-*.npz"))) > 0  # the Parquet file was read as several pieces
    names = [sorted(p.name for p in next((runs[w] / "cache").iterdir()).iterdir()) for w in (1, 2)]
    assert names[0] == names[1]
    scores = pq.read_table(runs[1] / "scores" / "scores.parquet")
    reference = _reference_scores(pool, 64)
    assert scores["id"].to_pylist() == reference["id"].to_pylist()
    for column in reference.column_names[1:]:
        assert scores[column].to_pylist() == reference[column].to_pylist(), column
    failed = json.loads((runs[2] / "manifest.json").read_text())["counts"]["pool_failed"]
    assert failed["by_reason"] == {"bad_json": 1, "empty_text": 1}
    assert [(e["line"], e["reason"]) for e in failed["examples"]] == [(6, "bad_json"), (18, "empty_text")]


# ------------------------------------------------ map stages by pieces: score pass, LF application, embeddings

MARKER = "zqxjmarker"  # in every text of the stage pool: no message from the main process to a worker may hold it


def _stage_pool(root: Path) -> Path:
    """A multi-row-group Parquet file (several pieces at batch size 16, with empty texts and a domain column) and a
    JSONL file with bad lines; every text carries MARKER."""
    root.mkdir()
    table = pq.read_table(sample_path("pool.parquet"), columns=["id", "text", "domain"]).slice(0, 600)
    texts = [f"{t} {MARKER}" for t in table["text"].to_pylist()]
    texts[70] = texts[420] = ""
    texts[310], texts[550] = texts[10], texts[20]  # exact duplicates, in the second piece, of records in the first
    pq.write_table(table.set_column(1, "text", pa.array(texts)), root / "a.parquet", row_group_size=50)
    lines = [json.dumps({"id": f"j{i}", "text": f"{t} {MARKER} said the government", "domain": "web"})
             for i, t in enumerate(_texts(60))]
    lines[3], lines[33] = "{broken", json.dumps({"id": "j33", "text": " "})
    (root / "b.jsonl").write_text("\n".join(lines) + "\n")
    return root


class _SequentialReadRefused(type(read(TARGET))):
    """A Dataset whose sequential read fails: a job that uses it reads its records by pieces only."""

    def iter_batches(self, errors, extra_columns=()):
        raise AssertionError("the main process read the records itself")


class _Recording(LocalEngine):
    """The local engine, keeping every work item as it is sent (pickled by value, as the engine may send it)."""

    def __init__(self, workers: int):
        super().__init__(workers)
        self.sent: list[bytes] = []

    def map(self, fn, items):
        import cloudpickle

        def kept(items):
            for item in items:
                self.sent.append(cloudpickle.dumps((fn, item)))
                yield item

        return super().map(fn, kept(items))


def _pool(root: Path, on_error: str = "skip", cls=None, **kw):
    ds = read(root, batch_size=16, on_error=on_error, **kw)
    if cls is not None:
        ds.__class__ = cls
    return ds


def _no_text_sent(engine: _Recording) -> None:
    assert engine.sent and not any(MARKER.encode() in item for item in engine.sent)
    assert max(len(item) for item in engine.sent) < 200_000  # the pool's text is ~1 MB


def _score(root: Path, workers: int, stages, cls=None, on_error="skip"):
    from thresher.pipeline import SCORE_PLAN, Pipeline

    out = root.parent / f"score-{workers}-{cls is not None}-{on_error}"
    (out / "scores").mkdir(parents=True)
    with _Recording(workers) as engine:
        v = SCORE_PLAN.run(pipeline=Pipeline(stages), pool=_pool(root, on_error, cls), target=None, out=out, seed=0,
                           pool_sample=100, group_field="domain", engine=engine, progress=False)
    return out / "scores" / "scores.parquet", v, engine


def _score_reference(root: Path, stages, dedup=None) -> pa.Table:
    """The score pass as a sequential read in this process: apply_stages on each batch of iter_batches."""
    from thresher.pipeline import Pipeline, apply_stages
    from thresher.scorers.registry import References

    fitted, _ = Pipeline(stages)._fit(References(), root)
    tables, start = [], 0
    for batch in _pool(root).iter_batches(ErrorLog("skip"), ["domain"]):
        n = batch.num_rows
        if dedup is not None:  # the whole table's decisions, sliced here
            keep, reasons = dedup.keep_and_reasons()
            dedup_rows = (keep[start: start + n], reasons.slice(start, n))
        cols = apply_stages(fitted, batch.column("text"), None if dedup is None else dedup_rows)
        start += n
        tables.append(pa.table({"id": batch.column("id"), **cols, "group": batch.column("domain")}))
    return pa.concat_tables(tables, promote_options="permissive")


def _same_columns(table: pa.Table, reference: pa.Table) -> None:
    assert table.num_rows == reference.num_rows
    for name in reference.column_names:
        assert table[name].to_pylist() == reference[name].to_pylist(), name


@pytest.mark.parametrize("with_dedup", [False, True])
def test_the_score_pass_by_pieces_is_the_sequential_one_at_any_worker_count(tmp_path, with_dedup):
    from thresher.pipeline import Dedup, Filter, Score

    root = _stage_pool(tmp_path / "pool")
    stages = [Score("gopher"), Filter("gopher_pass"), Score("tokens")]
    if with_dedup:
        stages = [Dedup(method="exact"), *stages]
    assert len(_pool(root).pieces()) == 3  # two pieces of the Parquet file, one of the JSONL file
    paths = {}
    for workers in (1, 2):
        paths[workers], v, engine = _score(root, workers, stages, _SequentialReadRefused if not with_dedup else None)
        if not with_dedup:  # (the dedup stage before the pass reads the pool on its own)
            _no_text_sent(engine)
    assert paths[1].read_bytes() == paths[2].read_bytes()
    dedup = v.dedup
    if with_dedup:
        assert len(dedup.dropped_positions()) >= 2  # the duplicates are dropped by the dedup stage
    reference = _score_reference(root, stages, dedup)
    table = pq.read_table(paths[2])
    _same_columns(table, reference)
    # row groups are a sequential read's batches, not the pieces' (the last batch of a piece is short)
    assert [table.num_rows for table in pq.ParquetFile(paths[2]).iter_batches(batch_size=10**6)] == [table.num_rows]
    meta = pq.read_metadata(paths[2])
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)][:-1] == [16] * (meta.num_row_groups - 1)
    sequential_errors = ErrorLog("skip")
    list(_pool(root).iter_batches(sequential_errors))
    assert v.stats["failed"] == sequential_errors.to_dict()


def test_a_bad_record_stops_every_map_stage_where_a_sequential_read_stops(tmp_path):
    from thresher.jobs.embed import run_embedding
    from thresher.label.apply import apply_lfs
    from thresher.label.lf_files import LFSet
    from thresher.label.lfs import KeywordLF
    from thresher.pipeline import Score

    root = _stage_pool(tmp_path / "pool")
    sequential = _raises(lambda: list(_pool(root, "raise").iter_batches(ErrorLog("raise"))))
    assert "a.parquet: record has an empty text (row 70)" in sequential
    lfs = LFSet(["x", "y"], [KeywordLF("gov", "x", ["government"])])
    for w in (1, 2):
        assert _raises(lambda w=w: _score(root, w, [Score("tokens")], on_error="raise")) == sequential
        assert _raises(lambda w=w: apply_lfs(_pool(root, "raise"), lfs, workers=w)) == sequential
        assert _raises(lambda w=w: run_embedding(_pool(root, "raise"), tmp_path / f"e{w}", workers=w,
                                                 progress=False, report=False)) == sequential


def _label_reference(root: Path, lf_set, scores: pa.Table, **kw):
    """Votes, ids and failures of apply_batch on each batch of a sequential read, in this process."""
    import scipy.sparse as sp

    from thresher.label.apply import _join_scores, apply_batch

    votes, ids, failures = [], [], {}
    for batch in _pool(root, **kw).iter_batches(ErrorLog("skip"), ["domain"]):
        table = _join_scores(pa.Table.from_batches([batch]), scores, ["score"])
        v, failed = apply_batch(lf_set, table, "skip")
        votes.append(v)
        ids += batch.column("id").to_pylist()
        for name, rows in failed.items():
            failures[name] = failures.get(name, 0) + len(rows)
    return sp.vstack(votes, format="csr"), ids, failures


def _flaky(text: str) -> str | None:
    """An LF that fails on some records (counted under skip), votes on others."""
    if "topic 3" in text:
        raise ValueError("no topic 3")
    return "x" if "government" in text else None


def _label_case(root: Path, **kw):
    from thresher.label.lf_files import LFSet
    from thresher.label.lfs import CallableLF, KeywordLF, ScoreLF

    ids = [i for b in _pool(root, **kw).iter_batches(ErrorLog("skip")) for i in b.column("id").to_pylist()]
    scores = pa.table({"id": ids, "score": [float(k % 10) for k in range(len(ids))]})
    lfs = LFSet(["x", "y"], [KeywordLF("gov", "x", ["government"]), ScoreLF("high", "score", 7, "y"),
                             CallableLF(_flaky, name="flaky")])
    return lfs, scores


@pytest.mark.parametrize("duplicate_ids", ["error", "rename"])
def test_lf_application_by_pieces_is_the_sequential_one_at_any_worker_count(tmp_path, duplicate_ids):
    from thresher.label.apply import apply_lfs

    root = _stage_pool(tmp_path / "pool")
    if duplicate_ids == "rename":  # a repeated id in the second piece: its score is the renamed id's
        t = pq.read_table(root / "a.parquet")
        ids = t["id"].to_pylist()
        ids[400] = ids[5]
        pq.write_table(t.set_column(0, "id", pa.array(ids)), root / "a.parquet", row_group_size=50)
    lfs, scores = _label_case(root, duplicate_ids=duplicate_ids)
    if duplicate_ids == "rename":
        assert f"{ids[5]}#2" in scores["id"].to_pylist()
    reference = _label_reference(root, lfs, scores, duplicate_ids=duplicate_ids)
    assert reference[2]["flaky"] > 0 and reference[0].nnz > 0
    runs = []
    for workers in (1, 2):
        with _Recording(workers) as engine:
            pool = _pool(root, cls=_SequentialReadRefused, duplicate_ids=duplicate_ids)
            applied = apply_lfs(pool, lfs, ErrorLog("skip"), scores=scores, extra_columns=("domain",),
                                on_error="skip", engine=engine)
        if workers == 2:
            assert not any(MARKER.encode() in item for item in engine.sent)
        runs.append(applied)
        assert applied.ids.to_pylist() == reference[1]
        assert (applied.matrix.votes != reference[0]).nnz == 0
        assert applied.lf_failures == {"gov": 0, "high": 0, **reference[2]}
        assert applied.extra["domain"].to_pylist() == [
            v for b in _pool(root, duplicate_ids=duplicate_ids).iter_batches(ErrorLog("skip"), ["domain"])
            for v in b.column("domain").to_pylist()]
    assert runs[0].failure_examples == runs[1].failure_examples


def test_embeddings_by_pieces_are_the_sequential_ones_at_any_worker_count(tmp_path):
    from thresher.embeddings import EmbeddingStore, make_backend
    from thresher.jobs.embed import EMBED_PLAN, run_embedding

    root = _stage_pool(tmp_path / "pool")
    model = make_backend("static")
    texts = [b.column("text") for b in _pool(root).iter_batches(ErrorLog("skip"))]
    reference = np.concatenate([model.encode(t.to_pylist()).astype(np.float16).astype(np.float32) for t in texts])
    matrices = []
    for workers in (1, 2):
        store = EmbeddingStore(tmp_path / f"cache{workers}", model, "d")
        (tmp_path / f"e{workers}").mkdir()
        with _Recording(workers) as engine:
            v = EMBED_PLAN.run(pool=_pool(root, cls=_SequentialReadRefused), model=model, store=store,
                               dtype="float16", engine=engine, progress=False, out=tmp_path / f"e{workers}")
        _no_text_sent(engine)
        # one shard per batch of each piece, named by piece and part, in reading order
        assert v.shards == sorted(v.shards) and v.shards[0] == "shard-000000-0000.npy"
        assert {name[:12] for name in v.shards} == {f"shard-{p:06d}" for p in range(3)}
        matrices.append(store.matrix())
        run = run_embedding(_pool(root), tmp_path / f"run{workers}", workers=workers, progress=False, report=False)
        assert np.array_equal(run.embeddings()[1], reference)
    assert np.array_equal(matrices[0], reference) and np.array_equal(matrices[1], reference)


# ------------------------------------------------ one big file is cut into pieces, read as the whole file reads it


def _whole(ds):
    """The dataset with each file as one piece: the whole-file read that the cut of a big file must reproduce."""
    ds._spans = [[{}] for _ in ds.files]
    return ds


WIDE = "é漢字🙂"  # multi-byte UTF-8


def _big_jsonl(path: Path, n: int = 20_000) -> None:
    """One JSONL file of ``n`` lines, no trailing newline: bad JSON, bad UTF-8, non-objects, null, empty and non-string
    texts, blank lines, multi-byte text around every 64th line (where pieces may start), and explicit ids on a few
    lines of one stretch (the records around them, without ids, are then reported batch by batch)."""
    lines = []
    for i in range(1, n + 1):
        rec: dict = {"text": f"line {i} {WIDE * (i % 5)} word{i % 13}" + (WIDE * 20 if i % 64 in (0, 1, 63) else "")}
        if 3000 <= i < 3300 and i % 50 == 0:
            rec["id"] = f"x{i}"
        lines.append(json.dumps(rec, ensure_ascii=False).encode())
        if i % 97 == 0:
            lines[-1] = b"{not json " + WIDE.encode()
        elif i % 211 == 0:
            lines[-1] = b""
        elif i % 307 == 0:
            lines[-1] = b'{"text": "bad \xff byte"}'
        elif i % 401 == 0:
            lines[-1] = b"[1, 2]"
        elif i % 503 == 0:
            lines[-1] = json.dumps({"text": "  "}).encode()
        elif i % 601 == 0:
            lines[-1] = json.dumps({"text": None}).encode()
        elif i % 701 == 0:
            lines[-1] = json.dumps({"text": 7}).encode()
        elif i % 809 == 0:
            lines[-1] = b"   \t"
    path.write_bytes(b"\n".join(lines))


def _reads(ds) -> tuple[list, list, dict, pa.Array]:
    batches, errors, ids = _read_by_pieces(ds)
    return _column(batches, "id"), _column(batches, "text"), errors.to_dict(), ids


def test_one_big_jsonl_file_is_cut_into_pieces_that_read_as_the_whole_file(tmp_path, monkeypatch):
    import thresher.io.pieces as pieces_module

    path = tmp_path / "big.jsonl"
    _big_jsonl(path)
    whole = _reads(_whole(read(path, batch_size=64, on_error="skip")))
    ids, texts, errors, _ = whole
    assert len(ids) == len(set(ids)) > 19_000 and ids[0] == "big.jsonl:1" and ids[-1] == "big.jsonl:20000"
    assert texts[-1].startswith("line 20000 ")  # the last line has no newline
    assert {"bad_json", "bad_utf8", "not_an_object", "missing_text", "bad_text_type", "empty_text",
            "missing_id"} <= set(errors["by_reason"])
    for piece_bytes in (None, 50_000):  # by lines (16 batches = 1024 lines), then by bytes (about 50 kB)
        if piece_bytes:
            monkeypatch.setattr(pieces_module, "PIECE_BYTES", piece_bytes)
        ds = read(path, batch_size=64, on_error="skip")
        pieces = ds.pieces()
        steps = {b.first_line - a.first_line for a, b in zip(pieces, pieces[1:])}
        assert steps == {1024} if piece_bytes is None else (len(pieces) > 20 and max(steps) < 1024)
        assert pieces[0].byte_range[0] == 0 and pieces[-1].byte_range[1] == path.stat().st_size
        data = path.read_bytes()
        for a, b in zip(pieces, pieces[1:]):
            start = b.byte_range[0]
            assert a.byte_range[1] == start and data[start - 1: start] == b"\n"
            assert b.first_line == data[:start].count(b"\n") + 1 and b.first_line % 64 == 1
        assert any(data[p.byte_range[0]:].startswith(b'{"text": "line') and WIDE.encode() * 5 in
                   data[p.byte_range[0] - 200: p.byte_range[0]] for p in pieces[1:])  # wide text just before a cut
        got = _reads(ds)
        assert got[:3] == whole[:3]
        assert got[3].to_pylist() == ids
    # stopping at the first problem: the same error as the whole file's read
    sequential = _raises(lambda: _sequential(_whole(read(path, batch_size=64))))
    assert "big.jsonl:97" in sequential
    assert _raises(lambda: _read_by_pieces(read(path, batch_size=64))) == sequential
    # a compressed file cannot be entered in the middle, a CSV field may hold a newline: both are read whole
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "big.jsonl.gz").write_bytes(gzip.compress(path.read_bytes()))
    pa.csv.write_csv(pa.table({"text": texts}), packed / "big.csv")
    assert [p.file.name for p in read(packed, batch_size=64).pieces()] == ["big.csv", "big.jsonl.gz"]


def test_one_row_group_parquet_file_is_cut_into_pieces_that_read_as_the_whole_file(tmp_path):
    path = tmp_path / "one.parquet"
    texts = _texts(5000)
    for i in (5, 1023, 1024, 1025, 2100, 2101, 4999):
        texts[i] = "" if i % 2 else None
    pq.write_table(pa.table({"text": texts, "domain": ["d"] * 5000}), path, row_group_size=10_000)
    assert pq.read_metadata(path).num_row_groups == 1
    ds = read(path, batch_size=64, on_error="skip")
    pieces = ds.pieces(["domain"])
    assert [p.rows for p in pieces] == [(a, a + 1024) for a in range(0, 4096, 1024)] + [(4096, 5000)]
    assert [p.first_row for p in pieces] == [0, 1024, 2048, 3072, 4096]
    whole = _reads(_whole(read(path, batch_size=64, on_error="skip")))
    got = _reads(ds)
    assert got[:3] == whole[:3] and got[3].to_pylist() == whole[0]
    assert whole[0][:6] == [f"one.parquet:{i}" for i in (0, 1, 2, 3, 4, 6)] and len(whole[0]) == 4993
    assert whole[2]["by_reason"] == {"empty_text": 5, "missing_text": 2}
    batches, _, _ = _read_by_pieces(read(path, batch_size=64, on_error="skip"), ["domain"])
    assert _column(batches, "domain") == ["d"] * 4993
    # a run of small row groups, then a big one cut in two: the pieces follow each other, read as the whole file
    mixed = tmp_path / "mixed.parquet"
    with pq.ParquetWriter(mixed, pa.schema([("text", pa.string())])) as w:
        w.write_table(pa.table({"text": texts[:700]}), row_group_size=100)
        w.write_table(pa.table({"text": texts[700:]}), row_group_size=10_000)
    ds = read(mixed, batch_size=64, on_error="skip")
    # 4300 rows > 1024: five pieces of 14 batches (the run of 700 rows before it is closed short)
    assert [(p.row_groups, p.rows, p.first_row) for p in ds.pieces()] == [((0, 7), None, 0)] + [
        ((7, 8), (a, min(a + 896, 4300)), 700 + a) for a in range(0, 4300, 896)]
    assert _reads(ds)[:3] == _reads(_whole(read(mixed, batch_size=64, on_error="skip")))[:3]
    # stopping at the first problem, in the second piece of the big group (a later piece has one too)
    late = _texts(5000)
    late[2100] = late[4000] = ""
    pq.write_table(pa.table({"text": late}), mixed, row_group_size=10_000)
    sequential = _raises(lambda: _sequential(_whole(read(mixed, batch_size=64))))
    assert "row 2100" in sequential
    assert _raises(lambda: _read_by_pieces(read(mixed, batch_size=64))) == sequential


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_select_on_one_big_file_uses_its_pieces_and_scores_as_the_whole_file(tmp_path, kind):
    pool = tmp_path / "pool"
    pool.mkdir()
    table = pq.read_table(sample_path("pool.parquet"), columns=["id", "text"])
    if kind == "parquet":
        pq.write_table(table, pool / "one.parquet", row_group_size=table.num_rows)
    else:
        rows = table.to_pylist()
        lines = [json.dumps({"text": r["text"]}, ensure_ascii=False) for r in rows]
        lines[100], lines[2000] = "{broken", json.dumps({"text": ""})
        (pool / "one.jsonl").write_text("\n".join(lines))
    runs = _select_at_1_and_2_workers(pool, tmp_path)
    shards = [sorted(p.name for p in next((runs[w] / "cache").iterdir()).glob("shard-*")) for w in (1, 2)]
    assert shards[0] == shards[1]
    assert len({name.split("-")[1] for name in shards[0]}) == len(read(pool, batch_size=64).pieces()) > 2
    scores = pq.read_table(runs[1] / "scores" / "scores.parquet")
    reference = _reference_scores(pool, 64, whole=True)
    assert scores.num_rows == reference.num_rows > 1000
    for column in reference.column_names:
        assert scores[column].to_pylist() == reference[column].to_pylist(), column
    if kind == "jsonl":
        failed = json.loads((runs[2] / "manifest.json").read_text())["counts"]["pool_failed"]
        assert [(e["line"], e["reason"]) for e in failed["examples"]] == [(101, "bad_json"), (2001, "empty_text")]


def test_a_row_group_of_long_texts_is_cut_by_bytes_and_pieces_read_in_any_order(tmp_path, monkeypatch):
    path = tmp_path / "long.parquet"
    texts = [f"record {i} " + "word " * (50 + i % 7) for i in range(3000)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=10_000)
    size = pq.read_metadata(path).row_group(0).total_byte_size
    import thresher.io.pieces as pieces_module

    assert len(read(path, batch_size=256).pieces()) == 1  # fewer rows than 16 batches, fewer bytes than PIECE_BYTES
    monkeypatch.setattr(pieces_module, "PIECE_BYTES", size // 6)
    ds = read(path, batch_size=256)
    pieces = ds.pieces()
    assert len(pieces) >= 6 and all(p.rows[0] % 256 == 0 for p in pieces)  # cut by bytes, at batch boundaries
    whole = [r for b in pq.read_table(path).column("text").chunks for r in b.to_pylist()]

    def piece_texts(p):
        return [t for b in PieceReader(p).batches() for t in b.column("text").to_pylist()]

    starts = []
    iter_batches = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, *a, **k: starts.append(1) or iter_batches(
        self, *a, **k))
    in_order = [t for p in pieces for t in piece_texts(p)]
    assert in_order == whole  # each piece continues where the last stopped: no row lost or repeated ...
    assert len(starts) == 1  # ... and the group was decoded once, not from its start for every piece
    by_piece = {p.index: piece_texts(p) for p in [*reversed(pieces), pieces[2], pieces[0], pieces[3]]}
    assert [t for i in sorted(by_piece) for t in by_piece[i]] == whole  # backwards, and jumping around
    first = next(iter(PieceReader(pieces[0]).batches())).column("text").to_pylist()  # a read abandoned after one
    assert first == whole[:len(first)] and piece_texts(pieces[1]) == whole[pieces[1].rows[0]:pieces[1].rows[1]]
    assert piece_texts(pieces[-1]) == whole[pieces[-1].rows[0]:]  # the group's last piece, then its first again
    assert piece_texts(pieces[0]) == whole[:pieces[0].rows[1]]
    half = piece_texts(pieces[1])  # then the file is rewritten in place: nothing of the old file is read
    assert half == whole[pieces[1].rows[0]:pieces[1].rows[1]]
    pq.write_table(pa.table({"text": [t.upper() for t in texts]}), path, row_group_size=10_000)
    assert piece_texts(pieces[2]) == [t.upper() for t in whole[pieces[2].rows[0]:pieces[2].rows[1]]]
