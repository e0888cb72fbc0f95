"""Child process for ``test_exit.py``: show an attention view with a drawn page, quit, report.

``python tests/attention/exit_child.py WHAT HOW WORKDIR``

* WHAT: ``dock`` (an :class:`AttentionDock` as its own window) or ``window`` (the main window with
  its attention dock, no model);
* HOW: ``quit`` (``app.quit()``: Qt closes the windows, then quits), ``close`` (the user closes the
  window; the last window closing quits) or ``exit`` (``app.exit(0)``: no window is closed first).

It prints one ``RESULT {json}`` line after ``exec()`` returns, then exits with ``exec()``'s code, so
a crash at quit (139 / -11) or in interpreter teardown shows in the exit status. It is a separate
process because a QApplication quits once per process, and a crash must not take pytest with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import desktop  # noqa: E402,F401  (pins None/True/False before any Qt call: desktop/qt_compat.py)


def main(what: str, how: str, workdir: Path) -> int:
    import PySide6.QtWebEngineWidgets  # noqa: F401  (before the QApplication exists)
    import shiboken6
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWebEngineCore import QWebEnginePage
    from PySide6.QtWidgets import QApplication

    from desktop.attention import view as view_module

    app = QApplication([sys.argv[0]])
    html = workdir / "page.html"
    html.write_text("<!doctype html><html><body data-tsx-ready='1'><p>attention</p></body></html>",
                    encoding="utf-8")
    if what == "dock":
        from desktop.attention.dock import AttentionDock

        window = AttentionDock()
        window.resize(800, 600)
        view = window.view
    else:
        from desktop.main_window import MainWindow
        from desktop.settings import AppSettings

        settings = AppSettings(QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat))
        window = MainWindow(settings=settings, model=None, autoload=False, attention=True)
        if window.attention is None:
            print("RESULT " + json.dumps({"error": "the main window has no attention dock"}), flush=True)
            return 3
        view = window.attention.view
    dock = window if what == "dock" else window.attention
    window.show()
    drawn = view.load_and_wait(html, timeout_ms=30000)
    profile = view_module.shared_profile()
    quit_calls: list[int] = []
    app.aboutToQuit.connect(lambda: quit_calls.append(1))

    action = {"quit": app.quit, "close": window.close, "exit": lambda: app.exit(0)}[how]
    QTimer.singleShot(50, action)
    QTimer.singleShot(20000, lambda: app.exit(7))  # the quit never came: fail, do not hang
    code = app.exec()
    # After quit: no page may be left (none kept, none re-created by the view's show/hide
    # handlers), and the profile is gone before QtWebEngine's own teardown in ~QApplication.
    view_pages = len(view.findChildren(QWebEnginePage)) if shiboken6.isValid(view) else 0
    print("RESULT " + json.dumps({
        "drawn": drawn, "code": code, "about_to_quit": len(quit_calls),
        "view_pages": view_pages, "live_pages": len(view_module._pages),
        "profile_alive": shiboken6.isValid(profile), "disposed": view.disposed,
        "work_dir_left": dock._work_dir.exists(), "worker_running": dock.worker.isRunning(),
    }), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
