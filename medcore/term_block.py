"""Which glossary terms go into a prompt's term block (the contract is in :mod:`medcore.prompt`).

The app and the evaluation call :func:`block_terms` with the glossaries the user has loaded; stage-2
training calls :func:`training_terms` with the training split's own terms. Both find terms with the
one shared matcher (:class:`medcore.terms.Glossary`), so a term the app puts in the block is a term
the highlighter shows and the metric counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from medcore.prompt import TermPair, split_direction
from medcore.records import PreparedRecord
from medcore.terms import Glossary, Term, TermHit, find_phrase


def display_form(term: str, lang: str) -> str:
    """A glossary translation as the block shows it: sentence-case list entries lose their capital.

    Term lists capitalise entries as headings ("Hepatitis", "Decreased circulating antibody
    concentration"); mid-sentence the word is lower-case, and the model copies what the block shows.
    Acronyms and mixed case ("COVID-19", "HbA1c", "pH") are kept as they are.
    """
    if lang != "en" or len(term) < 2 or not term[0].isupper() or any(c.isupper() for c in term[1:]):
        return term
    first = term.split(None, 1)[0]
    if len(first) < 2 or not first[1:].isalpha():
        return term
    return term[0].lower() + term[1:]


#: When the term block goes into prompts. ``auto``: only for a model trained with it; ``on``: always
#: (to measure what an untrained model does with it); ``off``: never.
TERM_BLOCK_MODES = ("auto", "on", "off")


def reads_term_block(adapters: Iterable[Mapping]) -> bool:
    """Whether a model was trained to follow the term block: one of its active adapters saw it.

    ``adapters`` are :meth:`medcore.lora.LoraAdapter.provenance` records. An untrained model does not
    follow the block: measured on 100 test sentences with the 0.5B base, it copied the block's list
    into its output instead of translating in several (zh→en BLEU 13.6 → 7.1), so ``auto`` leaves the
    block out for base models.
    """
    return any(float(a.get("term_block_share") or 0) > 0 for a in adapters)


def term_block_in_use(mode: str, adapters: Iterable[Mapping]) -> bool:
    """Whether prompts carry the term block under ``mode`` (:data:`TERM_BLOCK_MODES`) for this model."""
    if mode not in TERM_BLOCK_MODES:
        raise ValueError(f"term block mode {mode!r}: choose one of {', '.join(TERM_BLOCK_MODES)}")
    return mode == "on" or (mode == "auto" and reads_term_block(adapters))


#: Decides whether a matched term is worth requiring in the prompt (for example: curated lists only).
HitFilter = Callable[[TermHit], bool]


def block_terms(glossary: Glossary | None, source: str, direction: str,
                keep: HitFilter | None = None) -> list[TermPair]:
    """(source term, translation) for every glossary term in ``source``, in source order.

    A term with several translations contributes its first one (the glossary's order is its priority).
    By default only required terms go in (a general dictionary's everyday words are advisory and would
    push loose glosses into the translation); ``keep`` replaces that rule. The contract's
    ``max_terms`` cap is applied when the block is rendered.
    """
    if glossary is None or not len(glossary):
        return []
    src_lang, tgt_lang = split_direction(direction)
    pairs = []
    for hit in glossary.find(source, src_lang):
        expected = hit.expected(tgt_lang)
        if expected and (keep(hit) if keep is not None else glossary.required(hit)):
            pairs.append((hit.span.text, display_form(expected[0], tgt_lang)))
    return pairs


def glossary_from_records(records: Iterable[PreparedRecord], origin: str) -> Glossary:
    """A glossary from prepared term records (either direction; each pair once)."""
    terms = []
    for record in records:
        src_lang, _ = split_direction(record.direction)
        zh, en = (record.source, record.target) if src_lang == "zh" else (record.target, record.source)
        terms.append(Term(zh, en, origin))
    return Glossary(terms)


def in_share(example_id: str, share: float, seed: int) -> bool:
    """A seeded, order-independent draw: is this example among the ``share`` that get a term block?"""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def training_terms(glossary: Glossary, record: PreparedRecord) -> list[TermPair]:
    """The term block for one training record: glossary terms of its source that its reference uses.

    A term whose glossary translations are all absent from the reference is left out, so the model
    learns that a required translation is always honoured, never that the block may be ignored.
    """
    src_lang, tgt_lang = split_direction(record.direction)
    pairs = []
    for hit in glossary.find(record.source, src_lang):
        used = next((e for e in hit.expected(tgt_lang) if find_phrase(record.target, e, tgt_lang)), None)
        if used is not None:
            pairs.append((hit.span.text, display_form(used, tgt_lang)))
    return pairs
