"""A causal LM asked a question about each record: the log probability of each class's answer, cached on disk.

A prompt is a template holding ``{text}`` (the record, cut to ``max_tokens`` tokens) and optionally ``{choices}``
(the classes' first answers, "a, b or c"). With ``chat=False`` (the default) it is plain text after the prefix token
and the answer continues it (" positive", with its space); with ``chat=True`` it is sent as a user turn through the
tokenizer's chat template and the answer is the assistant's first word ("Positive", no leading space). A class may have
several answers; its score is the log of their summed probabilities. Multi-token answers are scored exactly (every
token), at the cost of a short extra pass per such answer (see :meth:`CausalLM.continuation_logprobs`).

Scores are cached per record text in ``cache_dir()/prompts/<key>.sqlite``, the key covering everything that
changes them (model file, dtype, prefix, chat, template, answers, max_tokens; not the batch size, which moves a
score only by float rounding, below 1e-4 nats). A record seen before is not run again, by any process: the first
score computed for a text is the one every later run reads, so reruns are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from thresher.errors import ConfigError
from thresher.lm.causal import _CHARS_PER_TOKEN, CausalLM, CausalLMConfig, _cut, resolve_model

#: plain text the answer continues. Chosen on bbc_news, review_sentences and vader_tweets (100 records each,
#: SmolLM2-135M, answers the class names): 0.82 / 0.78 / 0.72 accuracy with a bias fitted on 50 of them, against
#: 0.38-0.72 for templates listing the {choices} (small LMs favour a position in the list) and 0.38 for the same
#: question as a chat turn on bbc_news
DEFAULT_TEMPLATE = "{text}\n\nThis text is about"
_SQLITE_TIMEOUT = 120.0  # seconds a worker waits for another's write to the shared cache
_STORE_EVERY = 8  # batches of records scored between two writes to the cache


def choices_phrase(words: Sequence[str]) -> str:
    """ "a, b or c" for the ``{choices}`` placeholder."""
    words = [w.strip() for w in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class PromptScorer:
    """The log probability of each class's answer(s) to ``template`` about each record (see the module docs).

    answers: class -> list of answer strings (a string is one answer). cache: True (the user cache folder), False,
    or a folder for the cache file."""

    def __init__(self, template: str, answers: Mapping[str, Sequence[str] | str], chat: bool = False,
                 max_tokens: int = 256, lm: CausalLMConfig | None = None, cache: bool | str | os.PathLike = True):
        if "{text}" not in template:
            raise ConfigError("a prompt needs a {text} placeholder where the record goes")
        if not isinstance(answers, Mapping) or len(answers) < 2:
            raise ConfigError("a prompt needs answers for at least two classes (class -> answer words)")
        clean: dict[str, list[str]] = {}
        for label, words in answers.items():
            words = [words] if isinstance(words, str) else list(words or [])
            if not words or not all(isinstance(w, str) and w.strip() for w in words):
                raise ConfigError(f"the answers of class {label!r} must be a non-empty list of words")
            clean[str(label)] = words
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.template, self.answers, self.chat, self.max_tokens = template, clean, bool(chat), int(max_tokens)
        self.lm = CausalLM(lm or CausalLMConfig())
        self.cache = cache
        self._db: sqlite3.Connection | None = None
        self._answer_ids: list[list[int]] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_db": None, "_answer_ids": None}  # connections and token ids are per process

    @property
    def prompt_template(self) -> str:
        """The template with ``{choices}`` filled in (``{text}`` left for the record)."""
        return self.template.replace("{choices}", choices_phrase([w[0] for w in self.answers.values()]))

    def answer_ids(self) -> list[list[int]]:
        """Token ids of every answer, classes in order; two classes may not share an answer."""
        if self._answer_ids is None:
            tokenizer = self.lm._loaded()[0].tokenizer
            seen: dict[tuple[int, ...], str] = {}
            ids = []
            for label, words in self.answers.items():
                for word in words:
                    tokens = tuple(tokenizer(word, add_special_tokens=False)["input_ids"])
                    if not tokens:
                        raise ConfigError(f"answer {word!r} of class {label!r} has no tokens")
                    if seen.get(tokens, label) != label:
                        raise ConfigError(f"answer {word!r} is given for both {seen[tokens]!r} and {label!r}")
                    seen[tokens] = label
                    ids.append(list(tokens))
            self._answer_ids = ids
        return self._answer_ids

    def encode(self, texts: Sequence[str | None]) -> list[list[int]]:
        """Prompt token ids per record: the record cut to ``max_tokens`` tokens, put in the template, wrapped."""
        loaded, prefix = self.lm._loaded()
        tokenizer = loaded.tokenizer
        if self.chat and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"model {self.lm.config.model!r} has no chat template: use chat: false")
        template = self.prompt_template
        out = []
        for text in texts:
            text = _cut(text or "", _CHARS_PER_TOKEN * self.max_tokens)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > self.max_tokens:
                text = tokenizer.decode(ids[:self.max_tokens])
            prompt = template.replace("{text}", text)
            if self.chat:
                prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                       add_generation_prompt=True)
                out.append(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            else:
                out.append(([prefix] if prefix is not None else []) + tokenizer(prompt, add_special_tokens=False)[
                    "input_ids"])
        return out

    def scores(self, texts: Sequence[str | None]) -> np.ndarray:
        """Per record and class (answers order), the log probability of the class's answers; cached per text."""
        texts = [t or "" for t in texts]
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        found = self._lookup(set(keys))
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        first = {k: t for k, t in zip(keys, texts)}
        step = _STORE_EVERY * self.lm.config.batch_size  # stored as it goes: a stopped run keeps what it computed
        for a in range(0, len(missing), step):
            chunk = missing[a:a + step]
            logp = self.lm.continuation_logprobs(self.encode([first[k] for k in chunk]), self.answer_ids())
            new = dict(zip(chunk, self._per_class(logp)))
            self._store(new)
            found.update(new)
            found.update(self._lookup(set(new)))  # another worker's score for the same text, if it stored first
        return np.array([found[k] for k in keys], dtype=np.float64).reshape(len(texts), len(self.answers))

    def _per_class(self, logp: np.ndarray) -> np.ndarray:
        """Answer log probabilities summed (in probability) over each class's answers."""
        sizes = np.cumsum([0] + [len(w) for w in self.answers.values()])
        return np.stack([np.logaddexp.reduce(logp[:, a:b], axis=1) for a, b in zip(sizes[:-1], sizes[1:])], axis=1)

    # -- the on-disk cache -------------------------------------------------------------------------------------------

    def cache_key(self) -> str:
        """A digest of everything that changes a record's scores."""
        folder, gguf = resolve_model(self.lm.config.model)
        model_file = folder / gguf if gguf else folder / "config.json"
        config = self.lm.config
        spec = {"model": str(model_file), "bytes": model_file.stat().st_size, "dtype": config.dtype, "bos": config.bos,
                "chat": self.chat, "template": self.prompt_template, "answers": self.answers,
                "max_tokens": self.max_tokens}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]

    def _connection(self) -> sqlite3.Connection | None:
        if self.cache is False:
            return None
        if self._db is None:
            from thresher.embeddings.backends import cache_dir

            folder = Path(cache_dir() / "prompts" if self.cache is True else self.cache)
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(folder / f"{self.cache_key()}.sqlite", timeout=_SQLITE_TIMEOUT)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS scores (text_hash BLOB PRIMARY KEY, logp BLOB NOT NULL)")
            self._db = db
        return self._db

    def _lookup(self, keys: set[bytes]) -> dict[bytes, np.ndarray]:
        db = self._connection()
        if db is None or not keys:
            return {}
        found: dict[bytes, np.ndarray] = {}
        wanted = list(keys)
        for a in range(0, len(wanted), 500):  # below SQLite's limit on bound parameters
            chunk = wanted[a:a + 500]
            rows = db.execute(f"SELECT text_hash, logp FROM scores WHERE text_hash IN ({','.join('?' * len(chunk))})",
                              chunk)
            found.update((k, np.frombuffer(v, dtype=np.float64)) for k, v in rows)
        return found

    def _store(self, scores: dict[bytes, np.ndarray]) -> None:
        db = self._connection()
        if db is None:
            return
        with db:  # one transaction; a text another process stored meanwhile keeps its first score
            db.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?)",
                           [(k, np.ascontiguousarray(v, dtype=np.float64).tobytes()) for k, v in scores.items()])
