"""Term lists and the one term matcher used by data preparation, term accuracy and the app.

Matching rules (the same everywhere, so a highlighted term in the app is exactly a term the
metric counts):

- Chinese has no spaces: leftmost-longest match over characters, character-exact
  (急性心肌梗死 wins over 心肌梗死; a different character is a different term).
- English: whole words only (``ache`` is not found in ``headache``), case- and width-insensitive
  (``ＣＯＶＩＤ-19`` matches ``covid-19``), whitespace runs count as one space.

All spans are offsets into the caller's original string.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medcore.pairs import read_pairs
from medcore.textnorm import match_key, normalize_en, normalize_zh

_WORD = re.compile(r"[^\W_]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Term:
    """One glossary entry; ``origin`` says which file it came from."""

    zh: str
    en: str
    origin: str = ""

    def side(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


@dataclass
class TermHit:
    """A term found in a text: where, which surface form, and every accepted translation."""

    span: Span
    lang: str
    terms: list[Term] = field(default_factory=list)

    def expected(self, target_lang: str) -> list[str]:
        seen: dict[str, None] = {}
        for term in self.terms:
            seen.setdefault(term.side(target_lang), None)
        return list(seen)


@dataclass
class TermCheck:
    """A source term and whether one of its expected translations appears in the output."""

    hit: TermHit
    expected: list[str]
    found: Span | None

    @property
    def ok(self) -> bool:
        return self.found is not None

    def to_dict(self) -> dict:
        return {
            "term": self.hit.span.text,
            "start": self.hit.span.start,
            "end": self.hit.span.end,
            "expected": self.expected,
            "found": None if self.found is None else self.found.text,
            "found_start": None if self.found is None else self.found.start,
            "status": "ok" if self.ok else "missing",
        }


def _en_key(text: str) -> str:
    return _SPACES.sub(" ", match_key(text, "en")).strip()


def find_phrase(text: str, phrase: str, lang: str) -> Span | None:
    """First occurrence of ``phrase`` in ``text`` under the matching rules above, or None."""
    if not phrase:
        return None
    if lang == "zh":
        pos = text.find(phrase)
        return None if pos < 0 else Span(pos, pos + len(phrase), phrase)
    words = [w.group() for w in _WORD.finditer(match_key(phrase, "en"))]
    if not words:
        return None
    pattern = r"(?<![^\W_])" + re.escape(_en_key(phrase)).replace(r"\ ", r"\s+") + r"(?![^\W_])"
    m = re.search(pattern, match_key(text, "en"))
    return None if m is None else Span(m.start(), m.end(), text[m.start() : m.end()])


class Glossary:
    """A set of zh/en terms with a matcher for each language."""

    def __init__(self, terms: Iterable[Term], min_zh_chars: int = 2):
        self.terms: list[Term] = []
        self._zh: dict[str, list[Term]] = defaultdict(list)
        self._zh_lengths: list[int] = []
        self._en: dict[str, dict[tuple[str, ...], list[Term]]] = defaultdict(dict)
        seen: set[tuple[str, str]] = set()
        for term in terms:
            if not term.zh or not term.en or (term.zh, term.en) in seen:
                continue
            seen.add((term.zh, term.en))
            self.terms.append(term)
            if len(term.zh) >= min_zh_chars:
                self._zh[term.zh].append(term)
            words = tuple(w.group() for w in _WORD.finditer(match_key(term.en, "en")))
            if words:
                self._en[words[0]].setdefault(words, []).append(term)
        self._zh_lengths = sorted({len(k) for k in self._zh}, reverse=True)
        # Longest candidates first, so the first match at a position is the longest one.
        self._en_candidates = {
            first: sorted(group.items(), key=lambda kv: -len(kv[0])) for first, group in self._en.items()
        }

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def load(cls, paths: str | Path | Sequence[str | Path], min_zh_chars: int = 2) -> Glossary:
        """Read term files (any format :func:`medcore.pairs.read_pairs` reads)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        terms = []
        for path in paths:
            for pair in read_pairs(path):
                zh, en = normalize_zh(pair.zh), normalize_en(pair.en)
                if zh and en:
                    terms.append(Term(zh, en, Path(path).name))
        return cls(terms, min_zh_chars=min_zh_chars)

    def find(self, text: str, lang: str) -> list[TermHit]:
        """Non-overlapping leftmost-longest term occurrences in ``text`` (a ``lang`` text)."""
        return self._find_zh(text) if lang == "zh" else self._find_en(text)

    def _find_zh(self, text: str) -> list[TermHit]:
        hits, i, n = [], 0, len(text)
        while i < n:
            for length in self._zh_lengths:
                if length <= n - i and (terms := self._zh.get(text[i : i + length])):
                    hits.append(TermHit(Span(i, i + length, text[i : i + length]), "zh", list(terms)))
                    i += length
                    break
            else:
                i += 1
        return hits

    def _find_en(self, text: str) -> list[TermHit]:
        key = match_key(text, "en")
        words = list(_WORD.finditer(key))
        hits, i = [], 0
        while i < len(words):
            matched = False
            for cand_words, terms in self._en_candidates.get(words[i].group(), ()):
                k = len(cand_words)
                window = words[i : i + k]
                if len(window) < k or tuple(w.group() for w in window) != cand_words:
                    continue
                start, end = window[0].start(), window[-1].end()
                # The characters between the words must be the term's own (a hyphen is not a comma).
                if _SPACES.sub(" ", key[start:end]) != _en_key(terms[0].en):
                    continue
                hits.append(TermHit(Span(start, end, text[start:end]), "en", list(terms)))
                i += k
                matched = True
                break
            if not matched:
                i += 1
        return hits

    def check(self, source: str, translation: str, src_lang: str, tgt_lang: str) -> list[TermCheck]:
        """For every term in ``source``: is one of its expected translations in ``translation``?"""
        checks = []
        for hit in self.find(source, src_lang):
            expected = hit.expected(tgt_lang)
            found = next((s for e in expected if (s := find_phrase(translation, e, tgt_lang))), None)
            checks.append(TermCheck(hit, expected, found))
        return checks
