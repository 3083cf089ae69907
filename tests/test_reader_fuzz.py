"""Reader fuzzing: damaged files of every format and codec are read, or fail and are counted; nothing else happens.

Each case builds a small file from the bundled sample with seeded damage (wrong types, nulls, huge lines, mixed
schemas, byte flips, truncation) and reads it with ``on_error="skip"`` and ``"raise"``. Invariants:

- only thresher's own errors are raised (never a codec, Arrow or JSON traceback), and under skip none at all;
- every reported problem names the damaged file, and a record problem in a line format names a line in the file;
- where the number of records in the damaged file is known (record damage, plain-text truncation), every one of
  them is either read or counted as failed;
- truncation or corruption of an archive is never silent: it is reported, or what was read is exactly what the
  undamaged file gives; what was read before the damage is a prefix of the undamaged file's records;
- under raise, a run that skip mode finished without failures gives the same records; otherwise it raises.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from thresher.errors import ThresherError
from thresher.io.dataset import read
from thresher.io.errors import ErrorLog

COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": zstandard.ZstdCompressor(write_checksum=True).compress}  # the zstd CLI writes checksums too
LINE_FORMATS = ["jsonl", "jsonl.gz", "jsonl.zst", "jsonl.bz2", "jsonl.xz"]
TABLE_FORMATS = ["csv", "tsv", "csv.gz", "tsv.zst", "parquet"]
SEEDS = range(6)


@pytest.fixture(scope="module")
def base(sample_pool) -> list[dict]:
    """40 real records of mixed domains, texts cut to 600 characters to keep the cases fast."""
    table = pq.read_table(sample_pool, columns=["id", "text", "domain"])
    rows = table.take(list(range(0, table.num_rows, table.num_rows // 40))[:40]).to_pylist()
    return [{**r, "text": r["text"][:600]} for r in rows]


def _drain(path: Path, on_error: str) -> tuple[list[str], ErrorLog]:
    errors = ErrorLog(on_error)
    ids = [i for b in read(path, on_error=on_error, batch_size=16).iter_batches(errors) for i in b["id"].to_pylist()]
    return ids, errors


def _damage_bytes(rng: random.Random, data: bytes, skip_header: int = 0) -> tuple[str, bytes]:
    """A truncation at a random point, or one to three flipped bytes (never at the codec header)."""
    if rng.random() < 0.5 or len(data) <= skip_header + 1:
        return "truncate", data[: rng.randrange(0, len(data))]
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(skip_header, len(out))
        out[i] ^= rng.randrange(1, 256)
    return "flip", bytes(out)


def _record_lines(rng: random.Random, base: list[dict]) -> list[bytes]:
    """JSONL lines with record damage: wrong types, nulls, missing fields, mixed schemas, huge lines, flips."""
    lines = []
    for k, r in enumerate(base):
        r = dict(r)
        roll = rng.random()
        if roll < 0.08:
            r["text"] = rng.choice([42, 1.5, ["a", "list"], {"a": 1}, True])
        elif roll < 0.12:
            r["text"] = None
        elif roll < 0.16:
            r.pop("text")
        elif roll < 0.20:
            r["text"] = " \t "
        elif roll < 0.28:
            r[rng.choice(["domain", "extra", "score"])] = rng.choice([3, None, [1, 2], {"x": "y"}, "s"])
        elif roll < 0.31:
            r["id"] = 10_000 + k  # an integer id among string ids
        elif roll < 0.33:
            r["text"] = r["text"] * (300_000 // max(len(r["text"]), 1))  # a huge line
        line = json.dumps(r, ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.08:
            b = bytearray(line)
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
            line = bytes(b)
        elif rng.random() < 0.04:
            line = rng.choice([b"[1, 2]", b'"a string"', b"{not json", b"\xff\xfe\x00"])
        lines.append(line)
        if rng.random() < 0.05:
            lines.append(b"   ")  # a blank line is not a record
    return lines


def _nonblank_lines(data: bytes) -> int:
    """The records a line-format reader must account for: the non-blank lines (the last may lack its newline)."""
    return sum(1 for line in data.split(b"\n") if line.strip())


def _check_examples(errors: ErrorLog, path: Path, n_lines: int | None) -> None:
    """Every problem names ``path``; a line, when given, is one of its ``n_lines`` lines (blank ones included)."""
    for ex in errors.examples:
        assert ex["path"] == str(path), ex
        if n_lines is not None and ex["line"] is not None:
            assert 1 <= ex["line"] <= n_lines + 1, ex


def _check_raise_mode(path: Path, ids: list[str], errors: ErrorLog) -> None:
    """Under raise: the same records when skip found nothing wrong, else one of thresher's own errors."""
    try:
        strict, _ = _drain(path, "raise")
    except ThresherError:
        assert errors.n_failed or errors.file_problems, "raise mode failed where skip mode found nothing wrong"
        return
    assert not errors.n_failed and strict == ids


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fmt", LINE_FORMATS)
def test_jsonl_record_damage_every_codec(tmp_path, base, fmt, seed):
    rng = random.Random(f"{fmt}-{seed}")
    raw = b"\n".join(_record_lines(rng, base)) + b"\n"
    path = tmp_path / f"pool.{fmt}"
    path.write_bytes(COMPRESS["." + fmt.split(".")[1] if "." in fmt else ""](raw))
    ids, errors = _drain(path, "skip")  # must not raise
    n_lines = _nonblank_lines(raw)
    assert len(ids) + errors.n_failed == n_lines and not errors.file_problems
    _check_examples(errors, path, raw.count(b"\n"))
    _check_raise_mode(path, ids, errors)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fmt", LINE_FORMATS)
