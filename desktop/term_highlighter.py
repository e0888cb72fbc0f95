"""Glossary terms in the source and the translation: matching, highlighting, selection, review.

:class:`TermHighlighter` loads the glossaries (the default medical glossary, the user's lists, the
user's own file on top), checks the source's terms against the finished translation, paints them
in both panes and fills the term panel. Selecting a highlighted term (in a pane or the panel)
emits ``termSelected``, the attention view's hook. The offsets and the choice of what to mark are
Qt-free (:mod:`desktop.highlight`); this module only applies them to the ``QPlainTextEdit``\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QAction, QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QFileDialog, QInputDialog, QPlainTextEdit, QTextEdit

from desktop.documents import red_flags, term_checks, term_consistency
from desktop.glossary_panel import GlossaryPanel
from desktop.highlight import (
    Mark,
    flagged_segments,
    qt_to_py,
    segment_pair,
    source_marks,
    target_marks,
    term_at,
)
from desktop.settings import AppSettings
from desktop.window_part import WindowPart
from medcore.glossary import DEFAULT_NAME, GlossaryError, add_user_term, load_glossary, user_glossary_path
from medcore.pairs import DataFormatError
from medcore.prompt import split_direction
from medcore.redflags import RedFlag
from medcore.terms import Glossary, Inconsistency, TermCheck
from runtime.results import TranslationResult


def paint(edit: QPlainTextEdit, marks: list[Mark]) -> None:
    """Show ``marks`` as the edit's extra selections (its text and undo history stay as they are)."""
    text = edit.toPlainText()
    selections = []
    for mark in marks:
        sel = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(mark.color))
        if mark.wavy:
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            fmt.setUnderlineColor(QColor("#c00000"))
        sel.cursor, sel.format = span_cursor(edit, text, mark.start, mark.end), fmt
        selections.append(sel)
    edit.setExtraSelections(selections)


def span_cursor(edit: QPlainTextEdit, text: str, start: int, end: int) -> QTextCursor:
    """A cursor selecting Python indices ``start:end`` of ``text`` (the edit's text) in its document."""
    qt_start, qt_end = Mark(start, end, "").qt_range(text)
    cursor = QTextCursor(edit.document())
    cursor.setPosition(qt_start)
    cursor.setPosition(qt_end, QTextCursor.MoveMode.KeepAnchor)
    return cursor


def marks_of(edit: QPlainTextEdit) -> list[tuple[int, int, str]]:
    """(start, end, colour name) of an edit's highlights, in Python indices."""
    text = edit.toPlainText()
    return [(qt_to_py(text, sel.cursor.selectionStart()), qt_to_py(text, sel.cursor.selectionEnd()),
             sel.format.background().color().name()) for sel in edit.extraSelections()]


