"""Regular expressions for keyword and regex LFs, spelled for RE2 (linear time) with Python ``re``'s meaning.

Python's ``\\w \\d \\s \\b $`` are Unicode-aware (``$`` also matches before a final newline); RE2's are ASCII. So a
user's pattern is parsed with Python's own parser and written back for RE2 with explicit Unicode classes, and each
``\\b`` is resolved from what the pattern puts on either side of it (a word boundary after a letter and before a
space is always true; one at the very start of the match becomes "start of text or a non-word character",
consumed, which is the same for a yes/no search). Patterns that cannot be written this way (look-arounds,
back-references, a ``\\b`` between things that may or may not be word characters) are reported as untranslatable,
and the caller decides what to do with them.

Keyword sets compile to one alternation per LF whose word-boundary classes appear once per kind of edge, not once
per keyword: RE2 runs a few boundary classes as a fast DFA, and falls back to a far slower simulation when a
pattern repeats the large Unicode classes once per keyword.

Compiling a Unicode class such as ``[^\\pL\\pN_]`` takes RE2 about half a millisecond, and pyarrow compiles each
call's pattern anew, which dominates on short texts. So patterns are also spelled for an *ASCII view* of the texts
(``thresher.label.lfs.ascii_view``: every non-ASCII non-word character written as ``\\x1f`` if a space, else
``\\x00``), where a word boundary needs only small ASCII classes; patterns holding a character the view could
confuse keep the Unicode spelling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from re import _constants as _C
from re import _parser as _sre_parse

#: Word characters as Python's Unicode ``\w`` (letters and digits of any script, and ``_``), inside a class.
WORD_IN = r"\pL\pN_"
#: "Not a word character" (Python's Unicode ``\W``); agrees with Python on every assigned character.
NON_WORD = r"[^\pL\pN_]"
#: Every character Python's ``str.isspace`` accepts (Python ``\s``), as ``\x{..}`` escapes, inside a class.
SPACE_IN = "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace())
#: The same characters as literals, which RE2 and Python read alike (keyword patterns serve both engines).
SPACE_LITERAL_IN = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
#: The ASCII characters that are not word characters, as a class: in an ASCII view of a text
#: (``thresher.label.lfs.ascii_view``) every non-word character is one of these, so this cheap class stands for
#: :data:`NON_WORD` there.
ASCII_NON_WORD = r"[\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
#: What the ASCII view writes for a non-ASCII space and for any other non-ASCII non-word character: ASCII
#: non-word characters that a space class (respectively nothing but themselves) matches.
VIEW_SPACE, VIEW_OTHER = "\x1f", "\x00"
#: A class no character belongs to.
NEVER = r"[^\x00-\x{10ffff}]"

_RE2_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


class Untranslatable(Exception):
    """The pattern has no RE2 spelling with Python's meaning (the message says which construct)."""


def is_word_char(c: str) -> bool:
    """Python's ``\\w`` for one character."""
    return c.isalnum() or c == "_"


# ------------------------------------------------------------------------------------------------ keywords


def keyword_alternatives(keywords: Sequence[str], whole_word: bool) -> list[tuple[str, bool, bool]]:
    """Each keyword as (RE2/Python-neutral literal body, needs a boundary before, needs a boundary after).

    Runs of spaces inside a keyword match any run of whitespace. A keyword edge that is a word character needs a
    non-word character (or the text's edge) next to it when ``whole_word``; punctuation at an edge needs nothing,
    so ``C++``, ``C#``, ``.NET`` and ``U.S.`` match.
    """
    out = []
    space = f"[{SPACE_LITERAL_IN}]+"
    for k in keywords:
        words = k.split()
        if not words:
            continue
        body = space.join(_RE2_SPECIAL.sub(r"\\\1", w) for w in words)
        out.append((body, whole_word and is_word_char(words[0][0]), whole_word and is_word_char(words[-1][-1])))
    return out


def keyword_pattern_re2(keywords: Sequence[str], whole_word: bool = True) -> str:
    """One RE2 alternation matching any keyword, with the boundary classes factored out per kind of edge."""
    return factored_alternation(keyword_alternatives(keywords, whole_word))


def factored_alternation(alternatives: Sequence[tuple[str, bool, bool]], non_word: str = NON_WORD) -> str:
    """RE2 alternation of (body, boundary before, boundary after) with one boundary class per kind of edge
    (``non_word``: the class of non-word characters; :data:`ASCII_NON_WORD` on an ASCII view)."""
    groups: dict[tuple[bool, bool], list[str]] = {}
    for body, before, after in alternatives:
        groups.setdefault((before, after), []).append(body)
    parts = []
    for (before, after), bodies in groups.items():
        part = "(?:" + "|".join(bodies) + ")"
        parts.append(("(?:^|" + non_word + ")" if before else "") + part + ("(?:$|" + non_word + ")" if after else ""))
    return "|".join(f"(?:{p})" for p in parts)


