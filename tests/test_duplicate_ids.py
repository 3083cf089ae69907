"""Repeated record ids: a clear error naming the id and both places, or (on request) consistently renamed ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.errors import ThresherError
from thresher.io.dataset import read
from thresher.io.errors import ErrorLog
from thresher.io.ids import DuplicateIdError
from thresher.io.writers import write_selection


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture()
def overlapping(tmp_path, sample_pool) -> tuple[Path, Path, list[dict]]:
    """Two JSONL files of real records sharing 100 ids (records 100-199 are in both), as in issue 11."""
    recs = pq.read_table(sample_pool).slice(0, 300).to_pylist()
    return (_write_jsonl(tmp_path / "dupA.jsonl", recs[:200]), _write_jsonl(tmp_path / "dupB.jsonl", recs[100:]),
            recs)


def _ids(ds) -> list[str]:
    return [i for b in ds.iter_batches(ErrorLog()) for i in b.column("id").to_pylist()]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_first_repeated_id_is_named_with_both_places(overlapping, batch_size):
    a, b, recs = overlapping
    with pytest.raises(DuplicateIdError) as info:
        _ids(read([a, b], batch_size=batch_size))
    msg = str(info.value)
    assert repr(recs[100]["id"]) in msg and f"{b}:1 " in msg and msg.endswith("#2')")
    assert f"{a}:101" in msg and info.value.reason == "duplicate_id"


def test_repeat_inside_one_batch_and_in_row_formats(tmp_path, sample_pool):
    table = pq.read_table(sample_pool).slice(0, 50)
    pq.write_table(pa.concat_tables([table, table.slice(10, 1)]), tmp_path / "twice.parquet")
    with pytest.raises(DuplicateIdError, match=r"twice.parquet row 50 repeats the id of .*twice.parquet row 10"):
        _ids(read(tmp_path / "twice.parquet"))


def test_skipped_records_do_not_count_as_uses_of_an_id(tmp_path, sample_records):
    recs = sample_records[:5]
    lines = [json.dumps({"id": recs[0]["id"], "text": ""})] + [json.dumps(r) for r in recs]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    errors = ErrorLog("skip")
    ids = [i for b in read(tmp_path / "p.jsonl", on_error="skip").iter_batches(errors) for i in b["id"].to_pylist()]
    assert ids == [r["id"] for r in recs] and errors.counts == {"empty_text": 1}


def test_rename_is_deterministic_and_skips_suffixes_in_use(tmp_path, sample_records):
    r = sample_records[:4]
    x = r[0]["id"]
    recs = [r[0], {**r[1], "id": f"{x}#2"}, r[2], {**r[0], "text": "again"}, {**r[0], "text": "and again"}, r[3]]
    path = _write_jsonl(tmp_path / "p.jsonl", recs)
    got = {bs: _ids(read(path, duplicate_ids="rename", batch_size=bs)) for bs in (1, 2, 100)}
    assert got[1] == got[2] == got[100] == [x, f"{x}#2", r[2]["id"], f"{x}#3", f"{x}#4", r[3]["id"]]
    ds = read(path, duplicate_ids="rename")
    _ids(ds)
    assert ds.renamed_ids == 2 and ds.rename_examples[0] == {"id": x, "renamed_to": f"{x}#3", "at": f"{path}:4"}
    # the writer puts the renamed ids into the written records, and still refuses ids that are not a rename
    written = write_selection(ds, pa.array(got[1], pa.large_string()), tmp_path / "w", "jsonl", np.arange(6))
    lines = (tmp_path / "w" / "selected" / "records.jsonl").read_text().splitlines()
    assert written["rows"] == 6 and [json.loads(line)["id"] for line in lines] == got[1]
    wrong = [*got[1][:3], f"{r[2]['id']}#3", *got[1][4:]]
    with pytest.raises(ThresherError, match="records changed"):
        write_selection(ds, pa.array(wrong, pa.large_string()), tmp_path / "w2", "jsonl", np.arange(6))


def test_cli_select_and_dedup_refuse_repeated_ids(overlapping, news_target, tmp_path):
    a, b, recs = overlapping
    for args in (["select", "--target", str(news_target), "--budget", "300", "--min-tokens", "0"], ["dedup"]):
        proc = _cli(*args, "--pool", str(a), "--pool", str(b), "--out", str(tmp_path / args[0]), "--no-report",
                    "--workers", "1", "--on-error", "skip")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert f"{a}:101" in proc.stderr and f"{b}:1 " in proc.stderr and recs[100]["id"] in proc.stderr
        assert not (tmp_path / args[0] / "manifest.json").exists()


def test_cli_rename_keeps_outputs_consistent_with_the_manifest(overlapping, news_target, tmp_path):
    a, b, recs = overlapping
    out = tmp_path / "run"
    proc = _cli("select", "--pool", str(a), "--pool", str(b), "--target", str(news_target), "--budget", "300",
                "--min-tokens", "0", "--out", str(out), "--no-report", "--workers", "1", "--duplicate-ids", "rename")
    assert proc.returncode == 0, proc.stderr
    assert "100 record(s) had an id used before and were renamed" in proc.stdout
    ids = (out / "selected" / "ids.txt").read_text().split()
    written = pq.read_table(out / "selected" / "part-00000.parquet")["id"].to_pylist()
    scored = pq.read_table(out / "scores" / "scores.parquet")["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 300 and sorted(written) == sorted(ids)
    assert len(scored) == len(set(scored)) == 400
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["pool"]["renamed_ids"]["count"] == 100 and manifest["counts"]["all_accounted_for"]
    assert {i for i in scored if "#" in i} == {f"{r['id']}#2" for r in recs[100:200]}
    # a re-selection reopens the pool with the same policy, so the written records match again
    again = _cli("select", "--from-run", str(out), "--budget", "50", "--out", str(tmp_path / "re"), "--no-report")
    assert again.returncode == 0, again.stderr
    re_ids = (tmp_path / "re" / "selected" / "ids.txt").read_text().split()
    assert sorted(pq.read_table(tmp_path / "re" / "selected" / "part-00000.parquet")["id"].to_pylist()) == \
        sorted(re_ids)


def test_unique_ids_are_written_byte_for_byte_the_same_under_either_policy(small_pool, news_target, tmp_path):
    runs = {}
    for policy in ("error", "rename"):
        out = tmp_path / policy
        proc = _cli("select", "--pool", str(small_pool), "--target", str(news_target), "--budget", "200",
                    "--out", str(out), "--no-report", "--workers", "1", "--duplicate-ids", policy)
        assert proc.returncode == 0, proc.stderr
        runs[policy] = [(out / "selected" / n).read_bytes() for n in ("ids.txt", "part-00000.parquet")] + \
            [(out / "scores" / "scores.parquet").read_bytes()]
    assert runs["error"] == runs["rename"]
