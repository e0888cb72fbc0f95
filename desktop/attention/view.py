"""The web view that shows attention pages, with every remote request blocked and recorded.

Pages are loaded from files (``QWebEngineView.setHtml`` fails above 2 MB, and BertViz pages are
several MB). Every request the page makes passes a :class:`BlockingInterceptor`: only ``file:``,
``data:`` and ``qrc:`` URLs go through, everything else is blocked, and all of it is recorded so
tests can assert that a page made zero remote requests.

Qt notes: ``PySide6.QtWebEngineWidgets`` must be imported before the ``QApplication`` exists
(this module does it at import; import it early). A ``QWebEnginePage`` must be deleted before its
``QWebEngineProfile`` or the process crashes at exit, so the profile is one off-the-record profile
per application, parented to the application, and :func:`_release_pages` deletes every live page
first (then the profile) when the application quits. QtWebEngine itself tears Chromium down in a
post-routine of ``~QCoreApplication``; by then no page of ours may exist or be created.

Two traps, both of which crashed the app at exit (139):

* No event processing in the ``aboutToQuit`` slot. ``app.quit()`` closes every window first, and the
  last one closing *posts another* ``QEvent::Quit``; delivering it from inside ``aboutToQuit``
  (``sendPostedEvents``/``processEvents``) re-enters ``QCoreApplication::exit()``, which emits
  ``aboutToQuit`` again, nested, and QtWebEngine's own handler crashes. Deletion here is synchronous
  (``shiboken6.delete``), so no event loop turn is needed.
* ``QWebEngineView``'s show/hide/close handlers call ``page()``, which *creates* a new page (on the
  default profile) when none is set: a view whose page was deleted would grow a fresh one as soon as
  its window hides. :meth:`AttentionView.dispose` therefore marks the view, and the view then skips
  those handlers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import weakref
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QSize, QTimer, QUrl, Signal
from PySide6.QtGui import QImage
from PySide6.QtWebEngineCore import (
    QWebEnginePage,
    QWebEngineProfile,
    QWebEngineSettings,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
)
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"file", "data", "qrc"})


class BlockingInterceptor(QWebEngineUrlRequestInterceptor):
    """Blocks every request whose scheme is not file/data/qrc; records all of them."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()  # interceptRequest runs on the IO thread
        self.requests: list[str] = []
        self.blocked: list[str] = []

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:  # noqa: N802 (Qt API)
        url = info.requestUrl()
        text = url.toString() if url.scheme() != "data" else "data:…"
        allowed = url.scheme().lower() in ALLOWED_SCHEMES
        with self._lock:
            self.requests.append(text)
            if not allowed:
                self.blocked.append(text)
        if not allowed:
            log.warning("blocked a remote request from an attention page: %s", text)
            info.block(True)

    def remote_requests(self) -> list[str]:
        with self._lock:
            return [r for r in self.requests if r.split(":", 1)[0].lower() not in ALLOWED_SCHEMES]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.blocked.clear()


class _Page(QWebEnginePage):
    """A page that keeps the JavaScript console (errors in a page are otherwise invisible)."""

    def __init__(self, profile: QWebEngineProfile, parent: QObject | None = None):
        super().__init__(profile, parent)
        self.console: list[str] = []

    def javaScriptConsoleMessage(self, level, message: str, line: int, source: str) -> None:  # noqa: N802
        entry = f"{getattr(level, 'name', level)}: {message} ({source}:{line})"
        self.console.append(entry)
        if level == QWebEnginePage.JavaScriptConsoleMessageLevel.ErrorMessageLevel:
            log.warning("attention page: %s", entry)


_profile: QWebEngineProfile | None = None
_pages: weakref.WeakSet[QWebEnginePage] = weakref.WeakSet()
_views: weakref.WeakSet[AttentionView] = weakref.WeakSet()
_quit_hooked = False


def _delete_now(obj: QObject) -> None:
    """Delete a Qt object at once: ``deleteLater`` needs an event loop turn, and at quit there is none
    to have (see the module notes). Deleting a child removes it from its parent; the wrapper is then
    invalid, so nothing deletes it twice."""
    import shiboken6

    if shiboken6.isValid(obj):
        shiboken6.delete(obj)


def _release_pages() -> None:
    """On ``aboutToQuit``: every attention view drops its page, stray pages go, then the profile.

    Must not process events (a nested ``QEvent::Quit`` would re-enter ``exit()``); idempotent."""
    global _profile
    for view in list(_views):
        with contextlib.suppress(RuntimeError):  # RuntimeError: the view is already gone in C++
            view.dispose()
    for page in list(_pages):  # pages not set on an AttentionView (none today): same order
        with contextlib.suppress(RuntimeError):
            _delete_now(page)
    _pages.clear()
    if _profile is not None:
        with contextlib.suppress(RuntimeError):
            _delete_now(_profile)
        _profile = None


def shared_profile() -> QWebEngineProfile:
    """One off-the-record profile (no disk cache, no cookies) with a blocking interceptor."""
    global _profile, _quit_hooked
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication first")
    if not _quit_hooked:  # once per process: a second profile (after a quit) reuses the same hook
        app.aboutToQuit.connect(_release_pages)
        _quit_hooked = True
    if _profile is None:
        _profile = QWebEngineProfile(app)  # no storage name: off the record
        _profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.NoCache)
        _profile.setUrlRequestInterceptor(BlockingInterceptor(_profile))  # backstop for every page
    return _profile


