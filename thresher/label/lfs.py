"""Labelling functions (LFs): cheap, noisy voters that each return a class or abstain.

Six kinds, one interface (``LabelingFunction.apply(batch, classes)`` -> one vote per record, -1 = abstain):

* :func:`lf` decorates a Python function of a text (or, ``batched=True``, of a list of texts, e.g. a zero-shot
  model) into a :class:`CallableLF`; it returns a class index, a class name, or ``None``/-1 to abstain.
* :class:`KeywordLF` and :class:`RegexLF` vote a label when any keyword/pattern matches; they run vectorised on
  the whole Arrow batch (RE2 via ``pyarrow.compute``), falling back to Python ``re`` only for patterns RE2 lacks.
* :class:`ScoreLF` turns an existing score column into a vote (``column op threshold -> label``).
* :class:`PrototypeLF` votes the class whose example or description texts a record is nearest to in embedding
  space (nearest-centroid and zero-shot LFs; ``generate-lfs`` writes them).
* :class:`thresher.label.prompted.PromptLF` asks a local causal LM about each record.

LF sets and LF files (``.py`` and ``.yaml``) are read in :mod:`thresher.label.lf_files`.
"""

from __future__ import annotations

import math
import operator
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError, ThresherError
from thresher.label import patterns as _patterns

ABSTAIN = -1  # the same value as thresher.label.matrix.ABSTAIN (kept here so LF files import nothing heavy)


class LFError(ThresherError):
    """A labelling function raised or returned something invalid on a record; names the LF and the record id."""

    def __init__(self, lf_name: str, record_id: str, detail: str):
        self.lf_name, self.record_id, self.detail = lf_name, record_id, detail
        super().__init__(f"labelling function {lf_name!r} failed on record {record_id!r}: {detail}")

    def __reduce__(self):
        # Raised in worker processes: pickle the constructor's arguments, not the one-string ``args``, or the
        # main process cannot rebuild it and reports a dead worker instead of this message.
        return (type(self), (self.lf_name, self.record_id, self.detail))


