"""The engine on a worker thread: the window never waits on llama.cpp.

``EngineController`` lives in the GUI thread and is what the window talks to. It forwards
requests to ``EngineWorker`` (moved to a ``QThread``) through queued signals and holds the cancel
flag of the running request, which it can set directly: the worker is busy inside the generation
loop and would not see a queued "stop" until it returned. Newest request wins: a new translation
(or a model load) cancels the running one, and the window ignores signals of older requests.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from runtime.engine import TranslationEngine
from runtime.errors import describe_exception
from runtime.model_hash import model_sha256
from runtime.options import LoadOptions, ModelInfo

log = logging.getLogger("tsx_medtrans.worker")


class EngineWorker(QObject):
    """Runs in the worker thread; every signal carries the id of the request it belongs to."""

    loadProgress = Signal(int, str)  # percent, stage
    loaded = Signal(object)  # ModelInfo
    loadFailed = Signal(str)
    progress = Signal(int, int, int)  # request id, segments done, segments total
    token = Signal(int, str)  # request id, text piece
    segmentDone = Signal(int, object)  # request id, SegmentResult
    planned = Signal(int, object)  # request id, TranslationPlan (segments, separators, sequences side by side)
    segmentPiece = Signal(int, int, str)  # request id, segment index, text piece (segments side by side interleave)
    finished = Signal(int, object)  # request id, TranslationResult
    failed = Signal(int, str)  # request id, message
    adaptersChanged = Signal(bool)  # the tuned model's adapters are now active (True) or off (False)

    def __init__(self, engine: TranslationEngine):
        super().__init__()
        self.engine = engine
        self.latest_id = 0  # written by the controller (GUI thread); an int store is atomic

    @Slot(str, object)
    def load(self, path: str, options: LoadOptions) -> None:
        try:
            info = self.engine.load(path, options, progress=self.loadProgress.emit)
        except Exception as exc:  # every failure must reach the user, never kill the thread
            log.warning("model load failed: %s", describe_exception(exc))
            self.loadFailed.emit(describe_exception(exc))
            return
        self.loaded.emit(info)

    @Slot(bool)
    def set_adapters_active(self, active: bool) -> None:
        """Queued behind any running translation, so a translation never changes weights halfway."""
        try:
            self.engine.set_adapters_active(active)
        except Exception as exc:  # report the state the engine is really in
            log.warning("could not switch the adapters: %s", describe_exception(exc))
        info = self.engine.info
        self.adaptersChanged.emit(bool(info is not None and info.adapters_active))

    @Slot(object)
    def set_term_glossary(self, glossary: object) -> None:
        """Queued like a translation, so a running translation keeps the prompts it started with."""
        self.engine.set_term_glossary(glossary)  # type: ignore[arg-type]

    @Slot(int, str, str, object, object)
    def translate(self, request_id: int, text: str, direction: str, cancel: threading.Event,
                  max_new_tokens: int | None) -> None:
        if request_id != self.latest_id:
            return  # a newer request arrived while this one waited in the queue
        try:
            result = self.engine.translate(
                text, direction, cancel=cancel, max_new_tokens=max_new_tokens,
                on_token=lambda piece: self.token.emit(request_id, piece),
                on_segment=lambda seg, total: self.segmentDone.emit(request_id, seg),
                on_progress=lambda done, total: self.progress.emit(request_id, done, total),
                on_plan=lambda plan: self.planned.emit(request_id, plan),
                on_segment_piece=lambda index, piece: self.segmentPiece.emit(request_id, index, piece),
            )
        except Exception as exc:
            log.warning("translation failed: %s", describe_exception(exc))
            self.failed.emit(request_id, describe_exception(exc))
            return
        self.finished.emit(request_id, result)


class EngineController(QObject):
    """GUI-thread facade: ``load``, ``translate`` (returns a request id), ``stop``, ``shutdown``."""

    _loadRequested = Signal(str, object)
    _translateRequested = Signal(int, str, str, object, object)
    _adaptersRequested = Signal(bool)
    _termGlossaryRequested = Signal(object)
    hashed = Signal(str, str)  # model path, sha256 (computed off the GUI thread after a load)

    def __init__(self, log_source_text: bool = False, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = TranslationEngine(log_source_text=log_source_text)
        self.worker = EngineWorker(self.engine)
        self.thread = QThread()
        self.thread.setObjectName("tsx-engine")
        self.worker.moveToThread(self.thread)
        self._loadRequested.connect(self.worker.load)
        self._translateRequested.connect(self.worker.translate)
        self._adaptersRequested.connect(self.worker.set_adapters_active)
        self._termGlossaryRequested.connect(self.worker.set_term_glossary)
        self.worker.loaded.connect(self._on_loaded)
        self._cancel = threading.Event()
        self._next_id = 0
        self.model_info: ModelInfo | None = None
        self.model_sha256: dict[str, str] = {}
        self.thread.start()

    @property
    def current_id(self) -> int:
        return self._next_id

    def set_log_source_text(self, enabled: bool) -> None:
        self.engine.log_source_text = bool(enabled)

    def load(self, path: str | Path, options: LoadOptions) -> None:
        self.stop()
        self._next_id += 1
        self.worker.latest_id = self._next_id
        self.model_info = None
        self._loadRequested.emit(str(path), options)

    def translate(self, text: str, direction: str, max_new_tokens: int | None = None) -> int:
        self.stop()  # newest request wins
        self._next_id += 1
        self._cancel = threading.Event()
        self.worker.latest_id = self._next_id
        self._translateRequested.emit(self._next_id, text, direction, self._cancel, max_new_tokens)
        return self._next_id

    def stop(self) -> None:
        self._cancel.set()

    def set_adapters_active(self, active: bool) -> None:
        """Tuned model's adapters on (True) or off: the base model alone translates (worker emits adaptersChanged)."""
        self._adaptersRequested.emit(bool(active))

    def set_term_glossary(self, glossary: object) -> None:
        """The glossary (a ``medcore.terms.Glossary``) whose terms later prompts require; None: plain prompts."""
        self._termGlossaryRequested.emit(glossary)

    def is_current(self, request_id: int) -> bool:
        return request_id == self._next_id

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        path = str(info.path)
        if path in self.model_sha256:
            self.hashed.emit(path, self.model_sha256[path])
            return

        def work() -> None:
            try:
                digest = model_sha256(path)
            except OSError as exc:
                log.warning("could not hash %s: %s", path, exc)
                return
            self.model_sha256[path] = digest
            self.hashed.emit(path, digest)

        threading.Thread(target=work, name="tsx-hash", daemon=True).start()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.stop()
        self.thread.quit()
        self.thread.wait(timeout_ms)
        self.engine.unload()
