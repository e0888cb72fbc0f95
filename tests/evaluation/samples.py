"""Segments shared by the evaluation tests (a term and a sentence each way, one more zh-en term)."""

from __future__ import annotations

import json
from pathlib import Path

from medcore.records import PreparedRecord

ITEMS = [
    ("患者有高血压病史。", "zh-en"),
    ("The patient presented with acute chest pain and shortness of breath.", "en-zh"),
    ("头痛", "zh-en"),
    ("fever", "en-zh"),
    ("术后皮瓣全部成活，切口均一期愈合。", "zh-en"),
]

# A random model seldom says end-of-turn and runs to its budget: a small cap keeps the tests quick
# (short sources stay under it, so the source-length rule is still what sets their budget).
CAP = 24


def records() -> list[PreparedRecord]:
    return [PreparedRecord(f"r{i}", "term" if len(src) < 8 else "sentence", d, src,
                           "reference text" if d == "zh-en" else "参考译文") for i, (src, d) in enumerate(ITEMS)]


def write_prepared(path: Path, items: list[PreparedRecord]) -> Path:
    """``items`` as a prepared JSONL (what ``tsx-train prepare`` writes)."""
    path.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    return path
