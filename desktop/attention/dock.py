"""The attention pane of the desktop app: one click on a highlighted term -> what the model looked at.

The main window owns an :class:`AttentionDock` (put it in a ``QDockWidget`` or a side pane) and
calls :meth:`AttentionDock.show_term` when the user clicks a term in a translation. Work runs on
an :class:`~desktop.attention.worker.AttentionWorker` thread with a busy bar; the term view is
built first (it is what the click asked for), then the BertViz head/model views in the
background. Results are cached per (model, adapters, pair) by the engine and per request here.

Signals for the main window:

* ``alignmentReady(dict)``: the term's alignment summary (``TermAlignment.to_dict()`` plus
  ``source``/``translation``/``direction``), e.g. to flag the term when ``weak`` is true;
* ``termsChecked(list)``: answer to :meth:`check_terms` (one summary per term);
* ``viewShown(str, float)``: a view was drawn, and the seconds since the click;
* ``failed(str)``: a readable error.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from desktop.attention.engine import AttentionEngine
from desktop.attention.llama_engine import LlamaAttentionEngine
from desktop.attention.session import VIEWS, ViewPages, ViewRequest, build_views
from desktop.attention.view import AttentionView
from desktop.attention.worker import AttentionWorker

log = logging.getLogger(__name__)

VIEW_TITLES = {"term": "Term", "head": "Head view", "model": "Model view"}


class AttentionDock(QWidget):
    alignmentReady = Signal(dict)
    termsChecked = Signal(list)
    viewShown = Signal(str, float)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, adapters: Sequence[str] = (),
                 base_model: str | None = None,
                 engine_factory: Callable[[str, list[str], str | None], AttentionEngine] | None = None,
                 threads: int | None = 1):
        super().__init__(parent)
        self.setObjectName("AttentionDock")
        self._adapters = [str(a) for a in adapters]
        self._base_model = base_model
        # The app's engine: attention captured from llama.cpp on the weights that translate (no torch).
        # One llama.cpp thread by default: measured on this project's 2-core machine busy with other work
        # (load ~7), one capture of an 85-token pair took 1.7 s (0.5B) / 3.5 s (1.5B) with 1 thread and
        # 3.8-6.2 s / 5.3-8.5 s with 2 (ggml's threads wait for each other at every captured layer).
        self._engine_factory = engine_factory or (
            lambda model, adapters, base: LlamaAttentionEngine(model, adapters=adapters, base_model=base,
                                                               threads=threads))
        self._engine: AttentionEngine | None = None
        self._engine_key: tuple | None = None
        self._work_dir = Path(tempfile.mkdtemp(prefix="tsx-attention-"))
        self._request: ViewRequest | None = None
        self._pages: dict[str, Path] = {}
        self._latest_job = 0
        self._clicked_at = 0.0
        self._view_name = "term"
        self.last_latency: dict[str, float] = {}
        self.last_alignment: dict | None = None
        self.last_timings: dict[str, float] = {}

        self.worker = AttentionWorker(self)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_job.connect(self._on_finished)
        self.worker.failed_job.connect(self._on_failed)
        self.worker.busy.connect(self._on_busy)

        self.tabs = QTabBar(self)
        for view in VIEWS:
            self.tabs.addTab(VIEW_TITLES[view])
        self.tabs.currentChanged.connect(self._on_tab)
        self.compare = QCheckBox("Compare with base model", self)
        self.compare.setToolTip("Show the same term view from the base weights (adapters disabled), side by side")
        self.compare.toggled.connect(self._on_compare)
        self.export_html_button = QPushButton("Export HTML…", self)
        self.export_html_button.clicked.connect(self._ask_export_html)
        self.export_png_button = QPushButton("Export PNG…", self)
        self.export_png_button.clicked.connect(self._ask_export_png)
        self.status = QLabel("Click a highlighted term in a translation to see what the model attended to.", self)
        self.status.setWordWrap(True)
        self.warning = QLabel(self)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #a04000; font-weight: bold;")
        self.warning.hide()
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)  # indeterminate: a forward pass reports no fraction
        self.busy_bar.setMaximumHeight(6)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.view = AttentionView(self)
        self.view.pageReady.connect(self._on_page_ready)
        # A quit that closes no window (app.exit()) still stops the worker and removes the temp pages;
        # the view's page has gone already then (view.py's hook is connected first, by the view).
        QCoreApplication.instance().aboutToQuit.connect(self.shutdown)

        top = QHBoxLayout()
        top.addWidget(self.tabs, 1)
        top.addWidget(self.compare)
        top.addWidget(self.export_html_button)
        top.addWidget(self.export_png_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.warning)
        layout.addWidget(self.view, 1)
        self._update_buttons()

    # -- configuration ---------------------------------------------------------------------------
    def set_adapters(self, adapters: Sequence[str]) -> None:
        """Extra GGUF LoRA files (training order) applied on top of the model (a tuned-model spec brings its own)."""
        self._adapters = [str(a) for a in adapters]
        self._engine_key = None

    def set_base_model(self, base_model: str | None) -> None:
        """Base model to compare with when the model has no adapters (e.g. a merged export)."""
        self._base_model = base_model
        self._engine_key = None

    def set_engine(self, engine: AttentionEngine) -> None:
        """Use a given engine (any object with the AttentionEngine shape) for every model path."""
        self._engine = engine
        self._engine_key = ("fixed",)

    def engine_for(self, model_path: str) -> AttentionEngine:
        key = (str(model_path), tuple(self._adapters), self._base_model)
        if self._engine_key == ("fixed",) and self._engine is not None:
            return self._engine
        if self._engine is None or self._engine_key != key:
            old = self._engine
            self._engine = self._engine_factory(str(model_path), list(self._adapters), self._base_model)
            self._engine_key = key
            if old is not None and hasattr(old, "close"):
                self.worker.submit(lambda progress: old.close(), replaceable=False)
        return self._engine

    def preload(self, model_path: str) -> None:
        """Load the model (and BertViz) in the background so the first click is fast."""
        engine = self.engine_for(model_path)

        def job(progress):
            if hasattr(engine, "load"):
                engine.load(progress)
            from desktop.attention.page import _bertviz_view

            _bertviz_view("head_view")  # compile the vendored BertViz view once
            return None

        self.worker.submit(job, replaceable=False)

    # -- the public entry point ------------------------------------------------------------------
    def show_term(self, source: str, translation: str, src_span: tuple[int, int] | None,
                  tgt_span: tuple[int, int] | None, direction: str, model_path: str,
                  terms: Sequence[tuple[str, str]] = ()) -> None:
        """Inspect a term: ``tgt_span`` in ``translation`` (and the expected ``src_span`` in the source).

        ``terms``: the term block the translation's prompt carried (the engine's ``prompt_terms``).
        """
        from medcore.prompt import DIRECTIONS, auto_direction

        if direction not in DIRECTIONS:
            direction = auto_direction(source)
        try:
            engine = self.engine_for(model_path)
        except (ValueError, OSError) as exc:  # e.g. PEFT directories given where GGUF LoRAs are needed
            self._on_failed(0, str(exc))
            return
        self._request = ViewRequest(source, translation, direction,
                                    tuple(tgt_span) if tgt_span is not None else None,
                                    tuple(src_span) if src_span is not None else None,
                                    compare=self.compare.isChecked() and engine.has_base,
                                    terms=tuple((str(a), str(b)) for a, b in terms))
        self._pages = {}
        self.last_latency = {}
        self._clicked_at = time.perf_counter()
        self.warning.hide()
        if tgt_span is None and self._view_name == "term":  # no term: BertViz's view of the pair
            self.tabs.blockSignals(True)
            self._set_tab("head")
            self.tabs.blockSignals(False)
            self._view_name = "head"
        self._start(engine, self._view_name)

    def check_terms(self, source: str, translation: str,
                    terms: Sequence[tuple[tuple[int, int] | None, tuple[int, int]]], direction: str,
                    model_path: str) -> None:
        """Align several terms of one translation (one forward pass); answers with ``termsChecked``."""
        from desktop.attention.alignment import align_term

        engine = self.engine_for(model_path)
        pairs = [(tuple(s) if s else None, tuple(t)) for s, t in terms]

        def job(progress):
            result = engine.compute(source, translation, direction, progress=progress)
            return ("check", [align_term(result, t, s).to_dict() for s, t in pairs])

        self.worker.submit(job, replaceable=False)

    # -- jobs ------------------------------------------------------------------------------------
    def _start(self, engine: AttentionEngine, view: str) -> None:
        request = self._request
        assert request is not None
        out = self._work_dir

        def job(progress, request=request, view=view):
            return ("views", build_views(engine, replace(request, views=(view,)), out, progress))

        self._latest_job = self.worker.submit(job)

    def _prefetch_rest(self) -> None:
        request, engine = self._request, self._engine
        if request is None or engine is None:
            return
        rest = tuple(v for v in VIEWS if v not in self._pages and (v != "term" or request.tgt_span is not None))
        if not rest:
            return
        out = self._work_dir

        def job(progress, request=request):
            return ("views", build_views(engine, replace(request, views=rest), out, None))

        self.worker.submit(job)

    def _on_finished(self, job_id: int, payload) -> None:
        kind, value = payload if isinstance(payload, tuple) else (None, payload)
        if kind == "check":
            self.termsChecked.emit(value)
            return
        if kind != "views":
            return
        pages: ViewPages = value
        if self._request is None or pages.request.source != self._request.source \
                or pages.request.translation != self._request.translation \
                or pages.request.tgt_span != self._request.tgt_span:
            return  # an answer to an older click
        self._pages.update(pages.paths)
        self.last_timings = dict(pages.timings)
        if pages.alignment is not None and "term" in pages.paths:
            summary = {**pages.alignment.to_dict(), "source": pages.request.source,
                       "translation": pages.request.translation, "direction": pages.request.direction}
            if pages.base_alignment is not None:
                summary["base"] = pages.base_alignment.to_dict()
            self.last_alignment = summary
            self.alignmentReady.emit(summary)
            if pages.alignment.weak:
                self.warning.setText(f"⚠ Weak alignment for “{pages.alignment.term}”: {pages.alignment.reason}. "
                                     "Check this term's translation.")
                self.warning.show()
        if self._view_name in pages.paths and self.view.current_path != pages.paths[self._view_name]:
            self._show(self._view_name)
        self._update_buttons()

    def _on_failed(self, job_id: int, message: str) -> None:
        self.status.setText(f"Attention failed: {message}")
        self.failed.emit(message)

    def _on_progress(self, job_id: int, message: str) -> None:
        self.status.setText(message + "…")

    def _on_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)

    def _show(self, view: str) -> None:
        path = self._pages.get(view)
        if path is None:
            return
        self.status.setText("Drawing the view…")
        self.view.show_file(path)

    def _on_page_ready(self, ok: bool) -> None:
        if self.view.current_path is None:
            return
        view = self.view.current_path.name.split("-", 1)[0]
        if ok and view not in self.last_latency and self._clicked_at:
            self.last_latency[view] = time.perf_counter() - self._clicked_at
            self.viewShown.emit(view, self.last_latency[view])
        request = self._request
        if request is not None:
            what = f"“{request.translation[request.tgt_span[0]:request.tgt_span[1]]}”" if request.tgt_span else "the pair"
            note = "" if ok else " (the page did not report it was drawn)"
            self.status.setText(f"{VIEW_TITLES.get(view, view)} for {what}{note}.")
        self._prefetch_rest()

    # -- tabs, compare, export -------------------------------------------------------------------
    def _set_tab(self, view: str) -> None:
        self.tabs.setCurrentIndex(VIEWS.index(view))

    def _on_tab(self, index: int) -> None:
        self._view_name = VIEWS[index]
        if self._request is None:
            return
        if self._view_name in self._pages:
            self._show(self._view_name)
        elif self._engine is not None and (self._view_name != "term" or self._request.tgt_span is not None):
            self._start(self._engine, self._view_name)

    def _on_compare(self, checked: bool) -> None:
        if self._request is None or self._engine is None:
            return
        self._request = replace(self._request, compare=checked and self._engine.has_base)
        self._pages.pop("term", None)
        if self._view_name == "term":
            self._clicked_at = time.perf_counter()
            self.last_latency.pop("term", None)
            self._start(self._engine, "term")

    def _update_buttons(self) -> None:
        has = self.view.current_path is not None or bool(self._pages)
        self.export_html_button.setEnabled(has)
        self.export_png_button.setEnabled(has)
        engine = self._engine
        self.compare.setEnabled(engine is None or engine.has_base)
        if engine is not None and not engine.has_base:
            self.compare.setToolTip("No base to compare with: load stage adapters or set a base model")

    def current_view(self) -> str:
        return self._view_name

    def current_page(self) -> Path | None:
        return self._pages.get(self._view_name)

    def export_html(self, path: str | Path) -> Path:
        """Save the current view as a standalone HTML file (works offline in a browser)."""
        page = self.current_page()
        if page is None:
            raise RuntimeError("nothing to export yet")
        shutil.copyfile(page, path)
        return Path(path)

    def export_png(self, path: str | Path, full_page: bool = True) -> Path:
        """Save the current view as a PNG picture.

        ``full_page``: the whole page as it opens, rendered in a separate hidden view (the pane's own
        view sits in a layout and cannot grow to the page's height); otherwise exactly what the pane
        shows now (hover state and chosen layer included, visible part only)."""
        if not full_page:
            return self.view.save_png(path, full_page=False)
        page = self.current_page()
        if page is None:
            raise RuntimeError("nothing to export yet")
        shot = AttentionView()
        shot.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        shot.resize(max(self.view.width(), 1000), 800)
        shot.show()
        try:
            if not shot.load_and_wait(page, timeout_ms=60000):
                raise RuntimeError("the page did not finish drawing")
            return shot.save_png(path)
        finally:
            shot.dispose()
            shot.deleteLater()

    def _ask_export_html(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export attention view", f"attention-{self._view_name}.html",
                                              "HTML (*.html)")
        if path:
            self.export_html(path)

    def _ask_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export attention view", f"attention-{self._view_name}.png",
                                              "PNG (*.png)")
        if path:
            self.export_png(path)

    # -- teardown --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the worker, delete the web page and remove the temporary pages. Idempotent."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.worker.stop()
        self.view.dispose()
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