class TermHighlighter(WindowPart):
    """Selecting a highlighted term emits ``termSelected(source, translation, src_span, tgt_span, direction)``."""

    termSelected = Signal(str, str, object, object, str)
    glossaryChanged = Signal(object)  # the loaded Glossary (None: none loaded)

    def __init__(self, source: QPlainTextEdit, target: QPlainTextEdit, panel: GlossaryPanel,
                 settings: AppSettings, act_default_glossary: QAction, direction: Callable[[], str],
                 parent=None):
        super().__init__(parent)
        self.source, self.target, self.panel, self.settings = source, target, panel, settings
        self.act_default_glossary = act_default_glossary
        self._direction = direction
        self.glossary: Glossary | None = None
        self.glossary_files: list[str] = []
        # The finished translation whose terms are checked (None: the source's terms, pending).
        self.result: TranslationResult | None = None
        self.checks: list[TermCheck] = []
        self.flags: list[RedFlag] = []
        self.inconsistencies: list[Inconsistency] = []
        # Terms the reviewer accepted for the current translation: (source term, expected forms).
        self.accepted_terms: set[tuple[str, tuple[str, ...]]] = set()
        act_default_glossary.setChecked(settings.use_default_glossary())
        act_default_glossary.toggled.connect(self.set_default_glossary)
        source.cursorPositionChanged.connect(self._on_source_cursor)
        target.cursorPositionChanged.connect(self._on_target_cursor)
        panel.termActivated.connect(self.select_term)
        panel.acceptRequested.connect(self.accept_term)
        panel.addRequested.connect(self._add_term_dialog)
        panel.flagActivated.connect(self.select_flag)

    # ------------------------------------------------------------------ glossaries
    def load_glossaries(self, paths: list[str]) -> bool:
        """The default medical glossary (unless turned off), ``paths`` and the user's own glossary file on top."""
        own = user_glossary_path()
        files = [str(p) for p in paths]
        extra = [str(own)] if own.is_file() and str(own) not in files else []
        use_default = self.settings.use_default_glossary()
        try:
            glossary = load_glossary(files + extra, use_default=use_default,
                                     general_terms=self.settings.check_general_terms())
        except (DataFormatError, GlossaryError, OSError, ValueError) as exc:
            self.error.emit(self.tr("Cannot read the glossary: %1").replace("%1", str(exc)))
            return False
        self.glossary = glossary
        self.glossary_files = files
        self.settings.set_glossaries(self.glossary_files)
        names = ([self.tr("default medical glossary")] if use_default else []) + [Path(p).name for p in files + extra]
        self.panel.set_glossary_files(names, len(glossary) if glossary else 0)
        self.glossaryChanged.emit(glossary)
        self.refresh()
        return True

    def glossary_names(self) -> list[str]:
        """What the provenance records: the default glossary's name, then the user's files."""
        return ([DEFAULT_NAME] if self.settings.use_default_glossary() else []) + list(self.glossary_files)

    @Slot(bool)
    def set_default_glossary(self, enabled: bool) -> None:
        self.settings.set_use_default_glossary(enabled)
        if self.act_default_glossary.isChecked() != enabled:
            self._check_default_action(enabled)
        self.load_glossaries(self.glossary_files)

    def clear_glossaries(self) -> None:
        """No glossary at all: the default one off and the user's lists unloaded."""
        self.settings.set_use_default_glossary(False)
        self._check_default_action(False)
        self.load_glossaries([])

    def _check_default_action(self, checked: bool) -> None:
        self.act_default_glossary.blockSignals(True)
        self.act_default_glossary.setChecked(checked)
        self.act_default_glossary.blockSignals(False)

    def open_glossary_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.dialog_parent(), self.tr("Load term lists"), "",
                                                self.tr("Term lists (*.tsv *.csv *.xlsx *.jsonl *.txt);;All files (*)"))
        if paths:
            self.load_glossaries(sorted(set(self.glossary_files) | set(paths)))

    # ------------------------------------------------------------------ checking and painting
    def set_result(self, result: TranslationResult | None) -> None:
        """Check the terms against ``result`` (a finished translation; None: the source alone) and repaint."""
        self.result = result
        self.refresh()

    def forget_review(self) -> None:
        """A new translation (or a changed source): the reviewer's accepted terms no longer apply."""
        self.accepted_terms.clear()

    def refresh(self) -> None:
        source = self.source.toPlainText()
        translated = self.result is not None
        translation = self.result.translation if translated else ""
        direction = self.result.direction if translated else self._direction()
        self.checks = term_checks(self.glossary, source, translation, direction)
        for check in self.checks:
            check.accepted = self._term_key(check) in self.accepted_terms
        self.flags = red_flags(self.result.segments, direction) if translated else []
        self.inconsistencies = term_consistency(self.glossary, source, translation, direction) if translated else []
        self.panel.set_checks(self.checks, translated)
        self.panel.set_flags(self.flags, self.inconsistencies, translated)
        paint(self.source, source_marks(self.checks, translated, self.flagged_segments()))
        paint(self.target, target_marks(self.checks, translated))
        self.changed.emit()

    def flagged_segments(self) -> list:
        """The engine's segments (sentences) that carry a red flag."""
        return flagged_segments(self.result.segments, self.flags) if self.result is not None else []

    def highlighted_spans(self, which: Literal["source", "target"]) -> list[tuple[int, int, str]]:
        """(start, end, colour name) of the highlights in 'source' or 'target' (Python indices)."""
        return marks_of(self.source if which == "source" else self.target)

    # ------------------------------------------------------------------ selection
    @Slot(int)
    def select_flag(self, row: int) -> None:
        """Select the sentence of red flag ``row`` in the source pane."""
        if not 0 <= row < len(self.flags) or self.result is None or self.flags[row].segment is None:
            return
        seg = self.result.segments[self.flags[row].segment]
        self.source.setTextCursor(span_cursor(self.source, self.source.toPlainText(), seg.start, seg.end))

    def _on_source_cursor(self) -> None:
        text = self.source.toPlainText()
        row = term_at(self.checks, qt_to_py(text, self.source.textCursor().position()), "source")
        if row is not None:
            self.select_term(row)

    def _on_target_cursor(self) -> None:
        if self.result is None:
            return
        text = self.target.toPlainText()
        row = term_at(self.checks, qt_to_py(text, self.target.textCursor().position()), "target")
        if row is not None:
            self.select_term(row)

    @Slot(int)
    def select_term(self, row: int) -> None:
        """The hook for the attention view: emits ``termSelected`` for term ``row``."""
        if not 0 <= row < len(self.checks):
            return
        check = self.checks[row]
        self.panel.select_row(row)
        source, src_span = self.source.toPlainText(), (check.hit.span.start, check.hit.span.end)
        if self.result is None:  # nothing translated yet: the source's attention alone
            self.termSelected.emit(source, "", src_span, None, self._direction())
            return
        tgt_span = (check.found.start, check.found.end) if check.found else None
        if source == self.result.source:  # the sentence that was translated, not the whole document
            source, translation, src_span, tgt_span = segment_pair(self.result, src_span, tgt_span)
        else:
            translation = self.result.translation
        self.termSelected.emit(source, translation, src_span, tgt_span, self.result.direction)

    # ------------------------------------------------------------------ per-term review
    def _term_key(self, check: TermCheck) -> tuple[str, tuple[str, ...]]:
        return check.hit.span.text, tuple(check.expected)

    @Slot(int)
    def accept_term(self, row: int) -> None:
        """The reviewer accepts the model's wording of term ``row`` for this translation."""
        if not 0 <= row < len(self.checks) or self.result is None:
            return
        self.accepted_terms.add(self._term_key(self.checks[row]))
        self.refresh()
        self.panel.select_row(row)

    def add_term_to_user_glossary(self, row: int, wording: str) -> bool:
        """Save ``wording`` as the translation of term ``row`` in the user's own glossary file (atomic write)."""
        if not 0 <= row < len(self.checks) or not wording.strip():
            return False
        check = self.checks[row]
        src, _ = split_direction(self.result.direction if self.result is not None else self._direction())
        zh, en = (check.hit.span.text, wording) if src == "zh" else (wording, check.hit.span.text)
        path = user_glossary_path()
        try:
            added = add_user_term(path, zh, en)
        except (GlossaryError, DataFormatError, OSError) as exc:
            self.error.emit(self.tr("Cannot save to your glossary: %1").replace("%1", str(exc)))
            return False
        self.message.emit((self.tr("Added to %1") if added else self.tr("Already in %1")).replace("%1", str(path)),
                          8000)
        return self.load_glossaries(self.glossary_files)

    @Slot(int)
    def _add_term_dialog(self, row: int) -> None:
        if not 0 <= row < len(self.checks):
            return
        # The wording the reviewer selected in the translation, else ask for it.
        wording = self.target.textCursor().selectedText().strip()
        if not wording:
            wording, ok = QInputDialog.getText(self.dialog_parent(), self.tr("Add to my glossary"), self.tr(
                "Translation of %1 to save in your glossary:").replace("%1", self.checks[row].hit.span.text))
            if not ok:
                return
        self.add_term_to_user_glossary(row, wording)
