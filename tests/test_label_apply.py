"""Applying LFs over a dataset: identical label matrices at any worker count or batch size, LF failures named or
counted, score columns joined by id, and the LF analysis checked against a brute-force count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError, ThresherError
from thresher.io.errors import ErrorLog
from thresher.label.analysis import analyse, format_analysis, lf_correlations
from thresher.label.apply import apply_lfs
from thresher.label.lf_files import LFSet, load_lfs
from thresher.label.lfs import KeywordLF, LFError, ScoreLF

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "label"
BBC = sample_path("labeled/bbc_news.parquet")
RT = sample_path("labeled/rotten_tomatoes.parquet")


def test_matrix_is_identical_across_workers_and_batch_sizes():
    lfs = load_lfs(EXAMPLES / "bbc_news.yaml")
    ref = apply_lfs(th.read(BBC, batch_size=1000), lfs, workers=1)
    assert ref.matrix.n_records == 250 and ref.matrix.n_lfs == len(lfs)
    assert ref.matrix.nnz > 250  # real articles trigger several topic LFs
    for workers, batch in ((2, 17), (2, 64), (1, 33)):
        other = apply_lfs(th.read(BBC, batch_size=batch), lfs, workers=workers)
        assert other.matrix == ref.matrix
        assert other.ids.to_pylist() == ref.ids.to_pylist()


def test_python_lf_file_runs_in_worker_processes():
    lfs = load_lfs(EXAMPLES / "rotten_tomatoes.py")
    one = apply_lfs(th.read(RT, batch_size=50), lfs, workers=1)
    two = apply_lfs(th.read(RT, batch_size=50), lfs, workers=2)
    assert two.engine["workers"] == 2 and "note" not in two.engine
    assert one.matrix == two.matrix and one.matrix.nnz > 50


def test_lambdas_and_closures_run_in_worker_processes():
    lfs = LFSet(["fresh", "rotten"], [th.lf(lambda t: "fresh" if "great" in t.lower() else None, name="great")])
    applied = apply_lfs(th.read(RT), lfs, workers=2)
    assert applied.engine["workers"] == 2 and "note" not in applied.engine
    texts = pq.read_table(RT)["text"].to_pylist()
    assert applied.matrix.to_dense()[:, 0].tolist() == [0 if "great" in t.lower() else -1 for t in texts]


def test_unpicklable_lfs_run_in_process_with_a_note():
    import threading

    lock = threading.Lock()  # an LF holding a lock cannot be pickled at all

    def great(text):
        with lock:
            return "fresh" if "great" in text.lower() else None

    lfs = LFSet(["fresh", "rotten"], [th.lf(great)])
    applied = apply_lfs(th.read(RT), lfs, workers=2)
    assert applied.engine["workers"] == 1 and "cannot be sent" in applied.engine["note"]
    texts = pq.read_table(RT)["text"].to_pylist()
    assert applied.matrix.to_dense()[:, 0].tolist() == [0 if "great" in t.lower() else -1 for t in texts]


def _flaky():
    @th.lf
    def flaky(text):
        if "!" in text:
            raise ValueError("cannot handle exclamations")
        return None
    return flaky


def test_lf_exception_names_lf_and_record_or_is_counted_as_abstain_with_skip():
    table = pq.read_table(RT)
    first_bad = next(i for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist()) if "!" in t)
    n_bad = sum("!" in t for t in table["text"].to_pylist())
    lfs = LFSet(["fresh", "rotten"], [_flaky(), KeywordLF("dull", "rotten", ["dull", "boring"])])
    with pytest.raises(LFError, match=f"'flaky' failed on record '{first_bad}'.*ValueError"):
        apply_lfs(th.read(RT, batch_size=64), lfs, workers=1)
    skipped = apply_lfs(th.read(RT, batch_size=64, on_error="skip"), lfs, workers=1)
    assert skipped.lf_failures == {"flaky": n_bad, "dull": 0}
    assert skipped.failure_examples["flaky"][0].startswith(first_bad)
    assert skipped.matrix.to_dense()[:, 0].max() == -1  # failures are abstains
    assert skipped.matrix.n_records == table.num_rows  # no record lost


def test_score_lf_reads_a_side_car_score_table_by_id():
    table = pq.read_table(RT)
    ids = table["id"].to_pylist()
    # scores in another order, one id missing: joined by id, missing -> abstain
    scores = pa.table({"id": ids[::-1][1:], "len": [float(len(t)) for t in table["text"].to_pylist()[::-1][1:]]})
    lfs = LFSet(["fresh", "rotten"], [ScoreLF("long", "len", 100, "fresh", op=">", else_label="rotten")])
    votes = apply_lfs(th.read(RT), lfs, workers=1, scores=scores).matrix.to_dense()[:, 0]
    expected = [0 if len(t) > 100 else 1 for t in table["text"].to_pylist()]
    expected[-1] = -1  # the last record (first of the reversed list) has no score
    assert votes.tolist() == expected


def test_analysis_matches_brute_force_counts_and_flags_duplicate_lfs():
    base = load_lfs(EXAMPLES / "bbc_news.yaml")
    twin = KeywordLF("sport_football_copy", "sport", base.lfs[14].keywords)
    lfs = LFSet(base.classes, [*base.lfs, twin])
    applied = apply_lfs(th.read(BBC), lfs, workers=1, extra_columns=("label",))
    y = np.array([lfs.classes.index(v) for v in applied.extra["label"].to_pylist()])
    report = analyse(applied.matrix, y, applied.matrix)
    D = applied.matrix.to_dense()
    n = len(D)
    for j, row in enumerate(report["per_lf"]):
        voted = D[:, j] != -1
        others = (D != -1).sum(axis=1) - voted
        conflict = [voted[i] and any(v not in (-1, D[i, j]) for v in D[i]) for i in range(n)]
        assert row["coverage"] == pytest.approx(voted.mean())
        assert row["overlaps"] == pytest.approx((voted & (others > 0)).mean())
        assert row["conflicts"] == pytest.approx(np.mean(conflict))
        assert row["correct"] == int((D[voted, j] == y[voted]).sum())
        assert np.array(row["confusion"]).sum() == voted.sum()
    assert report["coverage"] == pytest.approx(((D != -1).sum(axis=1) > 0).mean())
    flagged = {tuple(p["lfs"]): p["kind"] for p in report["correlated_pairs"]}
    assert flagged[(base.lfs[14].name, "sport_football_copy")] == "duplicate"
    text = format_analysis(report, lfs.classes)
    assert "emp_acc" in text and "sport_football_copy are duplicate" in text
    without_copy = lf_correlations(applied.matrix.columns(np.arange(len(base.lfs))))
    assert all(p["kind"] != "duplicate" for p in without_copy)


def test_records_without_text_are_counted_by_the_error_log(tmp_path):
    path = tmp_path / "dirty.jsonl"
    path.write_text('{"id": "a", "text": "a dull film"}\n{"id": "b"}\n{"id": "c", "text": ""}\n'
                    '{"id": "d", "text": "great fun"}\n')
    lfs = load_lfs(EXAMPLES / "rotten_tomatoes.py")
    errors = ErrorLog("skip")
    applied = apply_lfs(th.read(path, on_error="skip"), lfs, errors, workers=1)
    assert applied.ids.to_pylist() == ["a", "d"] and errors.n_failed == 2
    assert applied.matrix.to_dense()[0].max() == 1 and applied.matrix.to_dense()[1].max() == 0


def test_an_lf_failing_in_a_worker_process_is_named_not_reported_as_a_dead_worker(tmp_path):
    # Regression: LFError could not be unpickled in the main process, so 2 workers reported "a worker process died".
    import pickle

    err = pickle.loads(pickle.dumps(LFError("f", "rec-1", "KeyError: 'boom'")))
    assert (err.lf_name, err.record_id, err.detail) == ("f", "rec-1", "KeyError: 'boom'")
    path = tmp_path / "raises.py"
    path.write_text("import thresher as th\nCLASSES = ['fresh', 'rotten']\n\n@th.lf\ndef boom(text):\n"
                    "    if '!' in text:\n        raise KeyError('boom')\n    return None\n\n"
                    "@th.lf\ndef out_of_range(text):\n    return 5 if 'dull' in text else None\n")
    table = pq.read_table(RT)
    first_bad = next(i for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist()) if "!" in t)
    lfs = load_lfs(path)
    with pytest.raises(LFError, match=f"'boom' failed on record '{first_bad}': KeyError: 'boom'") as info:
        apply_lfs(th.read(RT, batch_size=64), lfs, workers=2)
    assert info.value.lf_name == "boom" and info.value.record_id == first_bad
    path.write_text(path.read_text().replace("raise KeyError('boom')", "pass"))
    first_dull = next(i for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist()) if "dull" in t)
    with pytest.raises(LFError, match=f"'out_of_range' failed on record '{first_dull}'.*returned class 5"):
        apply_lfs(th.read(RT, batch_size=64), load_lfs(path), workers=2)


def test_a_score_lf_whose_column_exists_nowhere_is_an_error_naming_the_lf():
    table = pq.read_table(RT)
    lfs = LFSet(["fresh", "rotten"], [KeywordLF("dull", "rotten", ["dull"]), ScoreLF("hi", "dsir", 0, "fresh")])
    with pytest.raises(ConfigError, match=r"LF 'hi': column 'dsir' is not in the pool \(a side-car score needs "):
        apply_lfs(th.read(RT), lfs, workers=1)
    other = pa.table({"id": table["id"], "len": pa.array([1.0] * table.num_rows)})
    with pytest.raises(ConfigError, match="column 'dsir' is not in the pool or the --scores-from run"):
        apply_lfs(th.read(RT), lfs, workers=1, scores=other)
    unmatched = pa.table({"id": [f"elsewhere-{i}" for i in range(5)], "dsir": [1.0] * 5})
    with pytest.raises(ConfigError, match="'dsir' of the --scores-from run has no value for any record"):
        apply_lfs(th.read(RT), lfs, workers=1, scores=unmatched)
    # A column present but null on some records still just abstains there.
    partial = pa.table({"id": table["id"][:10], "dsir": pa.array([1.0] * 10)})
    votes = apply_lfs(th.read(RT), lfs, workers=1, scores=partial).matrix.to_dense()[:, 1]
    assert (votes[:10] == 0).all() and (votes[10:] == -1).all()


def test_duplicate_pool_ids_are_an_error(tmp_path):
    # the dataset layer's id check (every job has it) stops the labelling at the first repeat, naming both rows
    table = pq.read_table(RT).slice(0, 50)
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.concat_tables([table, table.slice(3, 2)]), path)
    lfs = LFSet(["fresh", "rotten"], [KeywordLF("dull", "rotten", ["dull"])])
    ids = table["id"].to_pylist()
    with pytest.raises(ThresherError, match=rf"duplicate id '{ids[3]}'.*row 50.*row 3"):
        apply_lfs(th.read(path), lfs, workers=1)
    renamed = apply_lfs(th.read(path, duplicate_ids="rename"), lfs, workers=1)
    assert renamed.matrix.n_records == 52 and renamed.ids.to_pylist()[50] == f"{ids[3]}#2"


def test_keyword_lfs_matched_in_groups_vote_as_each_lf_alone():
    # apply_batch matches keyword LFs through one union pass per group, then each LF on the records its group hit.
    from thresher.label.apply import apply_batch
    from thresher.label.lfs import RegexLF

    for path in (EXAMPLES / "bbc_news.yaml", EXAMPLES / "rotten_tomatoes.py"):
        lfs = load_lfs(path)
        extra = [KeywordLF("case_The", lfs.classes[0], ["The", "It"], case_sensitive=True),
                 KeywordLF("parts", lfs.classes[1], ["film", "ing"], whole_word=False),
                 KeywordLF("case_US", lfs.classes[1], ["US", "UK"], case_sensitive=True)]
        lf_set = LFSet(lfs.classes, [*lfs.lfs, *extra])
        table = pq.read_table(BBC if "bbc" in path.name else RT).select(["id", "text"])
        grouped = apply_batch(lf_set, table, "raise")[0].toarray() - 1
        alone = np.stack([f.apply(table, lf_set.classes).votes for f in lf_set.lfs], axis=1)
        np.testing.assert_array_equal(grouped, alone)
        assert sum(isinstance(f, RegexLF) for f in lf_set.lfs) > 8 and (grouped >= 0).sum() > 100