def keywords_fit_ascii_view(keywords: Sequence[str], case_sensitive: bool) -> bool:
    """Whether these keywords match an ASCII view of a text exactly where they match the text itself: each
    character (and, ignoring case, each of its case variants) is ASCII or a word character, and none is one of
    the characters the view writes."""
    for k in keywords:
        for ch in k:
            variants = {ch} if case_sensitive else _case_variants(ord(ch))
            if ch in (VIEW_SPACE, VIEW_OTHER) or not all(v.isascii() or is_word_char(v) for v in variants):
                return False
    return True


def keyword_pattern_python(keywords: Sequence[str], whole_word: bool = True) -> str:
    """The same keywords for Python ``re``, one alternative per keyword (the reference the RE2 form is tested on)."""
    parts = []
    for body, before, after in keyword_alternatives(keywords, whole_word):
        parts.append(("(?:^|\\W)" if before else "") + body + ("(?:$|\\W)" if after else ""))
    return "|".join(f"(?:{p})" for p in parts)


# ------------------------------------------------------------------------------------------------ Python -> RE2


_WORD, _NONWORD, _OUT, _ASSERT = "w", "n", "outside", "assertion"
_BOTH = frozenset({_WORD, _NONWORD})


#: Word characters of an ASCII view, inside a class: there every non-ASCII character is one.
VIEW_WORD_IN = r"a-zA-Z0-9_\x{80}-\x{10ffff}"
#: Python's ``\s`` on a view (its non-ASCII spaces are ``\x1f``), inside a class.
VIEW_SPACE_IN = r"\t\n\x0b\x0c\r\x1c-\x1f "


def to_re2(pattern: str, view: bool = False, loose: bool = False) -> str:
    r"""``pattern`` (Python syntax) spelled for RE2 so that it matches the same texts; raises :class:`Untranslatable`.

    Case-insensitivity is left to the caller (RE2's ``ignore_case``), except inline ``(?i)`` flags, which are kept.
    ``view``: spelled instead for the ASCII view of the texts, with small ASCII classes
    for ``\b \w \W \s \S`` that RE2 compiles in microseconds (the Unicode ones take a millisecond per call);
    untranslatable if the pattern holds a character the view rewrites or could confuse (a non-word non-ASCII
    character, or ``\x00``/``\x1f``, or a character whose case variants include one). ``loose`` (spelled for the
    view): assertions with no exact spelling (a ``\b`` that depends on the text, ``\B``, ``$`` with more pattern
    after it) are left out, so the pattern matches wherever the exact one would and maybe more: a prefilter.
    """
    try:
        parsed = _sre_parse.parse(pattern, 0)
    except re.error as e:
        raise Untranslatable(f"invalid pattern: {e}") from None
    flags = parsed.state.flags
    body = _emit_seq(list(parsed), flags, frozenset({_OUT}), frozenset({_OUT}), "loose" if loose else view)
    return ("(?i)" if flags & re.IGNORECASE else "") + body


def _view_char(c: int, view: bool) -> None:
    """On a view, a pattern character (and its case variants) must be ASCII but ``\x00``/``\x1f``, or a word
    character: those are the characters the view leaves as they are and writes nowhere."""
    if view and not all((v.isascii() and v not in (VIEW_SPACE, VIEW_OTHER)) or (not v.isascii() and is_word_char(v))
                        for v in _case_variants(c)):
        raise Untranslatable(f"the character {chr(c)!r} on an ASCII view")


def _char(c: int) -> str:
    ch = chr(c)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{c:x}}}"


def _case_variants(c: int) -> set[str]:
    ch = chr(c)
    out = {ch}
    for v in (ch.lower(), ch.upper()):
        if len(v) == 1:
            out.add(v)
    out.update(chr(x) for x in re._casefix._EXTRA_CASES.get(ord(ch.lower()) if len(ch.lower()) == 1 else c, ()))
    return out


def _kinds_of_chars(chars) -> frozenset:
    return frozenset(_WORD if is_word_char(ch) else _NONWORD for c in chars for ch in _case_variants(c))