@dataclass
class Votes:
    """One LF's votes on a batch: class indices (-1 = abstain) and the rows it failed on (with why)."""

    votes: np.ndarray
    failed_rows: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class LabelingFunction:
    """Base class: ``name``, the extra ``columns`` it reads, and ``apply`` over a batch."""

    name: str = ""
    kind: str = ""
    columns: tuple[str, ...] = ()
    #: whether ``--lf-timeout`` applies; False for built-in model LFs, whose time per batch is fixed by its size and
    #: long on a CPU (a prompted LM takes minutes per 1,000 records) but never stuck
    time_limited: bool = True

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise") -> Votes:
        """One vote per row of ``batch`` (columns ``id``, ``text`` and ``self.columns``)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """A JSON-able description for the manifest."""
        return {"name": self.name, "kind": self.kind}

    def voted_labels(self) -> tuple:
        """The classes this LF declares it votes (checked against the task's classes); () when only running it tells
        (a Python LF)."""
        return ()


# ------------------------------------------------------------------------------------------------ Python callables


class CallableLF(LabelingFunction):
    """Wrap any function of a text (``batched=False``) or of a list of texts (``batched=True``) as an LF."""

    kind = "python"

    def __init__(self, fn: Callable, name: str | None = None, batched: bool = False,
                 label_names: Sequence[str] | None = None):
        if not callable(fn):
            raise ConfigError(f"a labelling function must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.batched = batched
        self.label_names = list(label_names) if label_names is not None else None
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, text):
        """Call the wrapped function directly (handy in notebooks and tests)."""
        return self.fn(text)

    def __repr__(self) -> str:
        return f"CallableLF({self.name!r}, batched={self.batched})"

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise",
              texts: list[str] | None = None) -> Votes:
        """One vote per record (``texts``: the batch's texts as a list, if the caller has them already)."""
        texts = batch["text"].to_pylist() if texts is None else texts
        ids = _LazyIds(batch["id"])
        names = self.label_names or classes
        index = {c: i for i, c in enumerate(names)}
        out = Votes(np.full(len(texts), ABSTAIN, dtype=np.int32))
        row, fast = 0, []
        try:
            if self.batched:
                try:
                    values = list(self.fn(texts))
                except USER_ERRORS:  # find the failing records one by one
                    values = None
                if values is not None and len(values) != len(texts):
                    detail = (f"returned {len(values)} votes for a batch of {len(texts)} records (ids {ids[0]!r} to "
                              f"{ids[-1]!r}); a batched LF returns one vote per text, in order")
                    self._fail(out, range(len(texts)), ids, detail, on_error)
                    return out
                if values is not None:
                    for row, value in enumerate(values):
                        self._store(out, row, lambda v=value: v, ids, index, len(classes), on_error)
                    return out
            call = self._call_one if self.batched else self.fn
            done: list = []  # what the first records after the plain ones gave (or raised), in order
            if not self.batched:
                done = self._plain_votes(texts, index, len(classes), fast)
                out.votes[:len(fast)] = fast
            for row in range(len(fast), len(texts)):
                known = row - len(fast)
                compute = done[known] if known < len(done) else lambda t=texts[row]: call(t)
                self._store(out, row, compute, ids, index, len(classes), on_error)
        except LFTimeout as e:  # the batch's time ran out on this record: it and the rest of the batch fail
            row = max(row, len(fast))
            out.votes[:len(fast)] = fast
            self._fail(out, range(row, len(texts)), ids, e.detail(len(texts), ids[0]), on_error)
        return out

    def _plain_votes(self, texts: list, index: dict, k: int, out: list) -> list[Callable]:
        """Call the LF on the records in one C-level loop (``map``) until one raises, and append the votes of the
        leading records whose value is plainly valid (a class name, ``None`` or an in-range ``int``) to ``out``.
        Return what gives each later record's value (or raises its error) that was computed, for the careful
        per-record path: each record's LF is called once."""
        lookup = {**index, None: ABSTAIN, **{i: i for i in range(ABSTAIN, k)}}
        values: list = []
        error: BaseException | None = None
        try:
            values.extend(map(self.fn, texts))
        except USER_ERRORS as e:
            error = e
        except LFTimeout:  # the records done keep their votes; the caller fails the rest
            out.extend(_plain_prefix(values, lookup))
            raise
        out.extend(_plain_prefix(values, lookup))
        return [partial(_identity, v) for v in values[len(out):]] + ([partial(_raise, error)] if error else [])

    def _call_one(self, text: str):
        """A batched LF called on one text (to find which record fails), checking it returns one vote."""
        values = list(self.fn([text]))
        if len(values) != 1:
            raise ValueError(f"returned {len(values)} votes for a batch of 1 record; a batched LF returns one vote "
                             "per text")
        return values[0]

    def _store(self, out: Votes, row: int, compute: Callable, ids: list, index: dict, k: int, on_error: str) -> None:
        """Run one record's vote, convert it to a class index, and handle a failure by the error policy."""
        try:
            out.votes[row] = _as_class(compute(), index, k)
        except USER_ERRORS as e:  # user code: any exception (even sys.exit) is this LF's failure on this record
            if on_error == "raise":
                raise LFError(self.name, ids[row], describe_error(e)) from e
            out.failed_rows.append(row)
            out.failures.append(f"{ids[row]}: {describe_error(e)}")

    def _fail(self, out: Votes, rows: range, ids: list, detail: str, on_error: str) -> None:
        """Fail ``rows`` (abstains, counted) or, with ``on_error="raise"``, stop naming the first of them."""
        if on_error == "raise":
            raise LFError(self.name, ids[rows[0]], detail)
        out.votes[list(rows)] = ABSTAIN
        out.failed_rows.extend(rows)
        out.failures.extend(f"{ids[r]}: {detail}" for r in rows)


class _LazyIds:
    """A batch's record ids, turned into Python strings only when a failure names one."""

    def __init__(self, column: pa.ChunkedArray | pa.Array):
        self.column, self.values = column, None

    def __getitem__(self, row: int) -> str:
        if self.values is None:
            self.values = self.column.to_pylist()
        return self.values[row]


class LFTimeout(BaseException):
    """An LF ran out of its time on a batch. A ``BaseException``, so the LF's own ``except Exception`` cannot
    swallow it."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds

    def detail(self, n_records: int, first_id: str) -> str:
        """Why the records failed, and what to do about it."""
        return (f"timed out: no result within {self.seconds:g} s for its batch of {n_records:,} records (starting at "
                f"record {first_id!r}); raise the limit with --lf-timeout (lf_timeout=), or make the LF faster")


#: What a failure of user code can raise: everything but Ctrl-C (and our own time limit). ``SystemExit`` from an LF
#: calling ``sys.exit`` is the LF's failure, not the end of the run.
USER_ERRORS = (Exception, SystemExit, GeneratorExit)


_PLAIN_TYPES = {str, int, type(None)}


def _plain_prefix(values: list, lookup: dict) -> list[int]:
    """The class indices of the leading ``values`` that are plainly valid (``lookup``: class names, ``None`` and
    in-range ints), converted at C speed; anything else (a bool, a float, a NumPy int) ends the prefix."""
    if set(map(type, values)) <= _PLAIN_TYPES:
        votes = list(map(lookup.get, values))
        return votes[:votes.index(None)] if None in votes else votes
    votes = []
    for value in values:
        if type(value) not in _PLAIN_TYPES or value not in lookup:
            break
        votes.append(lookup[value])
    return votes


def _raise(error: BaseException):
    raise error


def _identity(value):
    return value


def describe_error(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"called sys.exit({e.code!r}); an LF returns a class or None, it does not end the run"
    return f"{type(e).__name__}: {e}"


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`LFTimeout` in the code run inside if it takes longer than ``seconds`` (``None``/0: no limit).

    Uses ``SIGALRM``, which interrupts Python code, ``time.sleep`` and Python ``re`` alike; it works in a process's
    main thread (the CLI, scripts, notebooks and worker processes), elsewhere the code runs without a limit.
    """
    if not seconds or math.isinf(seconds) or not hasattr(signal, "setitimer") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise LFTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:  # someone else's timer was running: give it back what is left of it
            left = max(outer_delay - (time.monotonic() - start), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _as_class(value: object, index: dict, k: int) -> int:
    """A vote as a class index: an int in range, a class name, or None / -1 (abstain)."""
    if value is None:
        return ABSTAIN
    if isinstance(value, str):
        if value not in index:
            raise ValueError(f"returned {value!r}, which is not a class ({', '.join(index)})")
        return index[value]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"returned {value!r} ({type(value).__name__}); return a class index, a class name or None")
    if not ABSTAIN <= int(value) < k:
        raise ValueError(f"returned class {int(value)}, outside 0..{k - 1} (or -1 to abstain)")
    return int(value)


def lf(fn: Callable | None = None, *, name: str | None = None, batched: bool = False,
       label_names: Sequence[str] | None = None):
    """Decorator: ``@lf`` or ``@lf(name=..., batched=True, label_names=[...])`` turns a function into an LF.

    The function gets a text (or a list of texts with ``batched=True``) and returns a class index, a class name
    (from ``label_names``, else the LF set's classes) or ``None`` to abstain.
    """
    def wrap(f: Callable) -> CallableLF:
        return CallableLF(f, name=name, batched=batched, label_names=label_names)

    return wrap(fn) if fn is not None else wrap


# ------------------------------------------------------------------------------------------------ keyword and regex


#: Constructs whose meaning differs between RE2 (ASCII) and Python ``re`` (Unicode): ``\b \w \d \s`` (and
#: negations), and ``$`` (Python also matches before a final newline).
_ENGINE_SENSITIVE = re.compile(r"\\[bBwWdDsS]|\$")
def _unsafe_byte(data: np.ndarray) -> np.ndarray:
    """Bytes of records where those constructs may disagree: any character outside plain ASCII (or ``\\v``,
    ``\\x1c``-``\\x1f``, which Python counts as spaces); with a final newline (:func:`rows_with_bytes`)."""
    return (data >= 0x80) | (data == 0x0b) | ((data >= 0x1c) & (data <= 0x1f))


def _non_ascii_byte(data: np.ndarray) -> np.ndarray:
    return data >= 0x80


def _one_array(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array; a one-chunk column's chunk itself (same buffers: no copy, and the same batch is
    recognised again by :func:`ascii_view`)."""
    if isinstance(text, pa.ChunkedArray):
        return text.chunk(0) if text.num_chunks == 1 else text.combine_chunks()
    return text


def rows_with_bytes(text: pa.Array | pa.ChunkedArray, marks: Callable[[np.ndarray], np.ndarray],
                    final_newline: bool = False) -> np.ndarray:
    """Which texts hold a UTF-8 byte that ``marks`` (of the bytes, elementwise) marks, or (``final_newline``) end
    with ``\\n``: a few NumPy passes over the batch's bytes instead of an RE2 call per record."""
    text = _one_array(text)
    n = len(text)
    if n == 0:
        return np.zeros(0, bool)
    _, offsets_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64 if pa.types.is_large_string(text.type) else np.int32)
    offsets = offsets[text.offset:text.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    positions = np.flatnonzero(marks(data[offsets[0]:offsets[-1]])) + offsets[0]
    out = np.zeros(n, bool)
    out[np.searchsorted(offsets, positions, side="right") - 1] = True
    if final_newline:
        ends = offsets[1:][offsets[1:] > offsets[:-1]]
        out[offsets[1:] > offsets[:-1]] |= data[ends - 1] == 0x0a
    if text.null_count:
        out &= np.asarray(text.is_valid().to_numpy(zero_copy_only=False), bool)
    return out


def keyword_pattern(keywords: Sequence[str], whole_word: bool = True, engine: str = "re2") -> str:
    """One alternation matching any keyword literally (runs of spaces match any whitespace).

    ``whole_word``: a keyword that starts with a word character (letter or digit of any script, or ``_``) must not
    follow one, and one that ends with a word character must not precede one; punctuation at a keyword's edge
    needs no boundary, so ``C++``, ``C#``, ``.NET`` and ``U.S.`` match. The boundaries consume the neighbouring
    character (RE2 has no look-arounds), which is fine for a yes/no match. ``engine`` (``re2`` or ``python``) only
    changes the spelling; both patterns match the same texts.
    """
    if engine == "python":
        return _patterns.keyword_pattern_python(keywords, whole_word)
    return _patterns.keyword_pattern_re2(keywords, whole_word)


class RegexLF(LabelingFunction):
    r"""Vote ``label`` when any of ``patterns`` matches the text (searched anywhere), else abstain.

    Patterns mean what they mean in Python's ``re`` (``\b``, ``\w``, ``\d``, ``\s`` are Unicode-aware, ``$`` also
    matches before a final newline) and run on RE2, in linear time, on the whole batch at once: they are rewritten
    with explicit Unicode classes (:mod:`thresher.label.patterns`), so word boundaries work in any script. A
    pattern that cannot be rewritten so (a ``\b`` next to something that may or may not be a word character) runs
    on RE2 for plain-ASCII records, where both engines agree, and with Python ``re`` on the others; one RE2 cannot
    run at all (look-arounds, back-references) runs with Python ``re`` on every record. Python ``re`` can take
    exponential time on some patterns, so those two kinds are bounded by the per-batch LF time limit
    (``lf_timeout``), as Python LFs are.
    """

    kind = "regex"

    def __init__(self, name: str, label: str | int, patterns: str | Sequence[str], case_sensitive: bool = False):
        self.name, self.label = name, label
        self.case_sensitive = _check_bool(name, "case_sensitive", case_sensitive)
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if not self.patterns or not all(isinstance(p, str) and p for p in self.patterns):
            raise ConfigError(f"LF {name!r}: give at least one non-empty pattern")
        self.pattern = "|".join(f"(?:{p})" for p in self.patterns)
        self._compile()

    def _python_pattern(self) -> str:
        return self.pattern

    def _re2(self) -> tuple[str | None, str]:
        """The RE2 pattern and how records are matched: ``re2``, ``re2+python`` (Python for non-ASCII records) or
        ``python``."""
        try:
            translated = _patterns.to_re2(self.pattern)
            if _re2_accepts(translated):
                return translated, "re2"
        except _patterns.Untranslatable:
            pass
        if _re2_accepts(self.pattern):
            return self.pattern, "re2+python" if _ENGINE_SENSITIVE.search(self.pattern) else "re2"
        return None, "python"

    def _compile(self) -> None:
        python_pattern = self._python_pattern()
        try:
            self._python = re.compile(python_pattern, 0 if self.case_sensitive else re.IGNORECASE)
        except re.error as e:
            raise ConfigError(f"LF {self.name!r}: invalid regular expression {python_pattern!r}: {e}") from None
        self.re2_pattern, self.engine = self._re2()
        self.view_pattern = self._view_pattern() if self.engine == "re2" else None
        self.loose_pattern = self._loose_pattern() if self.engine == "re2+python" else None

    def _loose_pattern(self) -> str | None:
        """For a pattern left to Python ``re`` on non-ASCII records: an RE2 prefilter on their :func:`ascii_view`
        that matches wherever the pattern does (its undecidable ``\\b`` left out), so Python only checks the
        records it matches; ``None`` if there is none."""
        try:
            translated = _patterns.to_re2(self.pattern, view=True, loose=True)
        except _patterns.Untranslatable:
            return None
        return translated if _re2_accepts(translated) else None

    def _view_pattern(self) -> str | None:
        """The RE2 pattern for the :func:`ascii_view` of the texts (cheap to compile), or ``None`` if the pattern
        has no such spelling (then the texts themselves are matched with :attr:`re2_pattern`)."""
        try:
            translated = _patterns.to_re2(self.pattern, view=True)
        except _patterns.Untranslatable:
            return None
        return translated if _re2_accepts(translated) else None

    @property
    def vectorised(self) -> bool:
        """Whether RE2 matches the whole batch at once (Python ``re`` at most for non-ASCII records)."""
        return self.engine != "python"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r} -> {self.label!r})"

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise") -> Votes:
        return self.votes(self.matches(batch["text"]), classes)

    def votes(self, hit: np.ndarray, classes: Sequence[str]) -> Votes:
        """Votes from whether each record matched: the label where it did, abstain elsewhere."""
        return Votes(np.where(hit, label_index(self.label, classes, self.name), ABSTAIN).astype(np.int32))

    def matches(self, text: pa.Array | pa.ChunkedArray, engine: str | None = None,
                view: pa.Array | None = None) -> np.ndarray:
        """Whether each text matches: as :attr:`engine` says (on the :func:`ascii_view` of the texts where the
        pattern has a :attr:`view_pattern`; ``view``: that view, if already made) or, with ``engine="python"``, by
        Python ``re`` alone, or with ``engine="unicode"`` by RE2 on the texts themselves (the references the view
        and RE2 spellings are tested against)."""
        if engine == "python" or self.engine == "python":
            return np.fromiter((bool(self._python.search(t)) for t in text.to_pylist()), bool, len(text))
        if self.view_pattern is not None and engine != "unicode":
            text, pattern = (ascii_view(text) if view is None else view), self.view_pattern
        else:
            pattern = self.re2_pattern
        hit = np.array(pc.match_substring_regex(text, pattern, ignore_case=not self.case_sensitive)
                       .to_numpy(zero_copy_only=False), dtype=bool)
        if self.engine == "re2+python":
            rows = np.flatnonzero(rows_with_bytes(text, _unsafe_byte, final_newline=True))
            if len(rows) and self.loose_pattern is not None:  # Python re only where the prefilter matches
                hit[rows] = False
                view = ascii_view(text) if view is None else view
                loose = pc.match_substring_regex(pc.take(view, pa.array(rows)), self.loose_pattern,
                                                 ignore_case=not self.case_sensitive)
                rows = rows[np.asarray(loose.to_numpy(zero_copy_only=False), bool)]
            if len(rows):
                texts = pc.take(text, pa.array(rows)).to_pylist()
                hit[rows] = [bool(self._python.search(t)) for t in texts]
        return hit

    def voted_labels(self) -> tuple:
        return (self.label,)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "label": self.label, "pattern": self.pattern,
                "case_sensitive": self.case_sensitive, "vectorised": self.vectorised, "engine": self.engine}


