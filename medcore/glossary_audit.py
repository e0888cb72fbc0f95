"""The reference audit: which glossary renderings human translators actually use.

A curated list can still hold renderings that translators rarely choose: TICO-19's 疾病 → "sickness"
where references say "disease", HPO's modifier 中心 → "Central", CC-CEDICT's cancer → 巨蟹座 (the
zodiac sign). Required, such an entry raises false "to review" flags and, through the prompt's term
block, pushes a wrong word into the translation.

The audit goes over prepared **training** sentence pairs only (never a test split). For every
glossary term found in a source, it asks whether one of the term's expected translations appears in
the human reference, through the same matcher the app uses, and counts per source language and
term. An entry seen at least ``min_seen`` times whose expected translations the references use less
than ``max_agreement`` of the time becomes *advisory* when translating from that language: shown,
never flagged, never put in the term block. A user's own glossary entry for the same term makes it
required again (:meth:`medcore.terms.Glossary.required`).

The result is a data file shipped beside the glossary (``reference_audit.json``, written by
``python -m medcore.glossary audit``), with the rule, the data it was measured on and every demoted
entry with its counts, so each demotion can be read and argued with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medcore.atomic import write_json
from medcore.prompt import split_direction
from medcore.records import PreparedRecord
from medcore.terms import Glossary
from medcore.textnorm import match_key

AUDIT_FILE = "reference_audit.json"
MIN_SEEN = 5          # fewer occurrences say too little about an entry
MAX_AGREEMENT = 0.3   # references use the glossary's rendering less often than this: advisory


@dataclass
class AuditRow:
    """One glossary term's record against the references, for one source language."""

    source_lang: str
    term: str                      # the surface first seen in a source
    entries: list[list[str]]       # the [zh, en] glossary entries behind the hits
    sources: list[str]             # the lists those entries come from
    expected: list[str]            # expected translations, best first
    seen: int = 0
    agreed: int = 0
    examples: list[str] = field(default_factory=list)  # ids of a few pairs where the reference disagreed

    @property
    def agreement(self) -> float:
        return self.agreed / self.seen if self.seen else 0.0


def audit(glossary: Glossary, records: Iterable[PreparedRecord]) -> list[AuditRow]:
    """Count, per source language and glossary term, how often the reference uses an expected translation."""
    rows: dict[tuple[str, frozenset], AuditRow] = {}
    for record in records:
        if record.kind != "sentence":
            continue
        src_lang, tgt_lang = split_direction(record.direction)
        for check in glossary.check(record.source, record.target, src_lang, tgt_lang):
            if not check.required:  # already advisory (a general dictionary's everyday word)
                continue
            hit = check.hit
            # "right" and "rights" hit the same entries: one row.
            key = (src_lang, frozenset((t.zh, t.en) for t in hit.terms))
            row = rows.get(key)
            if row is None:
                row = rows[key] = AuditRow(src_lang, hit.span.text, sorted([t.zh, t.en] for t in hit.terms),
                                           hit.sources, check.expected)
            row.seen += 1
            row.agreed += check.ok
            if not check.ok and len(row.examples) < 3:
                row.examples.append(record.id)
    return sorted(rows.values(), key=lambda r: (r.source_lang, -r.seen, r.term))


def demoted(rows: Iterable[AuditRow], min_seen: int = MIN_SEEN, max_agreement: float = MAX_AGREEMENT) -> list[AuditRow]:
    return [r for r in rows if r.seen >= min_seen and r.agreement < max_agreement]


def write_audit(path: str | os.PathLike[str], rows: list[AuditRow], data: dict,
                min_seen: int = MIN_SEEN, max_agreement: float = MAX_AGREEMENT) -> dict:
    """Write the audit (rule, data, counts, demoted entries) atomically; returns what was written."""
    out = demoted(rows, min_seen, max_agreement)
    doc = {
        "rule": {"min_seen": min_seen, "max_agreement": max_agreement,
                 "meaning": "an entry whose expected translation the human references of the training "
                            "sentences use in fewer than max_agreement of at least min_seen occurrences is "
                            "advisory when translating from source_lang"},
        "data": data,
        "counts": {lang: {"terms_seen": sum(r.source_lang == lang for r in rows),
                          "checks": sum(r.seen for r in rows if r.source_lang == lang),
                          "agreed": sum(r.agreed for r in rows if r.source_lang == lang),
                          "demoted": sum(r.source_lang == lang for r in out)} for lang in ("zh", "en")},
        "demoted": [asdict(r) | {"agreement": round(r.agreement, 3)} for r in out],
    }
    write_json(Path(path), doc)
    return doc


def read_demotions(path: str | os.PathLike[str]) -> dict[str, set[str]]:
    """Per source language, the match keys of the demoted entries' source side (empty when no file)."""
    path = Path(path)
    if not path.is_file():
        return {"zh": set(), "en": set()}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        out: dict[str, set[str]] = {"zh": set(), "en": set()}
        for row in doc["demoted"]:
            lang = row["source_lang"]
            side = 0 if lang == "zh" else 1
            out[lang].update(match_key(entry[side], lang) for entry in row["entries"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        from medcore.glossary import GlossaryError

        raise GlossaryError(f"{path} is damaged ({exc}); rebuild it with `python -m medcore.glossary audit`") from None
    return out
