"""LFs cannot hang or end a run (issue 11, item 8), on the bundled BBC sample, in-process and in worker processes:
a catastrophic regex stays on RE2, a sleeping LF is stopped by the per-batch time limit, sys.exit in an LF is that
LF's failure, and a batched LF returning the wrong number of votes is named with expected vs got."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.label.apply import apply_lfs
from thresher.label.lf_files import load_lfs
from thresher.label.lfs import LFError, RegexLF

BBC = sample_path("labeled/bbc_news.parquet")
ROOT = Path(__file__).resolve().parents[1]


def _first_non_ascii_id() -> str:
    table = pq.read_table(BBC)
    ascii_rows = pc.string_is_ascii(table["text"]).to_pylist()
    return table["id"].to_pylist()[ascii_rows.index(False)]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lfs.py"
    path.write_text("import sys\nimport time\nimport thresher as th\n"
                    "CLASSES = ['business', 'entertainment', 'politics', 'sport', 'tech']\n" + body)
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_catastrophic_regex_runs_on_re2_in_linear_time_on_non_ascii_records(tmp_path, workers):
    # (\w+\s?)*$ backtracks exponentially in Python re on a long run of words that ends in a non-word character;
    # the sample has non-ASCII articles (pound signs), where it used to fall back to Python re.
    path = tmp_path / "lfs.yaml"
    path.write_text("classes: [business, entertainment, politics, sport, tech]\nlfs:\n"
                    "  - {name: words_to_end, label: tech, regex: ['(\\w+\\s?)*$']}\n")
    lf = load_lfs(path).lfs[0]
    assert isinstance(lf, RegexLF) and lf.engine == "re2"
    applied = apply_lfs(th.read(BBC, batch_size=64), load_lfs(path), workers=workers, lf_timeout=30)
    texts = pq.read_table(BBC)["text"].to_pylist()
    # The pattern matches every text (it may match the empty string at the end), so every record votes tech.
    assert applied.matrix.to_dense()[:, 0].tolist() == [4] * len(texts)
    assert _first_non_ascii_id() in applied.ids.to_pylist()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sleeping_lf_is_stopped_by_the_time_limit_and_named_or_counted(tmp_path, workers):
    path = _write(tmp_path, "@th.lf\ndef slow(text):\n    time.sleep(30)\n    return None\n\n"
                            "@th.lf\ndef film(text):\n    return 'entertainment' if 'film' in text else None\n")
    first = pq.read_table(BBC)["id"][0].as_py()
    with pytest.raises(LFError, match=rf"'slow' failed on record '{re.escape(first)}': timed out: no result within "
                                      r"0\.5 s for its batch of 100 records .*--lf-timeout"):
        apply_lfs(th.read(BBC, batch_size=100), load_lfs(path), workers=workers, lf_timeout=0.5)
    skipped = apply_lfs(th.read(BBC, batch_size=100, on_error="skip"), load_lfs(path), workers=workers,
                        lf_timeout=0.2)
    assert skipped.lf_failures == {"slow": 250, "film": 0}  # every record of every batch, counted, none lost
    assert skipped.matrix.n_records == 250
    dense = skipped.matrix.to_dense()
    assert (dense[:, 0] == -1).all() and (dense[:, 1] == 1).sum() > 0  # the other LF still votes


def test_a_regex_on_python_re_is_bounded_by_the_time_limit():
    # A back-reference keeps this pattern on Python re, where it backtracks exponentially on any article of more
    # than a few dozen words (none ends in "!").
    lf = RegexLF("backtrack", "tech", r"^(\w+\s?)*\1!$")
    assert lf.engine == "python"
    table = pq.read_table(BBC).select(["id", "text"]).slice(0, 3)
    from thresher.label.apply import apply_batch
    from thresher.label.lf_files import LFSet

    with pytest.raises(LFError, match=r"'backtrack' failed on record .*timed out: no result within 0\.3 s"):
        apply_batch(LFSet(["business", "tech"], [lf]), table, "raise", 0.3)
    votes, failures = apply_batch(LFSet(["business", "tech"], [lf]), table, "skip", 0.3)
    assert votes.nnz == 0 and len(failures["backtrack"]) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_sys_exit_in_an_lf_is_a_named_failure_not_the_end_of_the_run(tmp_path, workers):
    path = _write(tmp_path, "@th.lf\ndef quits(text):\n    if 'film' in text:\n        sys.exit(3)\n"
                            "    return None\n")
    table = pq.read_table(BBC)
    film = [i for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist()) if "film" in t]
    with pytest.raises(LFError, match=rf"'quits' failed on record '{re.escape(film[0])}': called sys\.exit\(3\)"):
        apply_lfs(th.read(BBC, batch_size=64), load_lfs(path), workers=workers)
    skipped = apply_lfs(th.read(BBC, batch_size=64, on_error="skip"), load_lfs(path), workers=workers)
    assert skipped.lf_failures == {"quits": len(film)} and len(film) > 5
    assert skipped.failure_examples["quits"][0] == f"{film[0]}: called sys.exit(3); an LF returns a class or None, " \
                                                   "it does not end the run"


def test_the_cli_reports_an_lf_calling_sys_exit_and_exits_2_or_counts_it_with_skip(tmp_path):
    path = _write(tmp_path, "@th.lf\ndef quits(text):\n    if 'film' in text:\n        sys.exit(3)\n"
                            "    return None\n\n"
                            "@th.lf\ndef sport(text):\n    return 'sport' if 'match' in text else None\n")
    cmd = [sys.executable, "-m", "thresher.cli", "label", "--pool", str(BBC), "--lfs", str(path), "--quiet",
           "--no-report", "--workers", "2"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    failed = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    assert failed.returncode == 2, failed.stderr
    assert "labelling function 'quits' failed on record" in failed.stderr and "sys.exit(3)" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1  # one line, no traceback
    skipped = subprocess.run([*cmd, "--out", str(tmp_path / "b"), "--on-error", "skip", "--json"],
                             capture_output=True, text=True, env=env)
    assert skipped.returncode == 0, skipped.stderr
    import json

    counts = json.loads(skipped.stdout)["counts"]
    n_film = sum("film" in t for t in pq.read_table(BBC)["text"].to_pylist())
    assert counts["lf_errors"] == {"quits": n_film, "sport": 0}
    assert counts["input_records"] == 250


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batched_lf_returning_the_wrong_number_of_votes_is_named_with_expected_and_got(tmp_path, workers):
    path = _write(tmp_path, "@th.lf(batched=True)\ndef short(texts):\n    return ['sport'] * (len(texts) - 1)\n")
    first = pq.read_table(BBC)["id"][0].as_py()
    with pytest.raises(LFError, match=rf"'short' failed on record '{re.escape(first)}': returned 99 votes for a batch "
                                      r"of 100 records .*one vote per text"):
        apply_lfs(th.read(BBC, batch_size=100), load_lfs(path), workers=workers)
    skipped = apply_lfs(th.read(BBC, batch_size=100, on_error="skip"), load_lfs(path), workers=workers)
    assert skipped.lf_failures == {"short": 250} and skipped.matrix.nnz == 0


def test_a_batched_lf_failing_on_one_record_is_still_narrowed_and_its_single_calls_are_checked():
    @th.lf(batched=True)
    def picky(texts):
        if any("film" in t for t in texts):
            raise RuntimeError("cannot read films")
        return [] if len(texts) == 1 and "match" in texts[0] else ["sport"] * len(texts)

    table = pq.read_table(BBC).select(["id", "text"]).slice(0, 40)
    texts = table["text"].to_pylist()
    out = picky.apply(table, ["business", "entertainment", "politics", "sport", "tech"], on_error="skip")
    film = ["film" in t for t in texts]
    empty = [("match" in t) and not f for t, f in zip(texts, film)]
    assert any(film) and any(empty)
    assert sorted(out.failed_rows) == [i for i in range(40) if film[i] or empty[i]]
    assert out.votes.tolist() == [-1 if film[i] or empty[i] else 3 for i in range(40)]
    why = dict(f.split(": ", 1) for f in out.failures)
    assert why[table["id"][empty.index(True)].as_py()].startswith("ValueError: returned 0 votes for a batch of 1")


def test_lf_timeout_must_be_a_number():
    from thresher.errors import ConfigError
    from thresher.label.lf_files import LFSet
    from thresher.label.lfs import KeywordLF

    with pytest.raises(ConfigError, match="lf_timeout must be a number of seconds >= 0"):
        apply_lfs(th.read(BBC), LFSet(["a", "b"], [KeywordLF("k", "a", ["x"])]), workers=1, lf_timeout=-1)
