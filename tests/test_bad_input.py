"""Bad input: a clear one-line error naming file and line (exit 2), or with --on-error skip, counted by reason."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError, InputError
from thresher.io.dataset import read
from thresher.io.errors import ErrorLog


@pytest.fixture()
def good_lines(sample_records) -> list[str]:
    return [json.dumps(r) for r in sample_records[:20]]


def _drain(path, on_error="raise", **kw):
    errors = ErrorLog(on_error)
    rows = sum(b.num_rows for b in read(path, on_error=on_error, **kw).iter_batches(errors))
    return rows, errors


CASES = {
    # name: (bytes of line 3, reason)
    "bad_json": (b'{"id": "x", "text": "unterminated', "bad_json"),
    "bad_utf8": (b'{"id": "x", "text": "caf\xe9 au lait"}', "bad_utf8"),
    "missing_text": (b'{"id": "x", "body": "no text field here"}', "missing_text"),
    "empty_text": (b'{"id": "x", "text": "   "}', "empty_text"),
    "unicode_space_text": (json.dumps({"id": "x", "text": " \u3000\u00a0\t\n\x1c "}).encode(), "empty_text"),
    "not_an_object": (b'["a", "list"]', "not_an_object"),
    "bad_text_type": (b'{"id": "x", "text": 42}', "bad_text_type"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_record_names_file_and_line(tmp_path, good_lines, case):
    bad, reason = CASES[case]
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\n".join([good_lines[0].encode(), good_lines[1].encode(), bad, *map(str.encode,
                                                                                           good_lines[2:])]) + b"\n")
    with pytest.raises(InputError) as info:
        _drain(path)
    assert info.value.reason == reason and info.value.line == 3
    assert f"{path}:3" in str(info.value)
    rows, errors = _drain(path, "skip")
    assert rows == len(good_lines) and errors.counts == {reason: 1}


def test_truncated_gzip_keeps_what_was_read_and_reports_the_rest(tmp_path, good_lines):
    data = gzip.compress(("\n".join(good_lines) + "\n").encode())
    path = tmp_path / "pool.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated_or_corrupt_file"):
        _drain(path)
    rows, errors = _drain(path, "skip")
    assert 0 < rows < len(good_lines)
    assert errors.counts == {"truncated_or_corrupt_file": 1}


def test_empty_and_corrupt_files(tmp_path, good_lines):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty_file"):
        _drain(tmp_path / "empty.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="broken.parquet.*corrupt_file"):
        _drain(tmp_path / "broken.parquet")
    (tmp_path / "ok.jsonl").write_text("\n".join(good_lines) + "\n")
    rows, errors = _drain([tmp_path / "empty.jsonl", tmp_path / "broken.parquet", tmp_path / "ok.jsonl"], "skip")
    assert rows == len(good_lines)
    assert errors.file_problems == {"empty_file": 1, "corrupt_file": 1}


def test_skip_accounts_for_every_record_in_the_manifest(tmp_path, sample_records, news_target):
    lines = [json.dumps(r).encode() for r in sample_records]
    lines[5] = b'{"id": "broken", "text": '
    lines[9] = b'{"id": "e", "text": ""}'
    lines[12] = b'{"id": "u", "text": "\xff\xfe"}'
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run = th.select(th.read(path, on_error="skip"), target=news_target, budget=10, out=tmp_path / "run")
    c = run.counts
    assert c["input_records"] == len(lines)
    assert c["failed"] == 3 and c["pool_failed"]["by_reason"] == {"bad_json": 1, "bad_utf8": 1, "empty_text": 1}
    filtered = sum(c["filtered"].values())
    assert c["selected"] + c["not_selected"] + filtered + c["failed"] == len(lines) and c["all_accounted_for"]
    assert {e["line"] for e in c["pool_failed"]["examples"]} == {6, 10, 13}


def test_empty_target_and_oversized_budget_are_clear_errors(tmp_path, small_pool, news_target):
    (tmp_path / "t.jsonl").write_text('{"id": "a", "text": ""}\n')
    with pytest.raises(ConfigError, match="target has no usable records"):
        th.select(small_pool, target=th.read(tmp_path / "t.jsonl", on_error="skip"), out=tmp_path / "r1")
    n = pq.ParquetFile(small_pool).metadata.num_rows
    with pytest.raises(ConfigError, match=f"only {n:,} are eligible; give a budget of at most {n:,}"):
        th.select(small_pool, target=news_target, budget=n + 1, out=tmp_path / "r2", min_tokens=0)
    with pytest.raises(ConfigError, match="exceeds"):
        th.select(small_pool, target=news_target, budget="1B tokens", out=tmp_path / "r3")


def test_cli_prints_one_line_and_exits_2(tmp_path, good_lines, news_target):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join([good_lines[0], "{not json", *good_lines[1:]]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(path), "--target",
                           str(news_target), "--out", str(tmp_path / "run"), "--budget", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert f"{path}:2" in proc.stderr and "--on-error skip" in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(path), "--target",
                         str(news_target), "--out", str(tmp_path / "run"), "--budget", "3", "--on-error", "skip",
                         "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["counts"]["failed"] == 1 and summary["counts"]["selected"] == 3


# --- issue 11: one decompression layer, precise messages, unsupported files counted ---------------------------------

def _codec(suffix: str):
    import bz2
    import lzma

    import zstandard

    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zst": zstandard.ZstdCompressor().compress}[suffix]


@pytest.fixture()
def two_frames(sample_pool) -> tuple[bytes, bytes]:
    """200 real records as JSONL, split in two halves of 100 lines (each half becomes one compressed frame)."""
    lines = [json.dumps(r).encode() + b"\n" for r in pq.read_table(sample_pool).slice(0, 200).to_pylist()]
    return b"".join(lines[:100]), b"".join(lines[100:])


@pytest.mark.parametrize("suffix", ["zst", "gz", "bz2", "xz"])
def test_multi_frame_file_is_read_to_the_end(tmp_path, two_frames, suffix):
    compress = _codec(suffix)
    path = tmp_path / f"pool.jsonl.{suffix}"
    path.write_bytes(compress(two_frames[0]) + compress(two_frames[1]))
    rows, errors = _drain(path)
    assert rows == 200 and errors.n_failed == 0


@pytest.mark.parametrize("suffix", ["zst", "gz", "bz2", "xz"])
@pytest.mark.parametrize("cut", ["second_frame", "mid_line"])
def test_truncated_archive_is_reported_for_every_codec(tmp_path, two_frames, suffix, cut):
    """Issue 11 #2: a .zst of two frames with the second cut off read 100 of 200 records and said nothing."""
    compress = _codec(suffix)
    first, second = compress(two_frames[0]), compress(two_frames[1])
    # cut inside the second frame: just after its header, or near its end (inside the last block or the trailer)
    keep = 12 if cut == "second_frame" else len(second) - 6
    path = tmp_path / f"pool.jsonl.{suffix}"
    path.write_bytes(first + second[:keep])
    with pytest.raises(InputError) as info:
        _drain(path)
    assert info.value.reason == "truncated_or_corrupt_file"  # never bad_json for a line cut by the truncation
    assert "truncated" in str(info.value) and str(path) in str(info.value)
    rows, errors = _drain(path, "skip")
    assert errors.counts == {"truncated_or_corrupt_file": 1}
    assert rows == 100 if cut == "second_frame" else 100 <= rows <= 200  # whole lines only
    assert f"cannot read past line {rows}" in errors.examples[0]["detail"]


