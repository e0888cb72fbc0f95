"""A QThread that runs attention jobs off the UI thread, newest request first.

Jobs are plain callables ``fn(progress) -> result``. Signals carry results back to the UI thread
(queued connections, as the receivers live there). When the user clicks another term while a job
is queued, the older queued request is dropped (``latest_only``): only the answer to the last
click matters. A running job always finishes (a forward pass cannot be interrupted safely), and
its result is still delivered and cached by the engine.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)

Job = Callable[[Callable[[str], None]], Any]


@dataclass
class _Item:
    job_id: int
    fn: Job
    replaceable: bool


class AttentionWorker(QThread):
    progress = Signal(int, str)  # job id, message
    finished_job = Signal(int, object)  # job id, result
    failed_job = Signal(int, str)  # job id, message
    busy = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: list[_Item] = []

    def submit(self, fn: Job, replaceable: bool = True) -> int:
        """Queue a job; queued *replaceable* jobs still waiting are dropped. Returns the job id."""
        with self._lock:
            self._next_id += 1
            item = _Item(self._next_id, fn, replaceable)
            if replaceable:
                for old in self._pending:
                    if old.replaceable:
                        old.fn = None  # type: ignore[assignment]  # skipped when dequeued
            self._pending.append(item)
        self._queue.put(item)
        if not self.isRunning():
            self.start()
        return item.job_id

    def run(self) -> None:  # runs on the worker thread
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self._lock:
                if item in self._pending:
                    self._pending.remove(item)
            if item.fn is None:
                continue
            self.busy.emit(True)
            try:
                result = item.fn(lambda message, job_id=item.job_id: self.progress.emit(job_id, message))
            except Exception as exc:  # reported to the UI, not raised into Qt
                log.debug("attention job failed:\n%s", traceback.format_exc())
                self.failed_job.emit(item.job_id, f"{type(exc).__name__}: {exc}")
            else:
                self.finished_job.emit(item.job_id, result)
            finally:
                if self._queue.empty():
                    self.busy.emit(False)

    def stop(self, wait_ms: int = 60000) -> None:
        """Finish the running job, drop queued ones and end the thread."""
        with self._lock:
            for item in self._pending:
                item.fn = None  # type: ignore[assignment]
        self._queue.put(None)
        self.wait(wait_ms)
