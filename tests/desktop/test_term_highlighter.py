"""The term highlighter on real Qt text edits (no window, no model): UTF-16 positions in the document,
term selection from a cursor, per-term review and the glossary's own file."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QAction  # noqa: E402
from PySide6.QtWidgets import QPlainTextEdit  # noqa: E402

from desktop.glossary_panel import GlossaryPanel  # noqa: E402
from desktop.highlight import py_to_qt  # noqa: E402
from desktop.term_highlighter import TermHighlighter  # noqa: E402


@pytest.fixture
def terms(qtbot, app_settings, tmp_path):
    app_settings.set_use_default_glossary(False)
    source, target, panel = QPlainTextEdit(), QPlainTextEdit(), GlossaryPanel()
    for widget in (source, target, panel):
        qtbot.addWidget(widget)
    action = QAction("Medical glossary", checkable=True)
    highlighter = TermHighlighter(source, target, panel, app_settings, action, lambda: "zh-en")
    highlighter._action = action  # keep it alive with the highlighter
    clinic = tmp_path / "clinic.csv"
    clinic.write_text("zh,en\n高血压,hypertension\n肺炎,pneumonia\n", encoding="utf-8")
    assert highlighter.load_glossaries([str(clinic)])
    return highlighter


def test_marks_land_on_the_right_characters_after_astral_text(terms):
    text = "😀𠮷高血压和肺炎"
    terms.source.setPlainText(text)
    terms.refresh()
    assert terms.highlighted_spans("source") == [(2, 5, "#fff3b0"), (6, 8, "#fff3b0")]
    # Qt's own view of the same marks: the cursors select exactly the terms.
    assert [sel.cursor.selectedText() for sel in terms.source.extraSelections()] == ["高血压", "肺炎"]
    assert terms.source.extraSelections()[0].cursor.selectionStart() == 4  # two surrogate pairs before it


def test_a_cursor_in_a_term_selects_it_with_python_spans(qtbot, terms):
    text = "😀𠮷高血压和肺炎"
    terms.source.setPlainText(text)
    terms.refresh()
    cursor = terms.source.textCursor()
    cursor.setPosition(py_to_qt(text, 7))  # inside 肺炎
    with qtbot.waitSignal(terms.termSelected, timeout=2000) as blocker:
        terms.source.setTextCursor(cursor)
    assert blocker.args == [text, "", (6, 8), None, "zh-en"]
    assert terms.panel.table.currentRow() == 1


def test_a_finished_translation_marks_both_panes_and_the_reviewer_can_accept(qtbot, terms):
    text = "高血压和肺炎"
    translation = "😀 hypertension and lung infection"
    terms.source.setPlainText(text)
    terms.target.setPlainText(translation)
    terms.forget_review()
    result = SimpleNamespace(source=text, translation=translation, direction="zh-en", segments=[])
    terms.set_result(result)
    assert terms.highlighted_spans("source") == [(0, 3, "#c8f0c8"), (4, 6, "#ffc9c0")]
    assert terms.highlighted_spans("target") == [(2, 14, "#c8f0c8")]
    assert terms.target.extraSelections()[0].cursor.selectedText() == "hypertension"
    cursor = terms.target.textCursor()
    cursor.setPosition(py_to_qt(translation, 5))
    with qtbot.waitSignal(terms.termSelected, timeout=2000) as blocker:
        terms.target.setTextCursor(cursor)
    assert blocker.args == [text, translation, (0, 3), (2, 14), "zh-en"]
    terms.accept_term(1)
    assert terms.panel.status_of(1) == "accepted" and (4, 6, "#d6e8ff") in terms.highlighted_spans("source")
    terms.forget_review()
    terms.refresh()
    assert terms.panel.status_of(1) == "missing"


def test_add_to_my_glossary_reloads_with_the_users_file(terms, tmp_path):
    text = "肺炎"
    terms.source.setPlainText(text)
    terms.set_result(SimpleNamespace(source=text, translation="lung infection", direction="zh-en", segments=[]))
    messages = []
    terms.message.connect(lambda message, timeout: messages.append(message))
    assert terms.add_term_to_user_glossary(0, "lung infection")
    assert (tmp_path / "my_glossary.tsv").read_text(encoding="utf-8").startswith("肺炎\tlung infection")
    assert terms.checks[0].ok and messages and "my_glossary.tsv" in messages[0]
    assert terms.glossary_names() == terms.glossary_files and len(terms.glossary_files) == 1


def test_the_panel_says_review_for_an_advisory_term_left_untranslated(qtbot):
    from medcore.terms import Glossary, Term

    panel = GlossaryPanel()
    qtbot.addWidget(panel)
    glossary = Glossary([Term("疾病", "sickness", "tico19", 20, advisory_from=frozenset({"zh"})),
                         Term("高血压", "hypertension", "hpo", 30)])
    rendered = glossary.check("疾病和高血压", "disease and hypertension", "zh", "en")
    left = glossary.check("疾病和高血压", "疾病 and hypertension", "zh", "en")
    panel.set_checks(rendered, translated=True)
    assert [panel.table.item(r, 3).text() for r in range(2)] == ["advisory (not required)", "OK"]
    panel.set_checks(left, translated=True)
    assert [panel.table.item(r, 3).text() for r in range(2)] == ["review: missing", "OK"]