def test_jsonl_archive_damage_every_codec(tmp_path, base, fmt, seed):
    rng = random.Random(f"archive-{fmt}-{seed}")
    lines = [json.dumps(r).encode() for r in base]
    codec = "." + fmt.split(".")[1] if "." in fmt else ""
    # two frames / members / streams, as concatenated archives and parallel compressors write them
    half = len(lines) // 2
    clean = COMPRESS[codec](b"\n".join(lines[:half]) + b"\n") + COMPRESS[codec](b"\n".join(lines[half:]) + b"\n")
    (tmp_path / "clean").mkdir()
    reference, _ = _drain(tmp_path / "clean" / _write(tmp_path / "clean" / f"pool.{fmt}", clean), "raise")
    assert reference == [r["id"] for r in base]
    kind, damaged = _damage_bytes(rng, clean, skip_header=12 if codec else 0)
    path = tmp_path / f"pool.{fmt}"
    path.write_bytes(damaged)
    ids, errors = _drain(path, "skip")
    _check_examples(errors, path, None)
    if not codec:
        n_lines = _nonblank_lines(damaged)
        assert len(ids) + errors.n_failed == n_lines
    elif kind == "truncate":
        assert errors.counts.get("truncated_or_corrupt_file") == 1 or ids == reference or (not ids and not damaged)
        assert ids == reference[: len(ids)]
    else:  # every codec here checksums its data: a flip is reported, or changed nothing that was read
        assert errors.n_failed or errors.file_problems or ids == reference
    _check_raise_mode(path, ids, errors)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return path.name


def _table_bytes(rng: random.Random, base: list[dict], fmt: str, tmp_path: Path) -> tuple[bytes, int, list[str]]:
    """A CSV/TSV/Parquet file with record damage; returns its bytes, its record count and the ids sure to be read."""
    recs, sure = [], []
    for r in base:
        r = dict(r)
        roll = rng.random()
        if roll < 0.1:
            r["text"] = None if fmt == "parquet" else ""
        elif roll < 0.15:
            r["text"] = r["text"] * (200_000 // max(len(r["text"]), 1))
        elif roll < 0.2:
            r["text"] = "   "
        else:
            sure.append(r["id"])
        recs.append(r)
    table = pa.Table.from_pylist(recs)
    if fmt == "parquet":
        if rng.random() < 0.3:  # another schema: an extra column of another type
            table = table.append_column("extra", pa.array(list(range(len(recs)))))
        pq.write_table(table, tmp_path / "t.parquet", row_group_size=rng.choice([7, 16, 100]))
        return (tmp_path / "t.parquet").read_bytes(), len(recs), sure
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter="\t" if fmt.startswith("tsv") else ","))
    data = sink.getvalue().to_pybytes()
    if rng.random() < 0.5:  # a row with a field too many (not quoted, so it really is one more field)
        data += f"extra-{rng.randrange(1000)},some text,news,more\n".replace(",", "\t" if fmt.startswith("tsv")
                                                                          else ",").encode()
        return data, len(recs) + 1, sure
    return data, len(recs), sure


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_tables_record_and_file_damage(tmp_path, base, fmt, seed):
    rng = random.Random(f"{fmt}-{seed}")
    data, n_records, sure = _table_bytes(rng, base, fmt, tmp_path)
    codec = "." + fmt.split(".")[1] if "." in fmt else ""
    path = tmp_path / f"pool.{fmt}"
    path.write_bytes(COMPRESS[codec](data))
    ids, errors = _drain(path, "skip")
    assert len(ids) + errors.n_failed == n_records and set(sure) <= set(ids)
    _check_examples(errors, path, None)
    _check_raise_mode(path, ids, errors)
    # now damage the file itself (Parquet: truncation and flips; CSV/TSV: truncation, which can cut a quoted field)
    clean = path.read_bytes()
    kind, damaged = _damage_bytes(rng, clean, skip_header=12 if codec else 0) if fmt == "parquet" or codec else \
        ("truncate", clean[: rng.randrange(0, len(clean))])
    path.write_bytes(damaged)
    try:
        got, errors = _drain(path, "skip")
    except ThresherError as e:  # only a file without a single record left (nothing to read) may stop a skip run
        assert "empty" in str(e) or "no " in str(e), e
        return
    _check_examples(errors, path, None)
    if kind == "truncate" and fmt != "parquet":
        assert got == ids[: len(got)]
    _check_raise_mode(path, got, errors)


@pytest.mark.parametrize("seed", SEEDS)
def test_txt_folders(tmp_path, base, seed):
    rng = random.Random(f"txt-{seed}")
    folder = tmp_path / "docs"
    folder.mkdir()
    for k, r in enumerate(base[:12]):
        data = r["text"].encode()
        suffix = rng.choice(["", "", ".gz", ".zst", ".bz2", ".xz"])
        roll = rng.random()
        if roll < 0.15:
            data = b""
        elif roll < 0.3:
            data = data[:5] + b"\xff\xfe" + data[5:]
        elif roll < 0.35:
            data = data * (300_000 // max(len(data), 1))
        blob = COMPRESS[suffix](data)
        if suffix and rng.random() < 0.3:
            blob = _damage_bytes(rng, blob, skip_header=12)[1]
        (folder / f"{k:02d}.txt{suffix}").write_bytes(blob)
    ids, errors = _drain(folder, "skip")
    assert len(ids) + errors.n_failed == 12 and not errors.file_problems
    for ex in errors.examples:
        assert ex["path"].startswith(str(folder))
    _check_raise_mode(folder, ids, errors)