class AttentionView(QWebEngineView):
    """A QWebEngineView for attention pages: offline, records requests, can save a picture."""

    pageReady = Signal(bool)  # the page has loaded and its script reported it was drawn

    def __init__(self, parent=None):
        super().__init__(parent)
        self.interceptor = BlockingInterceptor(self)
        page = _Page(shared_profile(), self)
        page.setUrlRequestInterceptor(self.interceptor)
        settings = page.settings()
        # Deliberately True: with False Chromium drops a file: page's remote loads before they reach
        # the interceptor, and the attempts would go unseen. The interceptor is the gate, and it
        # records every attempt (tests assert there are none); the pages' CSP is a second gate.
        settings.setAttribute(QWebEngineSettings.WebAttribute.LocalContentCanAccessRemoteUrls, True)
        settings.setAttribute(QWebEngineSettings.WebAttribute.LocalContentCanAccessFileUrls, False)
        settings.setAttribute(QWebEngineSettings.WebAttribute.JavascriptCanOpenWindows, False)
        settings.setAttribute(QWebEngineSettings.WebAttribute.PluginsEnabled, False)
        self.setPage(page)
        _pages.add(page)
        _views.add(self)
        self._disposed = False
        self._ready_timer = QTimer(self)
        self._ready_timer.setInterval(50)
        self._ready_timer.timeout.connect(self._poll_ready)
        self._ready_deadline = 0
        self.ready_timeout_s = 60.0
        self.loadFinished.connect(self._on_load_finished)
        self.current_path: Path | None = None

    def dispose(self) -> None:
        """Delete the page now (before the shared profile can go). Idempotent; the view stays usable
        as a plain widget but shows nothing and never creates another page."""
        if self._disposed:
            return
        self._disposed = True
        self._ready_timer.stop()
        _views.discard(self)
        # d->page is set (we set it in __init__), so page() returns it and creates nothing.
        page = self.page()
        self.setPage(None)
        _pages.discard(page)
        _delete_now(page)

    @property
    def disposed(self) -> bool:
        return self._disposed

    # QWebEngineView's handlers call page(), which would create a new page once ours is deleted.
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self._disposed:
            QWidget.showEvent(self, event)
        else:
            super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self._disposed:
            QWidget.hideEvent(self, event)
        else:
            super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        if self._disposed:
            QWidget.closeEvent(self, event)
        else:
            super().closeEvent(event)

    # -- loading ---------------------------------------------------------------------------------
    def show_file(self, path: str | Path) -> None:
        self.current_path = Path(path)
        self.load(QUrl.fromLocalFile(str(Path(path).resolve())))

    def _on_load_finished(self, ok: bool) -> None:
        if not ok:
            self.pageReady.emit(False)
            return
        # BertViz draws after require.js resolves its modules; a busy machine can take many seconds.
        self._ready_deadline = int(self.ready_timeout_s * 1000 / self._ready_timer.interval())
        self._ready_timer.start()

    def _poll_ready(self) -> None:
        self._ready_deadline -= 1
        if self._ready_deadline <= 0:
            self._ready_timer.stop()
            self.pageReady.emit(False)
            return
        self.page().runJavaScript("document.body && document.body.getAttribute('data-tsx-ready')",
                                  0, self._on_ready_value)

    def _on_ready_value(self, value) -> None:
        if value == "1" and self._ready_timer.isActive():
            self._ready_timer.stop()
            self.pageReady.emit(True)

    def load_and_wait(self, path: str | Path, timeout_ms: int = 20000) -> bool:
        """Load a page and spin an event loop until it reports it was drawn (tests, CLI)."""
        loop = QEventLoop()
        result = {"ok": False}

        def done(ok: bool) -> None:
            result["ok"] = ok
            loop.quit()

        self.pageReady.connect(done)
        QTimer.singleShot(timeout_ms, loop.quit)
        self.show_file(path)
        loop.exec()
        self.pageReady.disconnect(done)
        return result["ok"]

    def evaluate(self, expression: str, timeout_ms: int = 5000):
        """Evaluate a JavaScript expression in the page and return its value (spins an event loop).

        The value travels as JSON (PySide's conversion drops arrays), so it must be JSON-able."""
        loop = QEventLoop()
        box: dict = {}

        def got(value) -> None:
            box["value"] = value
            loop.quit()

        self.page().runJavaScript(f"JSON.stringify((() => ({expression}))())", 0, got)
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()
        text = box.get("value")
        return json.loads(text) if isinstance(text, str) and text else None

    # -- pictures --------------------------------------------------------------------------------
    def wait_painted(self, timeout_s: float = 30.0) -> bool:
        """Spin until the page has drawn two more animation frames (after a resize, say)."""
        self.page().runJavaScript("window.__tsxFrames = 0; requestAnimationFrame(() => requestAnimationFrame("
                                  "() => { window.__tsxFrames = 2; }));", 0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.evaluate("window.__tsxFrames || 0") == 2:
                loop = QEventLoop()
                QTimer.singleShot(150, loop.quit)  # rasterising may trail the main thread a little
                loop.exec()
                return True
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()
        return False

    def content_size(self) -> QSize:
        size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        if not size:
            return self.size()
        return QSize(int(size[0]), int(size[1]))

    def save_png(self, path: str | Path, full_page: bool = True, max_side: int = 8000) -> Path:
        """Save the page as PNG; ``full_page`` resizes the view to the page's size for the shot."""
        old = self.size()
        if full_page:
            want = self.content_size()
            self.resize(min(max(want.width(), old.width()), max_side), min(max(want.height(), 200), max_side))
            # The renderer learns the new viewport asynchronously: wait for it, then for a paint.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and abs((self.evaluate("window.innerHeight") or 0) - self.height()) > 2:
                loop = QEventLoop()
                QTimer.singleShot(50, loop.quit)
                loop.exec()
        self.wait_painted()
        image: QImage = self.grab().toImage()
        if full_page:
            self.resize(old)
        if image.isNull() or not image.save(str(path), "PNG"):
            raise OSError(f"could not save a picture of the page to {path}")
        return Path(path)
