"""Files in and out: reading source text (UTF-8 or GB18030), the term report, red flags, exports.

The term report uses :meth:`medcore.terms.Glossary.check`, the same matcher as the evaluation's term
accuracy metric, so a term flagged in the app is exactly a term the metric would count as missed.
The clinical red flags come from :mod:`medcore.redflags`, sentence by sentence when the translation
was made sentence by sentence (the engine's segments), else on the whole pair.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from medcore.atomic import write_json, write_text
from medcore.prompt import split_direction
from medcore.redflags import RedFlag, check_pair
from medcore.terms import Glossary, Inconsistency, TermCheck


class DocumentError(ValueError):
    """A file that cannot be read as text, with the reason."""


def read_source_file(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(text, encoding) of a plain-text file: UTF-8 (with or without BOM), else GB18030."""
    data = Path(path).read_bytes()
    if b"\x00" in data[:4096]:
        raise DocumentError(f"{Path(path).name} looks like a binary file, not plain text")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n"), "utf-8" if encoding == "utf-8-sig" else encoding
    raise DocumentError(f"{Path(path).name} is neither UTF-8 nor GB18030 text")


def term_checks(glossary: Glossary | None, source: str, translation: str, direction: str) -> list[TermCheck]:
    if glossary is None or not len(glossary):
        return []
    src, tgt = split_direction(direction)
    return glossary.check(source, translation, src, tgt)


def term_consistency(glossary: Glossary | None, source: str, translation: str, direction: str) -> list[Inconsistency]:
    if glossary is None or not len(glossary) or not translation:
        return []
    src, tgt = split_direction(direction)
    return glossary.consistency(source, translation, src, tgt)


class SegmentLike(Protocol):
    source: str
    translation: str
    finish_reason: str


def red_flags(segments: Sequence[SegmentLike], direction: str) -> list[RedFlag]:
    """Red flags of a translation made sentence by sentence; each names its sentence (0-based).

    A sentence that hit its output limit is flagged too (its translation may be cut short).
    A sentence stopped by the user is not checked: the report already says the translation is incomplete.
    """
    flags: list[RedFlag] = []
    for index, seg in enumerate(segments):
        if seg.finish_reason == "cancelled":
            continue
        flags.extend(check_pair(seg.source, seg.translation, direction, segment=index))
        if seg.finish_reason == "length":
            flags.append(RedFlag("length", "the sentence reached its output limit: its translation may be cut short",
                                 segment=index))
    return flags


def term_report(checks: list[TermCheck]) -> dict[str, Any]:
    """Counts and rows; ``missing`` is the number of terms to review (flagged)."""
    rows = [c.to_dict() for c in checks]
    ok = sum(1 for c in checks if c.ok)
    return {"found": len(checks), "ok": ok, "missing": sum(1 for c in checks if c.flagged),
            "advisory": sum(1 for c in checks if c.status == "advisory"),
            "accepted": sum(1 for c in checks if c.status == "accepted"), "terms": rows}


def report_payload(source: str, translation: str, direction: str, checks: list[TermCheck],
                   provenance: dict[str, Any], stats: dict[str, Any] | None = None,
                   warnings: list[str] | None = None, cancelled: bool = False,
                   flags: list[RedFlag] | None = None,
                   consistency: list[Inconsistency] | None = None) -> dict[str, Any]:
    """The JSON document of ``translate --json`` and of the window's JSON export.

    ``complete`` is true only when the translation ran to the end and no red flag was raised
    (numbers, negation, laterality, untranslated text, length, repetition).
    """
    flags = list(flags or [])
    return {
        "source": source,
        "translation": translation,
        "direction": direction,
        "complete": not cancelled and not flags,
        "red_flags": [f.to_dict() for f in flags],
        "term_report": term_report(checks),
        "consistency": [c.to_dict() for c in consistency or []],
        "warnings": list(warnings or []),
        "stats": dict(stats or {}),
        "provenance": provenance,
    }


def format_text_report(payload: dict[str, Any]) -> str:
    """A plain-text export: the translation, then the term report and provenance."""
    lines = [payload["translation"].rstrip(), "", "-" * 60, "Term report"]
    report = payload["term_report"]
    if not report["terms"]:
        lines.append("  (no glossary terms found in the source)")
    marks = {"ok": "OK      ", "missing": "REVIEW  ", "accepted": "ACCEPTED", "advisory": "ADVISORY"}
    for row in report["terms"]:
        mark = marks.get(row["status"], row["status"].upper())
        found = row["found"] if row["found"] else "not found in the translation"
        lines.append(f"  {mark}{row['term']}  ->  expected: {' | '.join(row['expected'])};  {found}")
    lines.append(f"  {report['ok']} of {report['found']} terms as expected, {report['missing']} to review")
    for item in payload.get("consistency", []):
        lines.append(f"  INCONSISTENT {item['term']} ({item['occurrences']}x) translated as: {' / '.join(item['variants'])}")
    lines += ["", "Red flags"]
    if not payload.get("red_flags"):
        lines.append("  (none)")
    for flag in payload.get("red_flags", []):
        where = f"sentence {flag['segment'] + 1}: " if flag.get("segment") is not None else ""
        lines.append(f"  {flag['kind'].upper():<12} {where}{flag['message']}")
    for warning in payload.get("warnings", []):
        lines.append(f"  warning: {warning}")
    if not payload.get("complete", True):
        lines.append("  warning: the translation was stopped before it finished")
    prov = payload["provenance"]
    lines += ["", "Provenance",
              f"  model: {prov['model_file']} ({prov['model_name']})",
              f"  model sha256: {prov['model_sha256']}",
              f"  glossaries: {', '.join(prov['glossaries']) or '(none)'}",
              f"  direction: {prov['direction']}",
              f"  time: {prov['time']}",
              f"  prompt contract v{prov['prompt_contract_version']}, {prov['app']}"]
    return "\n".join(lines) + "\n"


def export(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON (``.json``) or as the plain-text report (anything else), atomically."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        write_json(path, payload)
    else:
        write_text(path, format_text_report(payload))
