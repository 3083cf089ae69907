"""Every input format streams the same records, with stable ids, through the same validation."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from thresher.errors import ConfigError
from thresher.io.dataset import Dataset, read
from thresher.io.errors import ErrorLog


def _collect(ds: Dataset, errors: ErrorLog | None = None, extra=()) -> pa.Table:
    errors = errors or ErrorLog()
    return pa.Table.from_batches(list(ds.iter_batches(errors, extra)))


def _write_jsonl(path, records, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("suffix,opener", [
    ("jsonl", open), ("jsonl.gz", gzip.open), ("jsonl.bz2", bz2.open), ("jsonl.xz", lzma.open)])
def test_jsonl_plain_and_compressed(tmp_path, sample_records, suffix, opener):
    path = tmp_path / f"docs.{suffix}"
    _write_jsonl(path, sample_records, opener)
    table = _collect(read(path))
    assert table["id"].to_pylist() == [r["id"] for r in sample_records]
    assert table["text"].to_pylist() == [r["text"] for r in sample_records]


def test_jsonl_zstd(tmp_path, sample_records):
    raw = "".join(json.dumps(r) + "\n" for r in sample_records).encode()
    path = tmp_path / "docs.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert _collect(read(path))["text"].to_pylist() == [r["text"] for r in sample_records]


def test_parquet_streams_in_batches_of_the_requested_size(sample_pool):
    ds = read(sample_pool, batch_size=1000)
    sizes = [b.num_rows for b in ds.iter_batches(ErrorLog())]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and sum(sizes) == pq.ParquetFile(sample_pool).metadata.num_rows


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv_with_multiline_quoted_text(tmp_path, sample_records, fmt):
    path = tmp_path / f"docs.{fmt}"
    table = pa.Table.from_pylist(sample_records)
    pacsv.write_csv(table, path, pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ","))
    got = _collect(read(path))
    assert got["text"].to_pylist() == [r["text"] for r in sample_records]
    assert any("\n" in t for t in got["text"].to_pylist())


def test_directory_of_txt_files_one_record_per_file(tmp_path, sample_records):
    for i, r in enumerate(sample_records[:5]):
        (tmp_path / "docs" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / f"sub{i % 2}" / f"{i}.txt").write_text(r["text"], encoding="utf-8")
    got = _collect(read(tmp_path / "docs"))
    assert got.num_rows == 5
    assert sorted(got["id"].to_pylist()) == sorted(f"sub{i % 2}/{i}.txt" for i in range(5))
    assert set(got["text"].to_pylist()) == {r["text"] for r in sample_records[:5]}


def test_huggingface_save_to_disk_folder(tmp_path, sample_records):
    """The layout datasets.Dataset.save_to_disk writes: Arrow stream shards listed in state.json."""
    folder = tmp_path / "hf"
    folder.mkdir()
    table = pa.Table.from_pylist(sample_records)
    for k, part in enumerate([table.slice(0, 25), table.slice(25)]):
        with pa.OSFile(str(folder / f"data-0000{k}-of-00002.arrow"), "wb") as sink, \
                pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(part)
    (folder / "state.json").write_text(json.dumps({"_data_files": [
        {"filename": "data-00000-of-00002.arrow"}, {"filename": "data-00001-of-00002.arrow"}]}))
    (folder / "dataset_info.json").write_text("{}")
    got = _collect(read(folder))
    assert got["id"].to_pylist() == [r["id"] for r in sample_records]


def test_dataset_dict_folder_asks_for_a_split(tmp_path):
    (tmp_path / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    with pytest.raises(ConfigError, match="train"):
        read(tmp_path)


def test_globs_and_several_paths_in_sorted_order(tmp_path, sample_records):
    for k in range(3):
        _write_jsonl(tmp_path / f"part{k}.jsonl", sample_records[k * 10:(k + 1) * 10])
    pq.write_table(pa.Table.from_pylist(sample_records[30:40]), tmp_path / "extra.parquet")
    got = _collect(read([str(tmp_path / "part*.jsonl"), tmp_path / "extra.parquet"]))
    assert got["id"].to_pylist() == [r["id"] for r in sample_records[:40]]


def test_custom_fields_and_derived_ids_are_stable(tmp_path, sample_records):
    recs = [{"body": r["text"], "domain": r["domain"]} for r in sample_records[:8]]
    _write_jsonl(tmp_path / "a.jsonl", recs[:4])
    (tmp_path / "a.jsonl").open("a").write("\n")  # a blank line is not a record
    _write_jsonl(tmp_path / "b.jsonl", recs[4:])
    ds = read([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], text_field="body")
    first = _collect(ds, extra=["domain"])
    assert first["id"].to_pylist() == [f"a.jsonl:{i}" for i in range(1, 5)] + [f"b.jsonl:{i}" for i in range(1, 5)]
    assert first["domain"].to_pylist() == [r["domain"] for r in recs]
    assert _collect(read([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], text_field="body")).equals(
        _collect(read([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], text_field="body")))


def test_explicit_id_field_must_exist(tmp_path, sample_records):
    _write_jsonl(tmp_path / "a.jsonl", sample_records[:3])
    with pytest.raises(ConfigError, match="no id field 'doc_id'"):
        _collect(read(tmp_path / "a.jsonl", id_field="doc_id"))


def test_unsupported_and_missing_paths_are_clear_errors(tmp_path):
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(ConfigError, match="unsupported file type"):
        read(tmp_path / "x.docx")
    with pytest.raises(ConfigError, match="input not found"):
        read(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="no file matches"):
        read(str(tmp_path / "*.parquet"))


def test_full_records_keeps_every_original_field(tmp_path, sample_records):
    from thresher.io.pieces import full_records

    recs = [{**r, "score": i / 3, "tags": ["a", str(i)]} for i, r in enumerate(sample_records[:5])]
    _write_jsonl(tmp_path / "a.jsonl", recs)
    ids, table = next(full_records(read(tmp_path / "a.jsonl").pieces()[0]))
    assert table.to_pylist() == recs
    assert ids.to_pylist() == [r["id"] for r in recs]