def _kinds_of_class(items) -> frozenset:
    kinds: set = set()
    for op, av in items:
        if op is _C.NEGATE:
            return _BOTH
        if op is _C.LITERAL:
            kinds |= _kinds_of_chars([av])
        elif op is _C.RANGE:
            if av[1] - av[0] > 5000:
                return _BOTH
            kinds |= _kinds_of_chars(range(av[0], av[1] + 1))
        elif op is _C.CATEGORY:
            kinds |= {_C.CATEGORY_WORD: {_WORD}, _C.CATEGORY_DIGIT: {_WORD}, _C.CATEGORY_NOT_WORD: {_NONWORD},
                      _C.CATEGORY_SPACE: {_NONWORD}}.get(av, _BOTH)
        else:
            return _BOTH
    return frozenset(kinds)


def _edge(item, first: bool) -> tuple[frozenset, bool]:
    """The kinds of character an item can start (``first``) or end with, and whether it can match nothing."""
    op, av = item
    if op in (_C.LITERAL,):
        return _kinds_of_chars([av]), False
    if op in (_C.NOT_LITERAL, _C.ANY):
        return _BOTH, False
    if op is _C.IN:
        return _kinds_of_class(av), False
    if op is _C.SUBPATTERN:
        return _seq_edge(list(av[3]), first)
    if op is _C.BRANCH:
        edges = [_seq_edge(list(b), first) for b in av[1]]
        return frozenset().union(*(k for k, _ in edges)), any(n for _, n in edges)
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        kinds, nullable = _seq_edge(list(av[2]), first)
        return kinds, nullable or av[0] == 0
    if op is _C.AT:
        return frozenset({_ASSERT}), True
    raise Untranslatable(_describe(op))


def _seq_edge(items: list, first: bool) -> tuple[frozenset, bool]:
    kinds: set = set()
    for item in (items if first else reversed(items)):
        k, nullable = _edge(item, first)
        kinds |= k
        if not nullable:
            return frozenset(kinds), False
    return frozenset(kinds), True


def _context(items: list, outer: frozenset, first: bool) -> frozenset:
    """What lies next to a position: the edge kinds of ``items`` and, if they can all match nothing, ``outer``."""
    kinds, nullable = _seq_edge(items, first)
    return kinds | outer if nullable else kinds


def _emit_seq(items: list, flags: int, left: frozenset, right: frozenset, view: bool) -> str:
    return "".join(_emit(item, flags, _context(items[:i], left, False), _context(items[i + 1:], right, True), view)
                   for i, item in enumerate(items))


def _emit(item, flags: int, left: frozenset, right: frozenset, view: bool) -> str:
    op, av = item
    ascii_only = bool(flags & re.ASCII)
    if op in (_C.LITERAL, _C.NOT_LITERAL):
        _view_char(av, view)
        return _char(av) if op is _C.LITERAL else f"[^{_char(av)}]"
    if op is _C.ANY:
        return r"(?s:.)" if flags & re.DOTALL else r"[^\n]"
    if op is _C.IN:
        return _emit_class(av, ascii_only, view)
    if op is _C.SUBPATTERN:
        _group, add, remove, sub = av
        inner_flags = (flags | add) & ~remove
        inner = _emit_seq(list(sub), inner_flags, left, right, view)
        if add & re.IGNORECASE:
            return f"(?i:{inner})"
        if remove & re.IGNORECASE:
            return f"(?-i:{inner})"
        return f"(?:{inner})"
    if op is _C.BRANCH:
        return "(?:" + "|".join(_emit_seq(list(b), flags, left, right, view) for b in av[1]) + ")"
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        lo, hi, sub = av
        sub = list(sub)
        if lo > 1000 or (hi != _C.MAXREPEAT and hi > 1000):
            raise Untranslatable("a repeat count above 1000")
        if hi != 1:  # the item may follow itself
            left = left | _seq_edge(sub, False)[0]
            right = right | _seq_edge(sub, True)[0]
        inner = _emit_seq(sub, flags, left, right, view)
        if hi == _C.MAXREPEAT:
            count = {0: "*", 1: "+"}.get(lo, f"{{{lo},}}")
        else:
            count = "?" if (lo, hi) == (0, 1) else f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
        return f"(?:{inner}){count}" + ("?" if op is _C.MIN_REPEAT else "")
    if op is _C.AT:
        return _emit_at(av, flags, left, right, view)
    raise Untranslatable(_describe(op))


def _emit_at(at, flags: int, left: frozenset, right: frozenset, view: bool | str) -> str:
    try:
        return _emit_exact_at(at, flags, left, right, view)
    except Untranslatable:
        if view == "loose":  # leaving an assertion out only widens what matches
            return ""
        raise


