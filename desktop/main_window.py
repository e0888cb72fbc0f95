"""The main window: builds the panes, toolbar, term panel and status bar, and wires its parts.

The work is done by three parts, each with its own module:

* ``terms`` (:class:`desktop.term_highlighter.TermHighlighter`): glossaries, term checks and
  highlighting in both panes, term selection (the attention view's hook), per-term review;
* ``models`` (:class:`desktop.model_controller.ModelController`): the model list, loading, the
  base-only switch, model settings, the term block;
* ``documents`` (:class:`desktop.document_controller.DocumentController`): translating into the
  target pane as it streams, Stop, open / save / export.

Errors are shown in a banner above the panes (and the status bar), never in a modal box: a modal
dialog would stop a clinician mid-task and blocks headless tests.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.document_controller import DocumentController
from desktop.glossary_panel import GlossaryPanel
from desktop.model_controller import ModelController
from desktop.settings import AppSettings
from desktop.term_highlighter import TermHighlighter
from desktop.worker import EngineController

log = logging.getLogger("tsx_medtrans.window")

try:  # the attention view (another part of the app) is optional
    from desktop.attention.dock import AttentionDock
except Exception:  # noqa: BLE001 - any failure there must leave the translator usable
    AttentionDock = None


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, model: str | None = None, autoload: bool = True,
                 attention: bool = True, document: str | None = None):
        super().__init__()
        self.settings = settings or AppSettings()
        self.controller = EngineController(log_source_text=self.settings.log_source_text(), parent=self)
        if (app := QCoreApplication.instance()) is not None:
            # app.exit() closes no window, so closeEvent alone would leave the engine thread running.
            app.aboutToQuit.connect(self.controller.shutdown)
        self.last_error = ""
        self.setWindowTitle("TSX-MedTrans")
        self.resize(1200, 720)
        self._build_ui()
        self.models = ModelController(self.controller, self.settings, self.model_combo, self.model_label,
                                      self.progress, self.act_base_only, self.act_term_block, self)
        self.terms = TermHighlighter(self.source, self.target, self.panel, self.settings, self.act_default_glossary,
                                     lambda: self.documents.direction(), self)
        self.documents = DocumentController(self.controller, self.models, self.terms, self.source, self.target,
                                            self.direction_combo, self.detected_label, self.progress,
                                            self.speed_label, self)
        self._connect()
        self.attention = None
        if attention:
            self._attach_attention()
        # The default medical glossary loads from the first start; the user's files come on top.
        self.terms.load_glossaries([f for f in self.settings.glossaries() if Path(f).exists()])
        initial = model or self.settings.current_model()
        if initial:
            self.models.select_in_combo(initial)
            if autoload:
                self.models.load(initial)
        else:
            self.show_error(self.tr("No model installed: run `tsx-models fetch` or choose a GGUF file."))
        if document:  # `tsx-medtrans note.txt`, or the file manager's "Open with" (Exec=tsx-medtrans %F)
            self.documents.open_file(document)
        self.update_actions()

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
        self.act_model_file = QAction(self.tr("Choose GGUF…"), self)
        self.act_model_settings = QAction(self.tr("Model settings…"), self)
        # A tuned model's adapters off: the bundled base translates alone (for comparison). No reload.
        self.act_base_only = QAction(self.tr("Base model only"), self, checkable=True)
        self.act_base_only.setToolTip(self.tr("Translate with the base model, without the tuned model's adapters"))
        # The glossary's terms in the prompt as required translations (the contract's term block).
        self.act_term_block = QAction(self.tr("Require glossary terms"), self, checkable=True)
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
                     self.act_model_settings, self.act_base_only, None, self.act_default_glossary, self.act_glossary,
                     self.act_clear_glossary, self.act_term_block, None, self.direction_combo, self.detected_label,
                     None, self.act_translate, self.act_stop, self.act_copy, self.act_clear):
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
        for part in (self.terms, self.models, self.documents):
            part.error.connect(self.show_error)
            part.errorCleared.connect(self.clear_error)
            part.message.connect(self.statusBar().showMessage)
            part.changed.connect(self.update_actions)
        docs, terms, models = self.documents, self.terms, self.models
        self.act_translate.triggered.connect(docs.translate)
        self.act_stop.triggered.connect(docs.stop)
        self.act_copy.triggered.connect(docs.copy_translation)
        self.act_clear.triggered.connect(docs.clear)
        self.act_open.triggered.connect(docs.open_dialog)
        self.act_save.triggered.connect(docs.save_dialog)
        self.act_export.triggered.connect(docs.export_dialog)
        self.act_glossary.triggered.connect(terms.open_glossary_dialog)
        self.act_clear_glossary.triggered.connect(terms.clear_glossaries)
        self.act_model_file.triggered.connect(models.choose_file)
        self.act_model_settings.triggered.connect(models.edit_settings)
        terms.glossaryChanged.connect(models.set_term_glossary)
        self.direction_combo.currentIndexChanged.connect(lambda _i: docs.source_changed())
        self.source.textChanged.connect(self._highlight_timer.start)
        self._highlight_timer.timeout.connect(docs.source_changed)

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
        self.terms.termSelected.connect(self._show_attention)

    @Slot(str, str, object, object, str)
    def _show_attention(self, source, translation, src_span, tgt_span, direction) -> None:
        path = self.models.path
        if self.attention is not None and path:
            # The attention engine runs what translated: the chosen model (a tuned model's spec brings its
            # runtime adapters) with the same weight-repacking setting ...
            if hasattr(self.attention, "set_repack"):
                self.attention.set_repack(self.settings.load_options(path).repack)
            # ... and the prompt that translated: the same term block when glossary terms were required.
            terms = self.models.prompt_terms(source, direction)
            self._make_room_for_attention()
            self.attention.show_term(source, translation, src_span, tgt_span, direction, path, terms)

    def _make_room_for_attention(self) -> None:
        """A click on a term shows the dock, with room for the view: at its first size the dock is no
        taller than its tab bar, and the user may have closed it. A size the user chose is kept."""
        dock = self.attention_dock
        if dock.isHidden():
            dock.show()
        want = int(self.height() * 0.45)
        if dock.height() < want // 2:
            self.resizeDocks([dock], [want], Qt.Orientation.Vertical)

    def update_actions(self) -> None:
        """Enable what applies now: a loaded model, a running translation, an output, a finished one."""
        busy = self.documents.busy
        self.act_translate.setEnabled(self.models.info is not None)
        self.act_stop.setEnabled(busy)
        has_output = bool(self.target.toPlainText())
        self.act_copy.setEnabled(has_output)
        self.act_save.setEnabled(has_output and not busy)
        self.act_export.setEnabled(self.documents.result is not None and not busy)
        self.models.update_term_block_action()

    def show_error(self, message: str) -> None:
        self.last_error = message
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message, 15000)

    def clear_error(self) -> None:
        self.last_error = ""
        self.banner.hide()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.controller.shutdown()
        # The attention view's web page must go before QtWebEngine's profile, or the process
        # crashes at exit: let it tear itself down now, while the window still exists.
        if self.attention is not None and hasattr(self.attention, "shutdown"):
            self.attention.shutdown()
        self.settings.sync()
        super().closeEvent(event)