class KeywordLF(RegexLF):
    """Vote ``label`` when any keyword occurs (as a whole word by default; case-insensitive by default)."""

    kind = "keyword"

    def __init__(self, name: str, label: str | int, keywords: Sequence[str], case_sensitive: bool = False,
                 whole_word: bool = True):
        if isinstance(keywords, str):
            keywords = [keywords]
        if not keywords or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise ConfigError(f"LF {name!r}: keywords must be a non-empty list of non-empty strings")
        self.keywords = list(keywords)
        self.whole_word = _check_bool(name, "whole_word", whole_word)
        super().__init__(name, label, keyword_pattern(keywords, self.whole_word), case_sensitive)

    def _python_pattern(self) -> str:
        return keyword_pattern(self.keywords, self.whole_word, engine="python")

    def _re2(self) -> tuple[str | None, str]:
        return self.pattern, "re2"  # built from literals and explicit Unicode classes: RE2 and Python agree

    def _view_pattern(self) -> str | None:
        if not _patterns.keywords_fit_ascii_view(self.keywords, self.case_sensitive):
            return None
        return _patterns.factored_alternation(_patterns.keyword_alternatives(self.keywords, self.whole_word),
                                              _patterns.ASCII_NON_WORD)

    def describe(self) -> dict:
        return {**super().describe(), "keywords": self.keywords, "whole_word": self.whole_word}


