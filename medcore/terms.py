"""Term lists and the one term matcher used by data preparation, term accuracy, the app and the checker.

Matching rules (the same everywhere, so a highlighted term in the app is exactly a term the
metric counts):

- Chinese has no spaces: leftmost-longest match over characters, character-exact
  (急性心肌梗死 wins over 心肌梗死; a different character is a different term).
- English: whole words only (``ache`` is not found in ``headache``), case- and width-insensitive
  (``ＣＯＶＩＤ-19`` matches ``covid-19``), whitespace runs count as one space, and a hyphen
  counts as a space (``non-small cell`` = ``non small cell``). Each word is compared by its
  :func:`word_key`, which tolerates inflection and British/American spelling: ``symptom`` is found
  in "symptoms", ``diagnose`` in "diagnosed", ``oesophagus`` in "esophagus", ``tumour`` in
  "tumors", ``Type II`` in "type 2". Punctuation other than a hyphen must be the term's own
  ("myocardial, infarction" is not "myocardial infarction").
- Alternatives: one glossary field may hold several translations (``A | B``, ``A; B``) and an
  abbreviation in brackets (``acquired immunodeficiency syndrome (AIDS)``): each is accepted.

Priority: every :class:`Term` carries its source's ``priority``; expected translations are listed
best first (the user's own glossary, then curated medical lists, then a general dictionary). A
*general-dictionary* entry (``general=True``, CC-CEDICT) whose Chinese has two characters and whose
gloss has no medical word-form (``-itis``, ``-oma``, ``cardi-`` …) is *advisory*: shown, never
flagged "to review" (服用 → "take", 治疗 → "medical treatment"), unless the glossary is built with
``general_terms=True``. A term with no source information (a plain TSV) is always required.
An entry of the shipped glossary whose rendering human translators rarely use (its reference audit,
:mod:`medcore.glossary_audit`) is advisory when translating from the audited language. An advisory
term is still flagged when the translation leaves it untranslated (:func:`left_untranslated`).

All spans are offsets into the caller's original string.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from medcore.pairs import read_pairs
from medcore.textnorm import fullwidth_to_halfwidth, match_key, normalize_en, normalize_zh

# A word: a run of letters/digits of one script (Chinese characters next to an English word, as in a
# half-translated "syndrome冠状", are a word of their own, so "syndrome" is still whole).
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK_CHARS}]+|[^\W_{_CJK_CHARS}]+")
_SPACES = re.compile(r"\s+")
# Separators that count as one space between English words: whitespace and hyphens/dashes.
_SOFT_SEP = re.compile(r"^[\s\-\u2010\u2011\u2012\u2013]+$")

# -- English word keys --------------------------------------------------------------------------
# British -> American spelling, applied to the whole (lower-case) word before inflection is removed.
_SPELLING = [
    (re.compile(r"ae"), "e"),                                   # haemorrhage, anaemia, paediatric
    (re.compile(r"oe(?!s?$)"), "e"),                            # oesophagus, diarrhoea (not toe/does)
    (re.compile(r"(?<=[a-z]{2})our(?=s?$|ed$|ing$|ite|able)"), "or"),  # tumour, colour (not four/hour)
    (re.compile(r"(?<=[a-z]{2})is(e|ed|es|ing|ation|ations|er|ers)$"), r"iz\1"),  # organise(d), hospitalisation
    (re.compile(r"(?<=[a-z])ys(e|ed|es|ing)$"), r"yz\1"),       # analyse -> analyze
    (re.compile(r"(?<=[^aeiou])tre(s?)$"), r"ter\1"),            # centre, litre, fibre
    (re.compile(r"ogue(s?)$"), r"og\1"),                        # catalogue, analogue
    (re.compile(r"^sulph"), "sulf"),                            # sulphate
]
_IRREGULAR = {"women": "woman", "men": "man", "children": "child", "feet": "foot", "teeth": "tooth",
              "mice": "mouse", "lice": "louse", "geese": "goose", "oxen": "ox", "people": "person",
              "bacteria": "bacterium", "data": "datum", "criteria": "criterion", "ova": "ovum",
              "vertebrae": "vertebra", "fungi": "fungus", "nuclei": "nucleus", "bronchi": "bronchus",
              "stimuli": "stimulus", "emboli": "embolus", "thrombi": "thrombus", "foci": "focus",
              "appendices": "appendix", "indices": "index", "matrices": "matrix", "ganglia": "ganglion"}
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8", "ix": "9", "x": "10"}
_VOWEL = re.compile(r"[aeiouy]")


def word_key(word: str) -> str:
    """The comparison key of one lower-case English word: spelling unified, inflection removed.

    Deliberately light (no dictionary): plural -s/-es/-ies, -ed, -ing, final -e, Latin -is/-es
    (diagnosis/diagnoses), a doubled final consonant (stopped, labelled), British spellings, Roman
    numerals as digits. Both the glossary and the text go through it, so two forms meet when their
    keys do; it over-merges a little (diagnose/diagnosis) but never across a word boundary.
    """
    w = _IRREGULAR.get(word, word)
    if w in _ROMAN:
        return _ROMAN[w]
    if w.isdigit() or len(w) <= 3:
        return w
    for pattern, repl in _SPELLING:
        w = pattern.sub(repl, w)
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "i"
    elif w.endswith(("sses", "xes", "zes", "ches", "shes")):
        w = w[:-2]
    elif w.endswith("ses") and len(w) > 5:
        w = w[:-2]  # diagnoses, viruses -> diagnos, virus
    elif w.endswith("is") and len(w) > 5:
        w = w[:-2]  # diagnosis, analysis -> diagnos, analys
    elif w.endswith("ing") and len(w) > 5 and _VOWEL.search(w[:-3]):
        w = w[:-3]
    elif w.endswith("ed") and not w.endswith("eed") and len(w) > 4 and _VOWEL.search(w[:-2]):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    elif w.endswith("y") and len(w) > 3:
        w = w[:-1] + "i"
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]  # stopped -> stopp -> stop; labelled -> label
    return w


@dataclass(frozen=True)
class _Tok:
    start: int
    end: int
    raw: str  # the lower-case word
    key: str  # its word_key
    sep: str  # what separates it from the previous word: " " (space/hyphen) or the punctuation


def _en_tokens(text: str) -> list[_Tok]:
    key = match_key(text, "en")
    folded = fullwidth_to_halfwidth(text)
    toks, prev_end = [], None
    for m in _WORD.finditer(key):
        if prev_end is None:
            sep = ""
        else:
            between = key[prev_end : m.start()]
            sep = " " if _SOFT_SEP.match(between) else _SPACES.sub("", between) or " "
        original = folded[m.start() : m.end()]
        raw = m.group()
        # An acronym (AIDS, SARS) is not an inflected word: "AIDS" must not become "aid".
        acronym = 1 < len(original) <= 5 and original.isupper() and raw not in _ROMAN
        wkey = raw if acronym else word_key(raw)
        toks.append(_Tok(m.start(), m.end(), raw, wkey, sep))
        prev_end = m.end()
    return toks


@dataclass(frozen=True)
class _Sig:
    """An English phrase as the matcher sees it: word keys, lower-case words, separators."""

    keys: tuple[str, ...]
    raws: tuple[str, ...]
    seps: tuple[str, ...]

    @classmethod
    def of(cls, phrase: str) -> _Sig:
        toks = _en_tokens(phrase)
        return cls(tuple(t.key for t in toks), tuple(t.raw for t in toks), tuple(t.sep for t in toks[1:]))


def _match_at(toks: list[_Tok], i: int, sig: _Sig) -> bool:
    if not sig.keys or i + len(sig.keys) > len(toks):
        return False
    for j, (k, raw) in enumerate(zip(sig.keys, sig.raws, strict=True)):
        tok = toks[i + j]
        if (tok.key != k and tok.raw != raw) or (j and tok.sep != sig.seps[j - 1]):
            return False
    return True


# -- alternatives -------------------------------------------------------------------------------
_ALT_SPLIT = re.compile(r"\s*(?:\||;|；|｜)\s*")
_NOTE = re.compile(r"\s*\[[^\]]*\]")  # TICO-19's usage notes: "冠状病毒 [when referring the generic virus group]"
_TRAILING_PAREN = re.compile(r"^(?P<base>.+?)\s*[(（](?P<inner>[^()（）]+)[)）]$")
_ABBREV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/.]{0,11}$")


def split_alternatives(text: str) -> list[str]:
    """Every translation one glossary field accepts: ``A | B``, ``A; B``, ``name (ABBR)`` -> name, ABBR."""
    out: list[str] = []
    for part in _ALT_SPLIT.split(_NOTE.sub("", text).strip()):
        part = part.strip()
        if not part:
            continue
        m = _TRAILING_PAREN.match(part)
        if m and _ABBREV.match(m.group("inner").strip()) and any(c.isupper() for c in m.group("inner")):
            candidates = [m.group("base").strip(), m.group("inner").strip()]
        else:
            candidates = [part]
        for c in candidates:
            if c and c not in out:
                out.append(c)
    return out


# -- terms, hits, checks ------------------------------------------------------------------------
USER_PRIORITY = 100  # the user's own glossary outranks every shipped list

# Word-forms that make a general-dictionary gloss a medical term rather than a loose everyday gloss.
_MEDICAL_FORM = re.compile(
    r"(itis|omas?|ectomy|otomy|ostomy|scopy|graphy|a?emia|(?<!diagn)os[ie]s|pathy|plasty|algia|rrh(o)?ea|plegia|"
    r"trophy|phobia|cardi|neur|nephr|hepat|gastr|pulmon|arter|vascul|carcin|lymph|derm|oste|arthr|encephal|"
    r"myel|syndrome|fracture|vaccin|tumou?r|cancer|infect|vir(us|al)|bacteri|ulcer|insulin|diabet|tendon|"
    r"biops|antibod|antigen|pneumon|asthma|epilep|hernia|thromb|embol|stenosis|sclerosis|dysplasia|cyst|"
    r"fibr|leuk|glyc|lipid|hormone|steroid|anesthe|anaesthe|\bdrug|\bdose)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Term:
    """One glossary entry: ``origin`` names its file or list, ``priority`` ranks it (higher first),
    ``general`` marks a general dictionary (CC-CEDICT) rather than a curated medical list."""

    zh: str
    en: str
    origin: str = ""
    priority: int = 0
    general: bool = False
    # Source languages from which this entry is only advisory: human references rarely use its
    # rendering (the shipped glossary's reference audit, medcore.glossary_audit).
    advisory_from: frozenset[str] = frozenset()

    def side(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    @property
    def required(self) -> bool:
        """False for a general-dictionary entry that is an everyday word (see the module docstring)."""
        if not self.general:
            return True
        return len(self.zh) >= 3 or bool(_MEDICAL_FORM.search(self.en))


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
        """Accepted translations, best source first (the terms are kept sorted by priority)."""
        seen: dict[str, str] = {}  # match key -> first spelling ("Pneumonia" and "pneumonia" are one)
        for term in self.terms:
            text = term.side(target_lang)
            seen.setdefault(match_key(text, target_lang), text)
        return list(seen.values())

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(t.origin for t in self.terms if t.origin))


@dataclass
class TermCheck:
    """A source term and whether one of its expected translations appears in the output.

    ``required`` is False for a general-dictionary everyday word: it is shown, never flagged.
    ``accepted`` is set when a reviewer accepted the translation the model chose.
    """

    hit: TermHit
    expected: list[str]
    found: Span | None
    required: bool = True
    accepted: bool = False
    untranslated: bool = False  # an advisory term copied into the translation as it stood in the source

    @property
    def ok(self) -> bool:
        return self.found is not None

    @property
    def flagged(self) -> bool:
        """To review: not found and not accepted, and either required or left untranslated."""
        return not self.ok and (self.required or self.untranslated) and not self.accepted

    @property
    def status(self) -> str:
        """'ok', 'missing' (to review), 'accepted' (reviewer accepted) or 'advisory' (not required)."""
        if self.ok:
            return "ok"
        if self.accepted:
            return "accepted"
        return "missing" if self.required or self.untranslated else "advisory"

    def to_dict(self) -> dict:
        return {
            "term": self.hit.span.text,
            "start": self.hit.span.start,
            "end": self.hit.span.end,
            "expected": self.expected,
            "found": None if self.found is None else self.found.text,
            "found_start": None if self.found is None else self.found.start,
            "status": self.status,
            "sources": self.hit.sources,
        }


@dataclass
class Inconsistency:
    """A source term that occurs several times and was translated in different ways."""

    term: str
    occurrences: int
    variants: list[Span]

    def to_dict(self) -> dict:
        return {"term": self.term, "occurrences": self.occurrences,
                "variants": list(dict.fromkeys(v.text for v in self.variants)),
                "positions": [v.start for v in self.variants]}


def find_all_phrases(text: str, phrase: str, lang: str, _toks: list[_Tok] | None = None) -> list[Span]:
    """Every non-overlapping occurrence of ``phrase`` in ``text`` under the matching rules above.

    ``_toks`` are ``text``'s English tokens when the caller already has them (one text, many phrases).
    """
    if not phrase:
        return []
    if lang == "zh":
        out, pos = [], text.find(phrase)
        while pos >= 0:
            out.append(Span(pos, pos + len(phrase), phrase))
            pos = text.find(phrase, pos + len(phrase))
        return out
    sig = _Sig.of(phrase)
    if not sig.keys:
        return []
    toks = _toks if _toks is not None else _en_tokens(text)
    out, i = [], 0
    while i < len(toks):
        if _match_at(toks, i, sig):
            start, end = toks[i].start, toks[i + len(sig.keys) - 1].end
            out.append(Span(start, end, text[start:end]))
            i += len(sig.keys)
        else:
            i += 1
    return out


def find_phrase(text: str, phrase: str, lang: str, _toks: list[_Tok] | None = None) -> Span | None:
    """First occurrence of ``phrase`` (or of one of its alternatives, see :func:`split_alternatives`)
    in ``text`` under the matching rules above, or None."""
    best: Span | None = None
    if lang == "en" and _toks is None:
        _toks = _en_tokens(text)
    for alt in split_alternatives(phrase) if lang == "en" else [phrase]:
        spans = find_all_phrases(text, alt, lang, _toks)
        if spans and (best is None or spans[0].start < best.start):
            best = spans[0]
    return best


_ABBREVIATION = re.compile(r"[A-Z0-9][A-Z0-9\-./]*")


def left_untranslated(hit: TermHit, translation: str) -> bool:
    """The source term stands in the translation as it was: 疾病 inside English, "mutation" inside
    Chinese. An all-capital abbreviation (DNA, HIV, COVID-19) is legitimately kept in Chinese text."""
    if hit.lang == "zh":
        return hit.span.text in translation
    return not _ABBREVIATION.fullmatch(hit.span.text) and find_phrase(translation, hit.span.text, "en") is not None


class Glossary:
    """A set of zh/en terms with a matcher for each language.

    ``general_terms=True`` makes every general-dictionary entry a required term (the user asked
    for them); by default the everyday ones are advisory.
    """

    def __init__(self, terms: Iterable[Term], min_zh_chars: int = 2, general_terms: bool = False):
        self.general_terms = general_terms
        self.terms: list[Term] = []
        self._zh: dict[str, list[Term]] = defaultdict(list)
        self._en: dict[str, dict[_Sig, list[Term]]] = defaultdict(dict)
        seen: set[tuple[str, str]] = set()
        expanded: list[Term] = []
        for term in terms:
            if not term.zh or not term.en:
                continue
            # Alternatives in one field become one entry each (same source and priority).
            for zh in split_alternatives(term.zh):
                for en in split_alternatives(term.en):
                    expanded.append(replace(term, zh=zh, en=en))
        # Highest priority first, so hits list the preferred translation first; stable otherwise.
        expanded.sort(key=lambda t: -t.priority)
        for term in expanded:
            if (term.zh, term.en) in seen:
                continue
            seen.add((term.zh, term.en))
            self.terms.append(term)
            if len(term.zh) >= min_zh_chars:
                self._zh[term.zh].append(term)
            sig = _Sig.of(term.en)
            if sig.keys:
                self._en[sig.keys[0]].setdefault(sig, []).append(term)
        self._zh_lengths = sorted({len(k) for k in self._zh}, reverse=True)
        # Longest candidates first, so the first match at a position is the longest one.
        self._en_candidates = {
            first: sorted(group.items(), key=lambda kv: -len(kv[0].keys)) for first, group in self._en.items()
        }

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def load(cls, paths: str | Path | Sequence[str | Path], min_zh_chars: int = 2, priority: int = 0,
             general_terms: bool = False, base: Iterable[Term] = ()) -> Glossary:
        """Read term files (any format :func:`medcore.pairs.read_pairs` reads) at ``priority``,
        on top of the terms in ``base`` (e.g. :func:`medcore.glossary.default_terms`)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        terms = list(base)
        for path in paths:
            for pair in read_pairs(path):
                zh, en = normalize_zh(pair.zh), normalize_en(pair.en)
                if zh and en:
                    terms.append(Term(zh, en, Path(path).name, priority))
        return cls(terms, min_zh_chars=min_zh_chars, general_terms=general_terms)

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
        toks = _en_tokens(text)
        hits, i = [], 0
        while i < len(toks):
            cands = list(self._en_candidates.get(toks[i].key, ()))
            if toks[i].raw != toks[i].key:
                cands += self._en_candidates.get(toks[i].raw, ())
                cands.sort(key=lambda kv: -len(kv[0].keys))
            for sig, terms in cands:
                if _match_at(toks, i, sig):
                    start, end = toks[i].start, toks[i + len(sig.keys) - 1].end
                    hits.append(TermHit(Span(start, end, text[start:end]), "en", list(terms)))
                    i += len(sig.keys)
                    break
            else:
                i += 1
        return hits

    def required(self, hit: TermHit) -> bool:
        """A hit must be checked when one of its entries is a required term (or the user asked for all).

        An entry the reference audit demoted (:mod:`medcore.glossary_audit`) is advisory even with
        ``general_terms``: that switch asks for everyday words, not for renderings translators reject."""
        return any((self.general_terms or t.required) and hit.lang not in t.advisory_from for t in hit.terms)

    def check(self, source: str, translation: str, src_lang: str, tgt_lang: str) -> list[TermCheck]:
        """For every term in ``source``: is one of its expected translations in ``translation``?"""
        checks = []
        # The translation is tokenised once and each expected form looked up once (a long document
        # repeats its terms many times).
        toks = _en_tokens(translation) if tgt_lang == "en" else None
        memo: dict[str, Span | None] = {}
        for hit in self.find(source, src_lang):
            expected = hit.expected(tgt_lang)
            found = None
            for e in expected:
                if e not in memo:
                    memo[e] = find_phrase(translation, e, tgt_lang, toks)
                span = memo[e]
                if span is not None and (found is None or span.start < found.start):
                    found = span
            required = self.required(hit)
            left = found is None and not required and left_untranslated(hit, translation)
            checks.append(TermCheck(hit, expected, found, required=required, untranslated=left))
        return checks

    def consistency(self, source: str, translation: str, src_lang: str, tgt_lang: str) -> list[Inconsistency]:
        """Source terms that occur more than once and whose translation uses two different expected forms.

        ``高血压 … 高血压`` → "hypertension … high blood pressure" is flagged; "diabetes mellitus …
        diabetes" is not (one form contains the other: a shortened repeat, not a second translation).
        """
        groups: dict[str, list[TermHit]] = defaultdict(list)
        for hit in self.find(source, src_lang):
            key = hit.span.text if src_lang == "zh" else " ".join(t.key for t in _en_tokens(hit.span.text))
            groups[key].append(hit)
        out = []
        toks = _en_tokens(translation) if tgt_lang == "en" else None
        for hits in groups.values():
            if len(hits) < 2:
                continue
            spans: list[tuple[Span, frozenset[str]]] = []
            for e in hits[0].expected(tgt_lang):
                words = frozenset(e if tgt_lang == "zh" else (t.key for t in _en_tokens(e)))
                for span in find_all_phrases(translation, e, tgt_lang, toks):
                    spans.append((span, words))
            # Keep the longest occurrence where two overlap ("diabetes" inside "diabetes mellitus").
            spans.sort(key=lambda sw: (sw[0].start, -(sw[0].end - sw[0].start)))
            kept: list[tuple[Span, frozenset[str]]] = []
            for span, words in spans:
                if kept and span.start < kept[-1][0].end:
                    continue
                kept.append((span, words))
            forms = list(dict.fromkeys(words for _, words in kept))
            if len(forms) >= 2 and not _nested(forms):
                out.append(Inconsistency(hits[0].span.text, len(hits), [s for s, _ in kept]))
        return out


def _nested(forms: list[frozenset[str]]) -> bool:
    """True when every form is contained in the longest one (shortened repeats of one translation)."""
    longest = max(forms, key=len)
    return all(f <= longest for f in forms)
