"""The main window: source and target panes, streaming translation, model and glossary handling.

Errors are shown in a banner above the panes (and the status bar), never in a modal box: a modal
dialog would stop a clinician mid-task and blocks headless tests.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QColor, QKeySequence, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTextEdit,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.document_view import DocumentView
from desktop.documents import (
    DocumentError,
    export,
    read_source_file,
    red_flags,
    report_payload,
    term_checks,
    term_consistency,
)
from desktop.engine import ModelInfo, TranslationResult
from desktop.gguf_meta import read_gguf_info
from desktop.glossary_panel import (
    ACCEPTED_COLOR,
    ADVISORY_COLOR,
    FLAG_COLOR,
    MISSING_COLOR,
    OK_COLOR,
    PENDING_COLOR,
    GlossaryPanel,
)
from desktop.model_dialog import ModelSettingsDialog
from desktop.provenance import build_provenance, model_sha256
from desktop.settings import AppSettings
from desktop.worker import EngineController
from medcore.atomic import write_text
from medcore.glossary import DEFAULT_NAME, GlossaryError, add_user_term, load_glossary, user_glossary_path
from medcore.models import ModelError
from medcore.pairs import DataFormatError
from medcore.prompt import auto_direction, split_direction
from medcore.redflags import RedFlag
from medcore.term_block import block_terms, reads_term_block
from medcore.terms import Glossary, Inconsistency, TermCheck
from medcore.textnorm import normalize

log = logging.getLogger("tsx_medtrans.window")

try:  # the attention view (another part of the app) is optional
    from desktop.attention.dock import AttentionDock
except Exception:  # noqa: BLE001 - any failure there must leave the translator usable
    AttentionDock = None


def py_to_qt(text: str, index: int) -> int:
    """Python string index -> Qt document position (UTF-16 code units)."""
    return len(text[:index].encode("utf-16-le")) // 2


def qt_to_py(text: str, pos: int) -> int:
    """Qt document position (UTF-16 code units) -> Python string index."""
    units = 0
    for i, ch in enumerate(text):
        if units >= pos:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


class MainWindow(QMainWindow):
    """Selecting a highlighted term emits ``termSelected(source, translation, src_span, tgt_span, direction)``."""

    termSelected = Signal(str, str, object, object, str)
    # Emitted in the GUI thread once a translation (finished or stopped) is shown and its terms checked.
    translationFinished = Signal(object)

    def __init__(self, settings: AppSettings | None = None, model: str | None = None, autoload: bool = True,
                 attention: bool = True):
        super().__init__()
        self.settings = settings or AppSettings()
        self.controller = EngineController(log_source_text=self.settings.log_source_text(), parent=self)
        if (app := QCoreApplication.instance()) is not None:
            # app.exit() closes no window, so closeEvent alone would leave the engine thread running.
            app.aboutToQuit.connect(self.controller.shutdown)
        self.glossary: Glossary | None = None
        self.glossary_files: list[str] = []
        self.result: TranslationResult | None = None
        self.result_source = ""
        self.checks: list[TermCheck] = []
        self.flags: list[RedFlag] = []
        self.inconsistencies: list[Inconsistency] = []
        # Terms the reviewer accepted for the current translation: (source term, expected forms).
        self.accepted_terms: set[tuple[str, tuple[str, ...]]] = set()
        self.request_id = 0
        self.model_path: str | None = None
        self.model_info: ModelInfo | None = None
        self.last_error = ""
        self.max_new_tokens: int | None = None
        self._t_first: float | None = None
        self._pieces = 0
        self._busy = False
        # Segments side by side: each one's text in its place as it comes (None: the pane streams in order).
        self._view: DocumentView | None = None
        self.setWindowTitle("TSX-MedTrans")
        self.resize(1200, 720)
        self._build_ui()
        self._connect()
        self.attention = None
        if attention:
            self._attach_attention()
        # The default medical glossary loads from the first start; the user's files come on top.
        self.load_glossaries([f for f in self.settings.glossaries() if Path(f).exists()])
        initial = model or self.settings.current_model()
        if initial:
            self._select_model_in_combo(initial)
            if autoload:
                self.load_model(initial)
        else:
            self.show_error(self.tr("No model installed: run `tsx-models fetch` or choose a GGUF file."))
        self._update_buttons()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        tb = QToolBar(self.tr("Main"), self)
        tb.setObjectName("main_toolbar")
        self.addToolBar(tb)
        self.act_open = QAction(self.tr("Open…"), self, shortcut=QKeySequence.StandardKey.Open)
        self.act_save = QAction(self.tr("Save translation…"), self, shortcut=QKeySequence.StandardKey.Save)
        self.act_export = QAction(self.tr("Export with term report…"), self)
        self.act_glossary = QAction(self.tr("Load glossary…"), self)
        self.act_clear_glossary = QAction(self.tr("Clear glossary"), self)
        self.act_default_glossary = QAction(self.tr("Medical glossary"), self, checkable=True)
        self.act_default_glossary.setToolTip(self.tr("The shipped medical glossary (HPO, TICO-19, CC-CEDICT); "
                                                     "your own term lists come on top"))
        self.act_default_glossary.setChecked(self.settings.use_default_glossary())
        self.act_model_file = QAction(self.tr("Choose GGUF…"), self)
        self.act_model_settings = QAction(self.tr("Model settings…"), self)
        # A tuned model's adapters off: the bundled base translates alone (for comparison). No reload.
        self.act_base_only = QAction(self.tr("Base model only"), self, checkable=True)
        self.act_base_only.setToolTip(self.tr("Translate with the base model, without the tuned model's adapters"))
        self.act_base_only.setEnabled(False)
        # The glossary's terms in the prompt as required translations (the contract's term block).
        self.act_term_block = QAction(self.tr("Require glossary terms"), self, checkable=True)
        self.act_term_block.setToolTip(self._term_block_tip(True))
        self.act_term_block.setChecked(self.settings.term_block())
        self.act_translate = QAction(self.tr("Translate"), self)
        self.act_translate.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.act_translate.setToolTip(self.tr("Translate (Ctrl+Enter)"))
        self.act_stop = QAction(self.tr("Stop"), self, shortcut=QKeySequence("Escape"))
        self.act_copy = QAction(self.tr("Copy"), self)
        self.act_clear = QAction(self.tr("Clear"), self)
        self.model_combo = QComboBox(self)
        self.model_combo.setMinimumWidth(220)
        self.model_combo.setToolTip(self.tr("Model"))
        self.direction_combo = QComboBox(self)
        for label, value in ((self.tr("Auto"), "auto"), ("中文 → English", "zh-en"), ("English → 中文", "en-zh")):
            self.direction_combo.addItem(label, value)
        self.detected_label = QLabel(self)
        for item in (self.act_open, self.act_save, self.act_export, None, self.model_combo, self.act_model_file,
                     self.act_model_settings, self.act_base_only, None, self.act_default_glossary, self.act_glossary, self.act_clear_glossary, self.act_term_block, None,
                     self.direction_combo, self.detected_label, None, self.act_translate, self.act_stop,
                     self.act_copy, self.act_clear):
            if item is None:
                tb.addSeparator()
            elif isinstance(item, QAction):
                tb.addAction(item)
            else:
                tb.addWidget(item)

        self.banner = QLabel(self)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#ffe0dc;color:#7a1000;padding:6px;border:1px solid #e0a090;")
        self.banner.hide()
        self.source = QPlainTextEdit(self)
        self.source.setPlaceholderText(self.tr("Paste or open medical text (Chinese or English)…"))
        self.target = QPlainTextEdit(self)
        self.target.setReadOnly(True)
        self.target.setPlaceholderText(self.tr("The translation appears here."))
        for edit in (self.source, self.target):
            font = edit.font()
            font.setPointSize(12)
            edit.setFont(font)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.source)
        splitter.addWidget(self.target)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(splitter)
        self.setCentralWidget(central)

        self.panel = GlossaryPanel(self)
        self.panel_dock = QDockWidget(self.tr("Terms"), self)
        self.panel_dock.setObjectName("terms_dock")
        self.panel_dock.setWidget(self.panel)
        self.panel.setMinimumWidth(380)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel_dock)

        self.model_label = QLabel(self.tr("No model"), self)
        self.speed_label = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setValue(0)
        status = self.statusBar()
        status.addPermanentWidget(self.speed_label)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.model_label)

        self._highlight_timer = QTimer(self)
        self._highlight_timer.setSingleShot(True)
        self._highlight_timer.setInterval(250)

    def _connect(self) -> None:
        w = self.controller.worker
        w.loadProgress.connect(self._on_load_progress)
        w.loaded.connect(self._on_loaded)
        w.loadFailed.connect(self._on_load_failed)
        w.token.connect(self._on_token)
        w.planned.connect(self._on_planned)
        w.segmentPiece.connect(self._on_segment_piece)
        w.progress.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        self.controller.hashed.connect(self._on_hashed)
        self.act_translate.triggered.connect(self.translate)
        self.act_stop.triggered.connect(self.stop)
        self.act_copy.triggered.connect(self.copy_translation)
        self.act_clear.triggered.connect(self.clear)
        self.act_open.triggered.connect(self._open_dialog)
        self.act_save.triggered.connect(self._save_dialog)
        self.act_export.triggered.connect(self._export_dialog)
        self.act_glossary.triggered.connect(self._glossary_dialog)
        self.act_clear_glossary.triggered.connect(self.clear_glossaries)
        self.act_default_glossary.toggled.connect(self.set_default_glossary)
        self.panel.acceptRequested.connect(self.accept_term)
        self.panel.addRequested.connect(self._add_term_dialog)
        self.panel.flagActivated.connect(self.select_flag)
        self.act_model_file.triggered.connect(self._model_file_dialog)
        self.act_model_settings.triggered.connect(self._model_settings_dialog)
        self.act_base_only.toggled.connect(self.set_base_only)
        self.act_term_block.toggled.connect(self.set_term_block)
        self.controller.worker.adaptersChanged.connect(self._on_adapters_changed)
        self.model_combo.activated.connect(self._on_model_combo)
        self.direction_combo.currentIndexChanged.connect(lambda _i: self._refresh_source_terms())
        self.source.textChanged.connect(self._highlight_timer.start)
        self._highlight_timer.timeout.connect(self._refresh_source_terms)
        self.source.cursorPositionChanged.connect(self._on_source_cursor)
        self.target.cursorPositionChanged.connect(self._on_target_cursor)
        self.panel.termActivated.connect(self.select_term)

    def _attach_attention(self) -> None:
        if AttentionDock is None:
            return
        try:
            self.attention = AttentionDock(self)
        except Exception as exc:  # noqa: BLE001
            log.warning("attention view unavailable: %s", exc)
            self.attention = None
            return
        dock = QDockWidget(self.tr("Attention"), self)
        dock.setObjectName("attention_dock")
        dock.setWidget(self.attention)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.attention_dock = dock
        self.termSelected.connect(self._show_attention)

    @Slot(str, str, object, object, str)
    def _show_attention(self, source, translation, src_span, tgt_span, direction) -> None:
        if self.attention is not None and self.model_path:
            # The attention engine runs what translated: the chosen model (a tuned model's spec brings its
            # runtime adapters) with the same weight-repacking setting.
            if hasattr(self.attention, "set_repack"):
                self.attention.set_repack(self.settings.load_options(self.model_path).repack)
            # ... and the prompt that translated: the same term block when glossary terms were required.
            glossary = self.glossary if self._term_block_in_use() else None
            terms = block_terms(glossary, normalize(source, split_direction(direction)[0]), direction)
            self.attention.show_term(source, translation, src_span, tgt_span, direction, self.model_path, terms)

    def _update_buttons(self) -> None:
        ready = self.model_info is not None
        self.act_translate.setEnabled(ready)
        self.act_stop.setEnabled(self._busy)
        has_output = bool(self.target.toPlainText())
        self.act_copy.setEnabled(has_output)
        self.act_save.setEnabled(has_output and not self._busy)
        self.act_export.setEnabled(self.result is not None and not self._busy)
        readable = self._model_reads_term_block()
        self.act_term_block.setEnabled(readable)
        self.act_term_block.setToolTip(self._term_block_tip(readable))

    def _model_reads_term_block(self) -> bool:
        """Whether the translating model was trained with the term block (a tuned model's active adapters)."""
        info = self.model_info
        return info is not None and info.adapters_active and reads_term_block(info.adapters)

    def _term_block_in_use(self) -> bool:
        """What the engine does in its "auto" mode: the term block only for a model trained with it."""
        return self.act_term_block.isChecked() and self._model_reads_term_block()

    def _term_block_tip(self, readable: bool) -> str:
        if readable or self.model_info is None:
            return self.tr("Give the model the loaded glossary's translations of the terms in each sentence as "
                           "required translations (models trained with them only)")
        return self.tr("This model was not trained with required glossary terms in its prompt: base models "
                       "copy the list instead of translating, so the terms are only checked")

    def show_error(self, message: str) -> None:
        self.last_error = message
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message, 15000)

    def clear_error(self) -> None:
        self.last_error = ""
        self.banner.hide()

    # ------------------------------------------------------------------ models
    def _select_model_in_combo(self, path: str) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        entries = self.settings.known_models()
        if path and str(Path(path).expanduser().resolve()) not in [p for _, p in entries]:
            entries.append((Path(path).name, str(Path(path).expanduser().resolve())))
        for label, p in entries:
            self.model_combo.addItem(label, p)
        idx = self.model_combo.findData(str(Path(path).expanduser().resolve())) if path else -1
        if idx >= 0:
            self.model_combo.setCurrentIndex(idx)
        self.model_combo.blockSignals(False)

    def load_model(self, path: str) -> None:
        """Check the file's header here (instant, clear message), then load on the worker thread."""
        from medcore.modelspec import resolve

        self.model_info = None
        self._update_buttons()
        try:  # a GGUF, a bundled model name, or a tuned-model spec (its base GGUF is checked here)
            resolved = resolve(os.path.expanduser(str(path)))
            info = read_gguf_info(resolved.base)
        except ModelError as exc:
            self.show_error(self.tr("Cannot use this model: %1").replace("%1", str(exc)))
            self.model_label.setText(self.tr("No model"))
            return
        self.clear_error()
        self.model_path = str(resolved.source.resolve())
        self.model_label.setText(self.tr("Loading %1…").replace("%1", resolved.spec.name if resolved.spec else info.name))
        self.progress.setRange(0, 100)
        self.controller.load(self.model_path, self.settings.load_options(self.model_path))

    @Slot(int, str)
    def _on_load_progress(self, percent: int, stage: str) -> None:
        self.progress.setValue(percent)
        self.progress.setFormat(f"{stage} %p%")

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        source = info.source or info.path
        if self.model_path != str(source):
            return  # a newer load replaced this one
        self.model_info = info
        self.settings.set_current_model(source)
        self._select_model_in_combo(str(source))
        self.act_base_only.blockSignals(True)
        self.act_base_only.setChecked(False)  # a freshly loaded tuned model translates with its adapters
        self.act_base_only.blockSignals(False)
        self.act_base_only.setEnabled(bool(info.adapters))
        self._show_model_label()
        self.progress.setFormat("%p%")
        self.statusBar().showMessage(self.tr("Model loaded in %1 s").replace("%1", f"{info.load_seconds:.1f}"), 5000)
        self._update_buttons()

    def _show_model_label(self) -> None:
        info = self.model_info
        if info is None:
            return
        name = info.spec or info.name
        if info.adapters and not info.adapters_active:
            name = self.tr("%1 (base model only)").replace("%1", name)
        self.model_label.setText(f"{name} · ctx {info.n_ctx}")
        tip = [str(info.source or info.path)]
        if info.adapters:
            tip.append(f"base {info.path}")
            tip += [f"adapter {a['file']} (stage {a['stage']}) sha256 {a['sha256'][:16]}" for a in info.adapters]
        self.model_label.setToolTip("\n".join(tip))

    @Slot(bool)
    def set_base_only(self, enabled: bool) -> None:
        """Translate with the base model alone (True) or with the tuned model's adapters (False)."""
        if self.model_info is None or not self.model_info.adapters:
            return
        if self.act_base_only.isChecked() != enabled:
            self.act_base_only.setChecked(enabled)  # re-enters through toggled
            return
        self.controller.set_adapters_active(not enabled)

    @Slot(bool)
    def _on_adapters_changed(self, active: bool) -> None:
        if self.model_info is not None:
            self.model_info.adapters_active = active
            self._show_model_label()
            self._update_buttons()
            self.statusBar().showMessage(self.tr("Translating with the tuned model") if active
                                         else self.tr("Translating with the base model only"), 5000)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.model_info = None
        self.model_label.setText(self.tr("No model"))
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.show_error(self.tr("Cannot use this model: %1").replace("%1", message))
        self._update_buttons()

    @Slot(str, str)
    def _on_hashed(self, path: str, digest: str) -> None:
        if self.model_info is not None and str(self.model_info.path) == path:
            self.model_label.setToolTip(f"{self.model_label.toolTip()}\nsha256 {digest}")

    def _on_model_combo(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path and path != self.model_path:
            self.load_model(path)

    def _model_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Choose a GGUF model"), "", self.tr("GGUF models (*.gguf);;All files (*)"))
        if path:
            self.load_model(path)

    def _model_settings_dialog(self) -> None:
        if not self.model_path:
            return
        dialog = ModelSettingsDialog(Path(self.model_path).name, self.settings.load_options(self.model_path),
                                     self.settings.log_source_text(), self)
        if dialog.exec():
            self.settings.set_load_options(self.model_path, dialog.options())
            self.settings.set_log_source_text(dialog.log_text.isChecked())
            self.controller.set_log_source_text(dialog.log_text.isChecked())
            self.load_model(self.model_path)

    # ------------------------------------------------------------------ glossary
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
            self.show_error(self.tr("Cannot read the glossary: %1").replace("%1", str(exc)))
            return False
        self.glossary = glossary
        self.glossary_files = files
        self.settings.set_glossaries(self.glossary_files)
        names = ([self.tr("default medical glossary")] if use_default else []) + [Path(p).name for p in files + extra]
        self.panel.set_glossary_files(names, len(glossary) if glossary else 0)
        self._send_term_glossary()
        self._refresh_terms()
        return True

    def set_term_block(self, enabled: bool) -> None:
        """Glossary terms in the prompt on or off; applies from the next translation."""
        self.settings.set_term_block(enabled)
        self._send_term_glossary()

    def _send_term_glossary(self) -> None:
        self.controller.set_term_glossary(self.glossary if self.act_term_block.isChecked() else None)

    def glossary_names(self) -> list[str]:
        """What the provenance records: the default glossary's name, then the user's files."""
        return ([DEFAULT_NAME] if self.settings.use_default_glossary() else []) + list(self.glossary_files)

    @Slot(bool)
    def set_default_glossary(self, enabled: bool) -> None:
        self.settings.set_use_default_glossary(enabled)
        if self.act_default_glossary.isChecked() != enabled:
            self.act_default_glossary.blockSignals(True)
            self.act_default_glossary.setChecked(enabled)
            self.act_default_glossary.blockSignals(False)
        self.load_glossaries(self.glossary_files)

    def clear_glossaries(self) -> None:
        """No glossary at all: the default one off and the user's lists unloaded."""
        self.settings.set_use_default_glossary(False)
        self.act_default_glossary.blockSignals(True)
        self.act_default_glossary.setChecked(False)
        self.act_default_glossary.blockSignals(False)
        self.load_glossaries([])

    # ------------------------------------------------------------------ per-term review
    def _term_key(self, check: TermCheck) -> tuple[str, tuple[str, ...]]:
        return check.hit.span.text, tuple(check.expected)

    @Slot(int)
    def accept_term(self, row: int) -> None:
        """The reviewer accepts the model's wording of term ``row`` for this translation."""
        if not 0 <= row < len(self.checks) or self.result is None:
            return
        self.accepted_terms.add(self._term_key(self.checks[row]))
        self._refresh_terms()
        self.panel.select_row(row)

    def add_term_to_user_glossary(self, row: int, wording: str) -> bool:
        """Save ``wording`` as the translation of term ``row`` in the user's own glossary file (atomic write)."""
        if not 0 <= row < len(self.checks) or not wording.strip():
            return False
        check = self.checks[row]
        src, _ = split_direction(self.result.direction if self.result is not None else self.direction())
        zh, en = (check.hit.span.text, wording) if src == "zh" else (wording, check.hit.span.text)
        path = user_glossary_path()
        try:
            added = add_user_term(path, zh, en)
        except (GlossaryError, DataFormatError, OSError) as exc:
            self.show_error(self.tr("Cannot save to your glossary: %1").replace("%1", str(exc)))
            return False
        self.statusBar().showMessage((self.tr("Added to %1") if added else self.tr("Already in %1")).replace(
            "%1", str(path)), 8000)
        return self.load_glossaries(self.glossary_files)

    @Slot(int)
    def _add_term_dialog(self, row: int) -> None:
        if not 0 <= row < len(self.checks):
            return
        # The wording the reviewer selected in the translation, else ask for it.
        wording = self.target.textCursor().selectedText().strip()
        if not wording:
            wording, ok = QInputDialog.getText(self, self.tr("Add to my glossary"), self.tr(
                "Translation of %1 to save in your glossary:").replace("%1", self.checks[row].hit.span.text))
            if not ok:
                return
        self.add_term_to_user_glossary(row, wording)

    def _glossary_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, self.tr("Load term lists"), "",
                                                self.tr("Term lists (*.tsv *.csv *.xlsx *.jsonl *.txt);;All files (*)"))
        if paths:
            self.load_glossaries(sorted(set(self.glossary_files) | set(paths)))

    # ------------------------------------------------------------------ terms and highlighting
    def direction(self) -> str:
        value = self.direction_combo.currentData()
        return auto_direction(self.source.toPlainText()) if value == "auto" else value

    def _refresh_source_terms(self) -> None:
        text = self.source.toPlainText()
        if self.direction_combo.currentData() == "auto":
            self.detected_label.setText(f" {self.direction().replace('-', '→')} " if text.strip() else "")
        else:
            self.detected_label.setText("")
        if self.result is not None and text != self.result_source:
            self.result = None  # the source changed: the old term report no longer applies
            self.accepted_terms.clear()
        self._refresh_terms()

    def _refresh_terms(self) -> None:
        source = self.source.toPlainText()
        translated = self.result is not None and not self._busy
        translation = self.result.translation if translated else ""
        direction = self.result.direction if translated else self.direction()
        self.checks = term_checks(self.glossary, source, translation, direction)
        for check in self.checks:
            check.accepted = self._term_key(check) in self.accepted_terms
        self.flags = red_flags(self.result.segments, direction) if translated else []
        self.inconsistencies = term_consistency(self.glossary, source, translation, direction) if translated else []
        self.panel.set_checks(self.checks, translated)
        self.panel.set_flags(self.flags, self.inconsistencies, translated)
        colours = {"ok": OK_COLOR, "missing": MISSING_COLOR, "accepted": ACCEPTED_COLOR, "advisory": ADVISORY_COLOR}
        # Sentences with a red flag first, so the term highlights are painted over them.
        flagged_sentences = [(seg.start, seg.end, FLAG_COLOR) for seg in self.flagged_segments()]
        self._paint(self.source, flagged_sentences + [
            (c.hit.span.start, c.hit.span.end, PENDING_COLOR if not translated else colours[c.status])
            for c in self.checks])
        target_spans = [(c.found.start, c.found.end, OK_COLOR) for c in self.checks if translated and c.found]
        self._paint(self.target, target_spans)
        self._update_buttons()

    def _paint(self, edit: QPlainTextEdit, spans: list[tuple[int, int, QColor]]) -> None:
        text = edit.toPlainText()
        selections = []
        for start, end, color in spans:
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setBackground(color)
            if color == MISSING_COLOR:
                fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
                fmt.setUnderlineColor(QColor("#c00000"))
            cursor = QTextCursor(edit.document())
            cursor.setPosition(py_to_qt(text, start))
            cursor.setPosition(py_to_qt(text, end), QTextCursor.MoveMode.KeepAnchor)
            sel.cursor, sel.format = cursor, fmt
            selections.append(sel)
        edit.setExtraSelections(selections)

    def flagged_segments(self) -> list:
        """The engine's segments (sentences) that carry a red flag."""
        if self.result is None:
            return []
        indexes = {f.segment for f in self.flags if f.segment is not None}
        return [seg for i, seg in enumerate(self.result.segments) if i in indexes]

    @Slot(int)
    def select_flag(self, row: int) -> None:
        """Select the sentence of red flag ``row`` in the source pane."""
        if not 0 <= row < len(self.flags) or self.result is None or self.flags[row].segment is None:
            return
        seg = self.result.segments[self.flags[row].segment]
        text = self.source.toPlainText()
        cursor = QTextCursor(self.source.document())
        cursor.setPosition(py_to_qt(text, seg.start))
        cursor.setPosition(py_to_qt(text, seg.end), QTextCursor.MoveMode.KeepAnchor)
        self.source.setTextCursor(cursor)

    def highlighted_spans(self, which: str) -> list[tuple[int, int, str]]:
        """(start, end, colour name) of the highlights in 'source' or 'target' (Python indices)."""
        edit = self.source if which == "source" else self.target
        text = edit.toPlainText()
        out = []
        for sel in edit.extraSelections():
            out.append((qt_to_py(text, sel.cursor.selectionStart()), qt_to_py(text, sel.cursor.selectionEnd()),
                        sel.format.background().color().name()))
        return out

    def _on_source_cursor(self) -> None:
        text = self.source.toPlainText()
        pos = qt_to_py(text, self.source.textCursor().position())
        for row, check in enumerate(self.checks):
            if check.hit.span.start <= pos < check.hit.span.end:
                self.select_term(row)
                return

    def _on_target_cursor(self) -> None:
        if self.result is None or self._busy:
            return
        text = self.target.toPlainText()
        pos = qt_to_py(text, self.target.textCursor().position())
        for row, check in enumerate(self.checks):
            if check.found is not None and check.found.start <= pos < check.found.end:
                self.select_term(row)
                return

    @Slot(int)
    def select_term(self, row: int) -> None:
        """The hook for the attention view: emits ``termSelected`` for term ``row``."""
        if not 0 <= row < len(self.checks):
            return
        check = self.checks[row]
        self.panel.select_row(row)
        translated = self.result is not None and not self._busy
        tgt_span = (check.found.start, check.found.end) if translated and check.found else None
        self.termSelected.emit(self.source.toPlainText(), self.result.translation if translated else "",
                               (check.hit.span.start, check.hit.span.end), tgt_span,
                               self.result.direction if translated else self.direction())

    # ------------------------------------------------------------------ translation
    def translate(self) -> int | None:
        text = self.source.toPlainText()
        if self.model_info is None:
            self.show_error(self.tr("Load a model first."))
            return None
        if not text.strip():
            return None
        self.clear_error()
        direction = self.direction()
        self.result, self.result_source = None, ""
        self.accepted_terms.clear()
        self.target.clear()
        self._view = None
        self._busy = True
        self._pieces, self._t_first, self._t_start = 0, None, time.perf_counter()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.speed_label.setText("")
        self.request_id = self.controller.translate(text, direction, self.max_new_tokens)
        self._refresh_terms()
        self.statusBar().showMessage(self.tr("Translating…"))
        return self.request_id

    def stop(self) -> None:
        if self._busy:
            self.controller.stop()
            self.statusBar().showMessage(self.tr("Stopping…"))

    @Slot(int, object)
    def _on_planned(self, request_id: int, plan) -> None:
        if request_id != self.request_id:
            return
        if plan.parallel > 1:  # segments finish out of order: show each in its place, "…" until it starts
            self._view = DocumentView(plan.separators)
            self.target.setPlainText(self._view.text())

    @Slot(int, int, str)
    def _on_segment_piece(self, request_id: int, index: int, piece: str) -> None:
        if request_id != self.request_id or self._view is None:
            return
        before = self._view.text()
        offset, remove, text = self._view.add(index, piece)
        start = py_to_qt(before, offset)
        cursor = QTextCursor(self.target.document())
        cursor.setPosition(start)
        cursor.setPosition(py_to_qt(before, offset + remove), QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text)
        self._count_piece()

    def _count_piece(self) -> None:
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now
        self._pieces += 1
        if self._pieces > 1 and now > self._t_first:
            self.speed_label.setText(self.tr("%1 tok/s").replace("%1", f"{(self._pieces - 1) / (now - self._t_first):.1f}"))
        self.act_copy.setEnabled(True)

    @Slot(int, str)
    def _on_token(self, request_id: int, piece: str) -> None:
        if request_id != self.request_id or self._view is not None:  # side by side: _on_segment_piece shows it
            return
        now = time.perf_counter()
        if self._t_first is None:
            self._t_first = now
        self._pieces += 1
        cursor = QTextCursor(self.target.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.target.ensureCursorVisible()
        if self._pieces > 1 and now > self._t_first:
            self.speed_label.setText(self.tr("%1 tok/s").replace("%1", f"{(self._pieces - 1) / (now - self._t_first):.1f}"))
        self.act_copy.setEnabled(True)

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
        self._view = None
        self.result, self.result_source = result, result.source
        if self.target.toPlainText() != result.translation:  # belt and braces: show exactly the result
            self.target.setPlainText(result.translation)
        self.speed_label.setText(self.tr("%1 tok/s").replace("%1", f"{result.tokens_per_second:.1f}"))
        if result.cancelled:
            self.statusBar().showMessage(self.tr("Stopped: the translation is incomplete."))
        else:
            self.statusBar().showMessage(self.tr("Done: %1 tokens in %2 s").replace("%1", str(result.generated_tokens)).replace(
                "%2", f"{result.seconds:.1f}"), 10000)
        if result.warnings:
            self.show_error("\n".join(result.warnings))
        self._refresh_terms()
        self.translationFinished.emit(result)

    @Slot(int, str)
    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self.request_id:
            return
        self._busy = False
        self._view = None
        self.show_error(self.tr("Translation failed: %1").replace("%1", message))
        self._update_buttons()

    @property
    def busy(self) -> bool:
        return self._busy

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
        self.clear_error()
        self._refresh_terms()

    # ------------------------------------------------------------------ files
    def open_file(self, path: str) -> bool:
        try:
            text, encoding = read_source_file(path)
        except (DocumentError, OSError) as exc:
            self.show_error(str(exc))
            return False
        self.source.setPlainText(text)
        self.statusBar().showMessage(self.tr("Opened %1 (%2)").replace("%1", Path(path).name).replace("%2", encoding), 5000)
        self._refresh_source_terms()
        return True

    def save_translation(self, path: str) -> None:
        write_text(path, self.target.toPlainText().rstrip("\n") + "\n")

    def payload(self) -> dict:
        """The translation with its term report, stats and provenance (what Export writes)."""
        if self.result is None or self.model_info is None:
            raise RuntimeError("no finished translation to export")
        path = str(self.model_info.path)
        digest = self.controller.model_sha256.get(path) or model_sha256(path)
        provenance = build_provenance(path, self.model_info.name, self.glossary_names(), self.result.direction,
                                      self.model_info.options.to_dict(), sha256=digest, model=self.result.model)
        return report_payload(self.result.source, self.result.translation, self.result.direction, self.checks,
                              provenance, self.result.stats(), self.result.warnings, self.result.cancelled,
                              self.flags, self.inconsistencies)

    def export_report(self, path: str) -> None:
        export(path, self.payload())

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Open text"), "", self.tr("Text files (*.txt);;All files (*)"))
        if path:
            self.open_file(path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Save translation"), "translation.txt", self.tr("Text files (*.txt)"))
        if path:
            self.save_translation(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export translation with term report"), "translation-report.txt",
                                              self.tr("Text report (*.txt);;JSON (*.json)"))
        if path:
            self.export_report(path)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.controller.shutdown()
        # The attention view's web page must go before QtWebEngine's profile, or the process
        # crashes at exit: let it tear itself down now, while the window still exists.
        if self.attention is not None and hasattr(self.attention, "shutdown"):
            self.attention.shutdown()
        self.settings.sync()
        super().closeEvent(event)