def _emit_exact_at(at, flags: int, left: frozenset, right: frozenset, view: bool | str) -> str:
    if at is _C.AT_BEGINNING:
        return r"(?m:^)" if flags & re.MULTILINE else r"\A"
    if at is _C.AT_BEGINNING_STRING:
        return r"\A"
    if at is _C.AT_END_STRING:
        return r"\z"
    if at is _C.AT_END:
        if flags & re.MULTILINE:
            return r"(?m:$)"
        if right == {_OUT}:  # Python's $ also matches before a final newline: consume it
            return r"(?:\n?\z)"
        raise Untranslatable("'$' followed by more pattern")
    if at in (_C.AT_BOUNDARY, _C.AT_NON_BOUNDARY) and flags & re.ASCII:
        return r"\b" if at is _C.AT_BOUNDARY else r"\B"
    if at is _C.AT_BOUNDARY:
        return _boundary(left, right, view)
    raise Untranslatable(r"\B")


def _boundary(left: frozenset, right: frozenset, view: bool) -> str:
    r"""``\b`` given the kinds of character on either side (``outside`` = the text beyond the match)."""
    sides = (left, right)
    if any(len(s) != 1 or _ASSERT in s for s in sides) or left == right == {_OUT}:
        raise Untranslatable(r"a '\b' next to something that may or may not be a word character")
    non_word, word_in = (ASCII_NON_WORD, VIEW_WORD_IN) if view else (NON_WORD, WORD_IN)
    if left == {_OUT}:  # the match starts here: look at (and consume) the character before
        return f"(?:\\A|{non_word})" if right == {_WORD} else f"[{word_in}]"
    if right == {_OUT}:
        return f"(?:\\z|{non_word})" if left == {_WORD} else f"[{word_in}]"
    return "" if left != right else NEVER


_CATEGORY_UNICODE = {_C.CATEGORY_WORD: WORD_IN, _C.CATEGORY_DIGIT: r"\p{Nd}", _C.CATEGORY_NOT_DIGIT: r"\P{Nd}",
                     _C.CATEGORY_SPACE: SPACE_IN}
_CATEGORY_UNICODE_NEGATED = {_C.CATEGORY_NOT_WORD: NON_WORD, _C.CATEGORY_NOT_SPACE: f"[^{SPACE_IN}]"}
_CATEGORY_ASCII = {_C.CATEGORY_WORD: "a-zA-Z0-9_", _C.CATEGORY_DIGIT: "0-9", _C.CATEGORY_SPACE: r" \t\n\r\f\v"}
_CATEGORY_ASCII_NEGATED = {_C.CATEGORY_NOT_WORD: "[^a-zA-Z0-9_]", _C.CATEGORY_NOT_DIGIT: "[^0-9]",
                           _C.CATEGORY_NOT_SPACE: r"[^ \t\n\r\f\v]"}


_CATEGORY_VIEW = {**_CATEGORY_UNICODE, _C.CATEGORY_WORD: VIEW_WORD_IN, _C.CATEGORY_SPACE: VIEW_SPACE_IN}
_CATEGORY_VIEW_NEGATED = {_C.CATEGORY_NOT_WORD: ASCII_NON_WORD, _C.CATEGORY_NOT_SPACE: f"[^{VIEW_SPACE_IN}]"}


def _emit_class(items, ascii_only: bool, view: bool) -> str:
    positive, negated = (_CATEGORY_ASCII, _CATEGORY_ASCII_NEGATED) if ascii_only else \
        (_CATEGORY_VIEW, _CATEGORY_VIEW_NEGATED) if view else (_CATEGORY_UNICODE, _CATEGORY_UNICODE_NEGATED)
    negate, parts, alternatives = False, [], []
    for op, av in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            _view_char(av, view)
            parts.append(_char(av))
        elif op is _C.RANGE:
            if view and (av[1] - av[0] > 5000 and av[1] >= 0x80):
                raise Untranslatable("a wide range on an ASCII view")
            for c in range(av[0], av[1] + 1) if view else ():
                _view_char(c, view)
            parts.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is _C.CATEGORY and av in positive:
            parts.append(positive[av])
        elif op is _C.CATEGORY and av in negated:
            alternatives.append(negated[av])
        else:
            raise Untranslatable(_describe(op))
    if not alternatives:
        return f"[{'^' if negate else ''}{''.join(parts)}]"
    if negate:
        raise Untranslatable("a negated class containing a negated category such as [^\\W\\d]")
    return "(?:" + "|".join(([f"[{''.join(parts)}]"] if parts else []) + alternatives) + ")"


def _describe(op) -> str:
    names = {_C.ASSERT: "a look-ahead/look-behind", _C.ASSERT_NOT: "a negative look-ahead/look-behind",
             _C.GROUPREF: "a back-reference", _C.GROUPREF_EXISTS: "a conditional group",
             _C.ATOMIC_GROUP: "an atomic group", _C.POSSESSIVE_REPEAT: "a possessive repeat"}
    return names.get(op, str(op))