@pytest.mark.parametrize("suffix", ["zst", "gz", "bz2", "xz"])
def test_plain_text_with_a_compressed_suffix_is_a_clean_error(tmp_path, good_lines, suffix, news_target):
    """Issue 11 #3: a .zst that is really plain text gave a ZstdError traceback and exit 1, even with skip."""
    path = tmp_path / f"pool.jsonl.{suffix}"
    path.write_text("\n".join(good_lines) + "\n")
    with pytest.raises(InputError, match="not a .* file"):
        _drain(path)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(good_lines) + "\n")
    rows, errors = _drain([path, good], "skip")
    assert rows == len(good_lines) and errors.counts == {"truncated_or_corrupt_file": 1}
    for extra in ([], ["--on-error", "skip"]):
        proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(path), "--target",
                               str(news_target), "--out", str(tmp_path / "run"), "--budget", "3", "--no-report",
                               "--workers", "1", *extra], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr


def test_json_error_at_the_end_of_a_line_names_its_real_column(tmp_path, good_lines):
    path = tmp_path / "pool.jsonl"
    bad = '{"id": "x", "text": "fine",'
    path.write_text("\n".join([good_lines[0], bad, *good_lines[1:]]) + "\n")
    with pytest.raises(InputError, match=f"at column {len(bad) + 1}\\)") as info:
        _drain(path)
    assert info.value.line == 2


def test_null_text_is_reported_as_null_not_missing(tmp_path, good_lines, sample_records):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join([good_lines[0], '{"id": "x", "text": null}', *good_lines[1:]]) + "\n")
    with pytest.raises(InputError, match=f"{path}:2: field 'text' is null"):
        _drain(path)
    table = pa.Table.from_pylist([{**r, "text": None if i == 3 else r["text"]} for i, r in enumerate(sample_records)])
    pq.write_table(table, tmp_path / "pool.parquet")
    with pytest.raises(InputError, match=r"field 'text' is null \(row 3\)"):
        _drain(tmp_path / "pool.parquet")


def test_unsupported_files_in_a_folder_are_listed_and_mentioned(tmp_path, good_lines, news_target):
    folder = tmp_path / "pool"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(good_lines) + "\n")
    (folder / "notes.docx").write_text("not read")
    (folder / "img.png").write_bytes(b"\x89PNG")
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(folder), "--target",
                           str(news_target), "--out", str(tmp_path / "run"), "--budget", "3", "--no-report",
                           "--workers", "1", "--min-tokens", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 file(s) in the input folders were not read (unsupported type)" in proc.stdout
    info = json.loads((tmp_path / "run" / "manifest.json").read_text())["inputs"]["pool"]["unsupported_files"]
    assert info == {"count": 2, "paths": [str(folder / "img.png"), str(folder / "notes.docx")]}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_text_field_no_record_has_is_a_config_error_listing_the_real_fields(tmp_path, sample_records, on_error):
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in sample_records[:20]))
    parquet = tmp_path / "pool.parquet"
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 20), parquet)
    for path in (jsonl, parquet):
        with pytest.raises(ConfigError) as info:
            _drain(path, on_error, text_field="body")
        message = str(info.value)
        assert "no field 'body'" in message and "id, text, domain" in message and "--on-error skip" not in message
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(parquet), "--target",
                           str(jsonl), "--budget", "5", "--text-field", "body", "--on-error", on_error, "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "their fields are id, text, domain" in proc.stderr


def test_a_text_field_that_is_null_in_some_records_is_still_per_record(tmp_path, sample_records):
    records = [dict(r) for r in sample_records[:20]]
    records[3]["text"] = None
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows, errors = _drain(path, "skip")
    assert rows == 19 and errors.counts == {"missing_text": 1}