#: LFs matched together in one RE2 pass (their union) before each is matched on the records that pass.
PREFILTER_GROUP = 4
#: Mean UTF-8 bytes per record below which all keyword LFs share one union pass: short texts (reviews, titles)
#: match few keywords each, and there the cost per RE2 call and record, not per byte, dominates.
SHORT_TEXT_BYTES = 1000


class _ViewTable(dict):
    """``str.translate`` table of :func:`ascii_view`, filled in as characters are met (Python's own ``\\w`` and
    ``\\s``: exactly what Python ``re`` sees)."""

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        self[code] = code if code < 0x80 or _patterns.is_word_char(ch) else \
            ord(_patterns.VIEW_SPACE if ch.isspace() else _patterns.VIEW_OTHER)
        return self[code]


_VIEW_TABLE = _ViewTable()


#: Bytes of non-ASCII records up to which :func:`ascii_view` rewrites them with ``str.translate`` (about 30 ns a
#: character, nothing to compile); above, two RE2 replaces (2 ms to compile their Unicode classes, then fast).
VIEW_TRANSLATE_BYTES = 64_000
_VIEW_SPACES = "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x80, 0x3001) if chr(c).isspace()) + "]"
_VIEW_NON_WORD = r"[^\x00-\x7f\pL\pN_]"


