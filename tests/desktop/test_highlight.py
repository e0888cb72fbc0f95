"""desktop/highlight.py without Qt: UTF-16 offsets of CJK and astral text, what each pane marks, which
term is under a position."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from desktop.highlight import (
    ACCEPTED,
    ADVISORY,
    FLAG,
    MISSING,
    OK,
    PENDING,
    Mark,
    flagged_segments,
    py_to_qt,
    qt_to_py,
    segment_pair,
    source_marks,
    target_marks,
    term_at,
)
from medcore.redflags import RedFlag
from medcore.terms import Glossary, Term
from runtime.results import SegmentResult, TranslationResult

ROOT = Path(__file__).resolve().parents[2]
# 𠮷 (U+20BB7) and 😀 (U+1F600) are outside the BMP: one Python character, two UTF-16 code units each.
TEXT = "𠮷心肌😀梗死abc"
GLOSSARY = Glossary([Term("高血压", "hypertension"), Term("肺炎", "pneumonia"), Term("患者", "subject"),
                     Term("服用", "take", "cedict", general=True)])


def test_python_indices_to_qt_positions_count_utf16_units():
    assert [py_to_qt(TEXT, i) for i in range(len(TEXT) + 1)] == [0, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert py_to_qt("", 0) == 0 and py_to_qt("心肌梗死", 4) == 4  # BMP-only CJK: one unit per character


def test_qt_positions_back_to_python_indices():
    assert [qt_to_py(TEXT, pos) for pos in (0, 2, 3, 4, 6, 7, 11)] == [0, 1, 2, 3, 4, 5, 9]
    assert all(qt_to_py(TEXT, py_to_qt(TEXT, i)) == i for i in range(len(TEXT) + 1))
    # A position between the two halves of a surrogate pair maps to the character after it.
    assert qt_to_py(TEXT, 1) == 1 and qt_to_py(TEXT, 5) == 4
    assert qt_to_py(TEXT, 99) == len(TEXT)


def test_a_mark_knows_its_qt_range_and_its_underline():
    mark = Mark(4, 6, MISSING)  # 梗死, after two astral characters
    assert TEXT[mark.start:mark.end] == "梗死" and mark.qt_range(TEXT) == (6, 8)
    assert mark.wavy and not Mark(4, 6, OK).wavy


def _checks(source: str, translation: str):
    return GLOSSARY.check(source, translation, "zh", "en")


def test_source_marks_pending_then_in_each_status_colour_over_the_flagged_sentences():
    source = "😀患者服用药物。𠮷高血压和肺炎。"
    translation = "The patient took drugs. Hypertension and lung infection."
    checks = _checks(source, translation)
    assert [source[c.hit.span.start:c.hit.span.end] for c in checks] == ["患者", "服用", "高血压", "肺炎"]
    assert [(m.start, m.end, m.color) for m in source_marks(checks, translated=False)] == [
        (1, 3, PENDING), (3, 5, PENDING), (9, 12, PENDING), (13, 15, PENDING)]
    checks[0].accepted = True  # the reviewer accepted "patient" for 患者
    sentence = SimpleNamespace(start=8, end=16)  # 𠮷高血压和肺炎。
    marks = source_marks(checks, translated=True, flagged=[sentence])
    assert marks[0] == Mark(8, 16, FLAG)  # the flagged sentence first: its terms are painted over it
    assert [(m.start, m.end, m.color) for m in marks[1:]] == [
        (1, 3, ACCEPTED), (3, 5, ADVISORY), (9, 12, OK), (13, 15, MISSING)]
    # The Qt range of 高血压 is shifted by the two astral characters before it.
    assert marks[3].qt_range(source) == (11, 14)


def test_target_marks_only_once_translated():
    source = "高血压和肺炎"
    translation = "😀 Hypertension, not pneumonia."
    checks = _checks(source, translation)
    assert target_marks(checks, translated=False) == []
    marks = target_marks(checks, translated=True)
    assert [translation[m.start:m.end] for m in marks] == ["Hypertension", "pneumonia"]
    assert {m.color for m in marks} == {OK} and marks[0].qt_range(translation) == (3, 15)


def test_term_at_a_position_of_either_pane():
    source = "𠮷高血压和肺炎"
    translation = "hypertension and pneumonia"
    checks = _checks(source, translation)
    assert [term_at(checks, pos, "source") for pos in range(len(source))] == [None, 0, 0, 0, None, 1, 1]
    assert term_at(checks, qt_to_py(source, 3), "source") == 0  # a click on 血 (Qt position 3)
    assert term_at(checks, 0, "target") == 0 and term_at(checks, 12, "target") is None
    assert term_at(checks, translation.index("pneumonia") + 8, "target") == 1
    missing = _checks(source, "")
    assert term_at(missing, 0, "target") is None  # nothing found in an empty translation


def test_flagged_segments_keep_the_engines_order():
    segments = ["s0", "s1", "s2", "s3"]
    flags = [RedFlag("number", "…", segment=2), RedFlag("negation", "…", segment=0),
             RedFlag("length", "…", segment=2), RedFlag("untranslated", "…")]
    assert flagged_segments(segments, flags) == ["s0", "s2"]
    assert flagged_segments(segments, []) == []


def _two_sentences(translations: tuple[str, str], separator: str = " ") -> TranslationResult:
    source = "患者胸痛。既往有高血压病史。"
    segs = [SegmentResult(0, 0, 5, source[:5], translations[0], 20, 6, 40, 0.1, 0.5, "stop", separator),
            SegmentResult(1, 5, 14, source[5:], translations[1], 22, 6, 40, 0.1, 0.5, "stop", "")]
    return TranslationResult(source, translations[0] + separator + translations[1], "zh-en", segs)


def test_a_term_is_inspected_in_the_sentence_that_was_translated():
    """One prompt per sentence: a term's attention is its sentence's, with the spans moved into it."""
    result = _two_sentences(("Hypertension and chest pain.", "History of hypertension."))
    whole = result.translation
    second = whole.rindex("hypertension")
    # 高血压 (8..11 in the document) sits in sentence 2; its translation is found there
    assert segment_pair(result, (8, 11), (second, second + 12)) == (
        "既往有高血压病史。", "History of hypertension.", (3, 6), (11, 23))
    # the checker pointed at the same words in sentence 1: the sentence's own occurrence is taken
    assert segment_pair(result, (8, 11), (0, 12))[3] == (11, 23)
    # 胸痛 in sentence 1, its translation there
    chest = whole.index("chest pain")
    assert segment_pair(result, (2, 4), (chest, chest + 10)) == (
        "患者胸痛。", "Hypertension and chest pain.", (2, 4), (17, 27))
    # a translation the sentence does not contain, or none at all: no target span
    assert segment_pair(result, (2, 4), (second - 11, second - 8))[3] is None  # "History" is sentence 2's
    assert segment_pair(result, (8, 11), None)[3] is None


def test_a_stopped_translation_still_places_the_sentences_it_has():
    stopped = _two_sentences(("Chest pain.", ""), separator="")  # Stop before sentence 2 produced anything
    assert segment_pair(stopped, (2, 4), (0, 10)) == ("患者胸痛。", "Chest pain.", (2, 4), (0, 10))
    assert segment_pair(stopped, (8, 11), None) == ("既往有高血压病史。", "", (3, 6), None)


def test_the_whole_pair_when_the_sentences_cannot_be_placed():
    one = TranslationResult("患者胸痛。", "Chest pain.", "zh-en",
                            [SegmentResult(0, 0, 5, "患者胸痛。", "Chest pain.", 20, 4, 40, 0.1, 0.3, "stop")])
    assert segment_pair(one, (2, 4), (0, 10)) == ("患者胸痛。", "Chest pain.", (2, 4), (0, 10))
    edited = _two_sentences(("Chest pain.", "History of hypertension."))
    edited.translation = "Chest pain. A history of high blood pressure."  # not what the segments hold
    assert segment_pair(edited, (8, 11), None) == (edited.source, edited.translation, (8, 11), None)


def test_the_highlight_logic_imports_no_qt():
    code = "import json, sys; import desktop.highlight; print(json.dumps(sorted(m for m in sys.modules if m.startswith('PySide6'))))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
