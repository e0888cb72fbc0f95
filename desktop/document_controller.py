"""The document: translating the source pane into the target pane, Stop, files in and out.

:class:`DocumentController` sends the source to the engine thread and streams the result into the
translation pane as it comes: in order, or, when segments are translated side by side, each one in
its own place (:class:`desktop.document_view.DocumentView`). It keeps the progress bar and the speed,
ignores whatever an older request still sends (newest request wins), hands the finished translation
to the term highlighter, and opens, saves and exports (the translation with its term report, red
flags and provenance).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication, QComboBox, QFileDialog, QLabel, QPlainTextEdit, QProgressBar

from desktop.document_view import DocumentView
from desktop.documents import DocumentError, export, read_source_file, report_payload
from desktop.model_controller import ModelController
from desktop.provenance import build_provenance
from desktop.term_highlighter import TermHighlighter, span_cursor
from desktop.window_part import WindowPart
from desktop.worker import EngineController
from medcore.atomic import write_text
from medcore.prompt import auto_direction
from runtime.model_hash import model_sha256
from runtime.results import TranslationResult


class DocumentController(WindowPart):
    """``translate`` returns the request id; ``translationFinished(result)`` comes once the translation
    (finished or stopped) is shown and its terms checked."""

    translationFinished = Signal(object)

    def __init__(self, engine: EngineController, models: ModelController, terms: TermHighlighter,
                 source: QPlainTextEdit, target: QPlainTextEdit, direction_combo: QComboBox, detected_label: QLabel,
                 progress: QProgressBar, speed_label: QLabel, parent=None):
        super().__init__(parent)
        self.engine, self.models, self.terms = engine, models, terms
        self.source, self.target, self.progress, self.speed_label = source, target, progress, speed_label
        self.direction_combo, self.detected_label = direction_combo, detected_label
        self.result: TranslationResult | None = None
        self.result_source = ""
        self.request_id = 0
        self.max_new_tokens: int | None = None
        self._busy = False
        # Segments side by side: each one's text in its place as it comes (None: the pane streams in order).
        self.view: DocumentView | None = None
        self._t_first: float | None = None
        self._pieces = 0
        worker = engine.worker
        worker.token.connect(self._on_token)
        worker.planned.connect(self._on_planned)
        worker.segmentPiece.connect(self._on_segment_piece)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    @property
    def busy(self) -> bool:
        return self._busy

    def _show_terms(self) -> None:
        """The term highlighter checks the finished translation (none while one is running)."""
        self.terms.set_result(self.result if not self._busy else None)

    def direction(self) -> str:
        """The chosen direction; "Auto": the source's (``medcore.prompt.auto_direction``)."""
        value = self.direction_combo.currentData()
        return auto_direction(self.source.toPlainText()) if value == "auto" else value

    def source_changed(self) -> None:
        """The source pane's text changed (or the direction): show the detected direction, drop a
        translation of another text, check the source's terms."""
        text = self.source.toPlainText()
        if self.direction_combo.currentData() == "auto":
            self.detected_label.setText(f" {self.direction().replace('-', '→')} " if text.strip() else "")
        else:
            self.detected_label.setText("")
        if self.result is not None and text != self.result_source:
            self.result = None  # the source changed: the old term report no longer applies
            self.terms.forget_review()
        self._show_terms()

    # ------------------------------------------------------------------ translation
    def translate(self) -> int | None:
        text = self.source.toPlainText()
        if self.models.info is None:
            self.error.emit(self.tr("Load a model first."))
            return None
        if not text.strip():
            return None
        self.errorCleared.emit()
        direction = self.direction()
        self.result, self.result_source = None, ""
        self.terms.forget_review()
        self.target.clear()
        self.view = None
        self._busy = True
        self._pieces, self._t_first = 0, None
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.speed_label.setText("")
        self.request_id = self.engine.translate(text, direction, self.max_new_tokens)
        self._show_terms()
        self.message.emit(self.tr("Translating…"), 0)
        return self.request_id

    def stop(self) -> None:
        if self._busy:
            self.engine.stop()
            self.message.emit(self.tr("Stopping…"), 0)

    @Slot(int, object)
    def _on_planned(self, request_id: int, plan) -> None:
        if request_id != self.request_id:
            return
        if plan.parallel > 1:  # segments finish out of order: show each in its place, "…" until it starts
            self.view = DocumentView(plan.separators)
            self.target.setPlainText(self.view.text())

    @Slot(int, int, str)
    def _on_segment_piece(self, request_id: int, index: int, piece: str) -> None:
        if request_id != self.request_id or self.view is None:
            return
        before = self.view.text()
        offset, remove, text = self.view.add(index, piece)
        span_cursor(self.target, before, offset, offset + remove).insertText(text)
        self._count_piece()

    @Slot(int, str)
    def _on_token(self, request_id: int, piece: str) -> None:
        if request_id != self.request_id or self.view is not None:  # side by side: _on_segment_piece shows it
            return
        cursor = QTextCursor(self.target.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.target.ensureCursorVisible()
        self._count_piece()

    def _count_piece(self) -> None:
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now
        self._pieces += 1
        if self._pieces > 1 and now > self._t_first:
            self.speed_label.setText(self.tr("%1 tok/s").replace("%1", f"{(self._pieces - 1) / (now - self._t_first):.1f}"))
        if self._pieces == 1:
            self.changed.emit()  # there is something to copy

    @Slot(int, int, int)
    def _on_progress(self, request_id: int, done: int, total: int) -> None:
        if request_id != self.request_id:
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total}")

    @Slot(int, object)
    def _on_finished(self, request_id: int, result: TranslationResult) -> None:
        if request_id != self.request_id:
            return
        self._busy = False
        self.view = None
        self.result, self.result_source = result, result.source
        if self.target.toPlainText() != result.translation:  # belt and braces: show exactly the result
            self.target.setPlainText(result.translation)
        self.speed_label.setText(self.tr("%1 tok/s").replace("%1", f"{result.tokens_per_second:.1f}"))
        if result.cancelled:
            self.message.emit(self.tr("Stopped: the translation is incomplete."), 0)
        else:
            self.message.emit(self.tr("Done: %1 tokens in %2 s").replace("%1", str(result.generated_tokens)).replace(
                "%2", f"{result.seconds:.1f}"), 10000)
        if result.warnings:
            self.error.emit("\n".join(result.warnings))
        self._show_terms()
        self.translationFinished.emit(result)

    @Slot(int, str)
    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self.request_id:
            return
        self._busy = False
        self.view = None
        self.error.emit(self.tr("Translation failed: %1").replace("%1", message))
        self.changed.emit()

    def copy_translation(self) -> None:
        QApplication.clipboard().setText(self.target.toPlainText())

    def clear(self) -> None:
        self.stop()
        self.request_id = -1  # ignore whatever the stopped request still sends
        self._busy = False
        self.result, self.result_source = None, ""
        self.source.clear()
        self.target.clear()
        self.progress.setValue(0)
        self.speed_label.setText("")
        self.errorCleared.emit()
        self._show_terms()

    # ------------------------------------------------------------------ files
    def open_file(self, path: str) -> bool:
        try:
            text, encoding = read_source_file(path)
        except (DocumentError, OSError) as exc:
            self.error.emit(str(exc))
            return False
        self.source.setPlainText(text)
        self.message.emit(self.tr("Opened %1 (%2)").replace("%1", Path(path).name).replace("%2", encoding), 5000)
        self.source_changed()
        return True

    def save_translation(self, path: str) -> None:
        write_text(path, self.target.toPlainText().rstrip("\n") + "\n")

    def payload(self) -> dict:
        """The translation with its term report, stats and provenance (what Export writes)."""
        info = self.models.info
        if self.result is None or info is None:
            raise RuntimeError("no finished translation to export")
        path = str(info.path)
        digest = self.engine.model_sha256.get(path) or model_sha256(path)
        provenance = build_provenance(path, info.name, self.terms.glossary_names(), self.result.direction,
                                      info.options.to_dict(), sha256=digest, model=self.result.model)
        return report_payload(self.result.source, self.result.translation, self.result.direction, self.terms.checks,
                              provenance, self.result.stats(), self.result.warnings, self.result.cancelled,
                              self.terms.flags, self.terms.inconsistencies)

    def export_report(self, path: str) -> None:
        export(path, self.payload())

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent(), self.tr("Open text"), "",
                                              self.tr("Text files (*.txt);;All files (*)"))
        if path:
            self.open_file(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent(), self.tr("Save translation"), "translation.txt",
                                              self.tr("Text files (*.txt)"))
        if path:
            self.save_translation(path)

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent(), self.tr("Export translation with term report"),
                                              "translation-report.txt", self.tr("Text report (*.txt);;JSON (*.json)"))
        if path:
            self.export_report(path)