def ascii_view(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The texts with every non-ASCII non-word character written as one ASCII non-word character: a space
    (Python's ``str.isspace``) as ``\\x1f``, any other as ``\\x00``; ASCII and word characters stay.

    A whole-word keyword match then needs only the ASCII class :data:`~thresher.label.patterns.ASCII_NON_WORD` at
    its edges, which RE2 compiles in microseconds, where the Unicode ``[^\\pL\\pN_]`` takes half a millisecond
    per call (pyarrow compiles each call's pattern anew). Only records with non-ASCII text are rewritten, in linear
    time either way (:data:`VIEW_TRANSLATE_BYTES`)."""
    return _make_ascii_view(_one_array(text))


def _make_ascii_view(text: pa.Array) -> pa.Array:
    other = rows_with_bytes(text, _non_ascii_byte)
    if not other.any():
        return text
    rows = pc.take(text, pa.array(np.flatnonzero(other)))
    if pc.sum(pc.binary_length(rows)).as_py() <= VIEW_TRANSLATE_BYTES:
        rows = pa.array([t.translate(_VIEW_TABLE) for t in rows.to_pylist()], text.type)
    else:
        rows = pc.replace_substring_regex(rows, _VIEW_SPACES, _patterns.VIEW_SPACE)
        rows = pc.replace_substring_regex(rows, _VIEW_NON_WORD, _patterns.VIEW_OTHER)
    return pc.replace_with_mask(text, pa.array(other), rows)


def match_re2_lfs(lfs: Sequence[RegexLF], text: pa.Array | pa.ChunkedArray,
                  view: pa.Array | None = None) -> list[np.ndarray]:
    """Whether each text matches each LF (all with ``engine == "re2"``), as ``[lf.matches(text) for lf in lfs]``
    but with fewer and cheaper RE2 calls.

    LFs with a :attr:`~RegexLF.view_pattern` share one :func:`ascii_view` of the texts. Keyword LFs go in groups
    of :data:`PREFILTER_GROUP` (all at once for short texts, :data:`SHORT_TEXT_BYTES`) of the same case
    sensitivity and spelling (view or not), whose keywords share one alternation that costs about one LF's pass;
    each LF of a group then runs only on the records the group matched. Regex LFs run alone: a union of arbitrary
    patterns can outgrow RE2's DFA and fall back to its slower NFA."""
    if view is None and any(f.view_pattern is not None for f in lfs):
        view = ascii_view(text)
    out: dict[int, np.ndarray] = {}
    for i, f in enumerate(lfs):
        if not isinstance(f, KeywordLF):
            out[i] = f.matches(text, view=view)
    keyword = [i for i, f in enumerate(lfs) if isinstance(f, KeywordLF)]
    short = len(text) and pc.sum(pc.binary_length(text)).as_py() < SHORT_TEXT_BYTES * len(text)
    size = max(len(keyword), 1) if short else PREFILTER_GROUP
    for on_view in (True, False):
        for case_sensitive in (False, True):
            same = [i for i in keyword if lfs[i].case_sensitive == case_sensitive
                    and (lfs[i].view_pattern is not None) == on_view]
            for start in range(0, len(same), size):
                group = same[start:start + size]
                out.update(zip(group, _match_keyword_group([lfs[i] for i in group], view if on_view else text,
                                                           on_view)))
    return [out[i] for i in range(len(lfs))]


def _match_keyword_group(group: Sequence[KeywordLF], text: pa.Array | pa.ChunkedArray,
                         on_view: bool) -> list[np.ndarray]:
    """Each keyword LF's matches (``text``: the view, ``on_view``): their union first, then each LF on the
    records the union matched."""
    def match(pattern: str, text) -> np.ndarray:
        return np.asarray(pc.match_substring_regex(text, pattern, ignore_case=not group[0].case_sensitive)
                          .to_numpy(zero_copy_only=False), bool)

    def pattern(f: KeywordLF) -> str:
        return f.view_pattern if on_view else f.re2_pattern

    if len(group) == 1:
        return [match(pattern(group[0]), text)]
    union = _patterns.factored_alternation([a for f in group for a in _patterns.keyword_alternatives(
        f.keywords, f.whole_word)], _patterns.ASCII_NON_WORD if on_view else _patterns.NON_WORD)
    rows = np.flatnonzero(match(union, text))
    subset = text if len(rows) == len(text) else pc.take(text, pa.array(rows))
    out = []
    for f in group:
        hit = np.zeros(len(text), bool)
        if len(rows):
            hit[rows] = match(pattern(f), subset)
        out.append(hit)
    return out


def _check_bool(lf_name: str, key: str, value: object) -> bool:
    """``true``/``false`` only: a string such as ``"false"`` is an error, not ``bool("false") == True``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ConfigError(f"LF {lf_name!r}: {key} must be true or false, got {value!r} ({type(value).__name__})")


def _re2_accepts(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""], pa.large_string()), pattern)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def label_index(label: str | int, classes: Sequence[str], lf_name: str) -> int:
    if isinstance(label, str):
        if label not in classes:
            raise ConfigError(f"LF {lf_name!r} votes {label!r}, which is not a class ({', '.join(classes)})")
        return list(classes).index(label)
    if not 0 <= int(label) < len(classes):
        raise ConfigError(f"LF {lf_name!r} votes class {label}, outside 0..{len(classes) - 1}")
    return int(label)


# ------------------------------------------------------------------------------------------------ score columns


_OPS: dict[str, Callable] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
                             "==": operator.eq, "!=": operator.ne}


class ScoreLF(LabelingFunction):
    """Vote ``label`` where ``column op threshold`` holds, ``else_label`` (default: abstain) where it does not;
    records without a value abstain. The column is a pool field or a side-car score (``scores_from``)."""

    kind = "score"

    def __init__(self, name: str, column: str, threshold: float, label: str | int, op: str = ">=",
                 else_label: str | int | None = None):
        if op not in _OPS:
            raise ConfigError(f"LF {name!r}: op must be one of {', '.join(_OPS)}, got {op!r}")
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ConfigError(f"LF {name!r}: threshold must be a number, got {threshold!r}") from None
        self.name, self.column, self.threshold, self.label, self.op, self.else_label = (
            name, column, threshold, label, op, else_label)
        self.columns = (column,)

    def __repr__(self) -> str:
        return f"ScoreLF({self.name!r}: {self.column} {self.op} {self.threshold} -> {self.label!r})"

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise") -> Votes:
        label = label_index(self.label, classes, self.name)
        other = ABSTAIN if self.else_label is None else label_index(self.else_label, classes, self.name)
        values = _as_numbers(batch[self.column], self.name, self.column)
        with np.errstate(invalid="ignore"):
            hit = _OPS[self.op](values, self.threshold)
        votes = np.where(hit, label, other)
        votes[np.isnan(values)] = ABSTAIN
        return Votes(votes.astype(np.int32))

    def voted_labels(self) -> tuple:
        return (self.label,) if self.else_label is None else (self.label, self.else_label)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "column": self.column, "op": self.op,
                "threshold": self.threshold, "label": self.label, "else_label": self.else_label}


def vote_top(scores: np.ndarray, labels: np.ndarray, margin: float, floor: float = -np.inf) -> np.ndarray:
    """Per row, the label of the highest-scoring column where it beats the runner-up by ``margin`` and reaches
    ``floor`` (with one column, the runner-up is the floor), else ABSTAIN: how every scored LF turns scores into
    votes."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rows = np.arange(len(scores))
    top = scores[rows, order[:, 0]]
    second = scores[rows, order[:, 1]] if scores.shape[1] > 1 else np.full(len(scores), floor)
    ok = (top - second >= margin) & (top >= floor)
    return np.where(ok, labels[order[:, 0]], ABSTAIN).astype(np.int32)


class PrototypeLF(LabelingFunction):
    """Vote the class whose prototype texts a record is most like, in sentence-embedding space.

    ``prototypes`` maps classes to example texts: a few labelled records each (a nearest-centroid LF) or a
    description of the class (a zero-shot LF). A record is embedded (``backend``: ``static`` or ``minilm``), compared
    by cosine with each class's mean prototype, and votes the nearest class when it beats the runner-up by
    ``margin`` and reaches ``min_similarity``; otherwise it abstains. With prototypes for one class only, the margin
    is over ``min_similarity``.
    """

    kind = "prototypes"
    time_limited = False

    def __init__(self, name: str, prototypes: dict, backend: str = "static", margin: float = 0.05,
                 min_similarity: float = 0.0):
        if not isinstance(prototypes, dict) or not prototypes:
            raise ConfigError(f"LF {name!r}: prototypes must map classes to lists of texts")
        clean = {}
        for label, texts in prototypes.items():
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise ConfigError(f"LF {name!r}: the prototypes of {label!r} must be a non-empty list of texts")
            clean[str(label)] = list(texts)
        try:
            margin, min_similarity = float(margin), float(min_similarity)
        except (TypeError, ValueError):
            raise ConfigError(f"LF {name!r}: margin and min_similarity must be numbers") from None
        if not (0 <= margin <= 2 and -1 <= min_similarity <= 1):
            raise ConfigError(f"LF {name!r}: margin must be in [0, 2] and min_similarity in [-1, 1]")
        self.name, self.prototypes, self.backend = name, clean, str(backend)
        self.margin, self.min_similarity = margin, min_similarity
        self._centroids: np.ndarray | None = None  # per process, built on first use

    def __repr__(self) -> str:
        return f"PrototypeLF({self.name!r}: {', '.join(self.prototypes)})"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_centroids": None}  # workers embed the prototypes themselves

    def similarities(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each text with each class's mean prototype (columns in ``prototypes`` order)."""
        from thresher.embeddings import make_backend

        return self.similarities_to(np.asarray(make_backend(self.backend).encode(list(texts)), dtype=np.float64))

    def similarities_to(self, embeddings: np.ndarray) -> np.ndarray:
        """:meth:`similarities` for texts already embedded with this LF's back-end (unit rows)."""
        if self._centroids is None:
            from thresher.embeddings import make_backend

            backend = make_backend(self.backend)
            means = np.stack([backend.encode(list(t)).mean(axis=0) for t in self.prototypes.values()])
            self._centroids = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return embeddings @ self._centroids.T

    def class_indices(self, classes: Sequence[str]) -> np.ndarray:
        """The class index of each column of :meth:`similarities`."""
        return np.array([label_index(c, classes, self.name) for c in self.prototypes], dtype=np.int32)

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise") -> Votes:
        texts = [t or "" for t in batch["text"].to_pylist()]
        if not texts:
            return Votes(np.zeros(0, np.int32))
        return Votes(self.decide(self.similarities(texts), self.class_indices(classes)))

    def decide(self, sims: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Votes from similarities: the nearest class where it clears the margin and the floor, else abstain."""
        return vote_top(sims, labels, self.margin, self.min_similarity)

    def voted_labels(self) -> tuple:
        return tuple(self.prototypes)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "backend": self.backend, "margin": self.margin,
                "min_similarity": self.min_similarity,
                "prototypes": {c: len(t) for c, t in self.prototypes.items()}}


def _as_numbers(column: pa.ChunkedArray | pa.Array, lf_name: str, name: str) -> np.ndarray:
    """A column as float64 with NaN for nulls; numbers, booleans and numeric strings ("0.5", "true") work."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        lowered = pc.utf8_lower(column)
        as_bool = pc.if_else(pc.equal(lowered, "true"), "1", pc.if_else(pc.equal(lowered, "false"), "0", column))
        try:
            column = pc.cast(as_bool, pa.float64())
        except pa.ArrowInvalid:
            bad = next(v for v in column.to_pylist() if v is not None and not _is_number(v))
            raise ConfigError(f"LF {lf_name!r}: column {name!r} holds {bad!r}, not a number") from None
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
              or pa.types.is_boolean(column.type)):
        raise ConfigError(f"LF {lf_name!r}: column {name!r} has type {column.type}, not a number")
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return value.lower() in ("true", "false")
