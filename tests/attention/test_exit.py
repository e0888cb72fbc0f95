"""The app exits cleanly (status 0) once the attention view has drawn a page.

Regression: quitting with the attention dock created crashed the process (SIGSEGV, 139): the
``aboutToQuit`` slot flushed posted events, which delivered the ``QEvent::Quit`` that closing the last
window had posted, re-entered ``QCoreApplication::exit()`` and crashed in QtWebEngine's own
``aboutToQuit`` handler. Each case runs ``exit_child.py`` in its own process (a QApplication quits
once per process, and a crash must fail the test, not kill pytest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWebEngineWidgets")

CHILD = Path(__file__).with_name("exit_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_child(what: str, how: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1",
               XDG_CACHE_HOME=str(tmp_path / "cache"), TMPDIR=str(tmp_path),
               PYTHONFAULTHANDLER="1")  # a crash prints its Python stack into the failure message
    proc = subprocess.run([sys.executable, str(CHILD), what, how, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return proc, (json.loads(lines[-1][len("RESULT "):]) if lines else None)


@pytest.mark.parametrize(("what", "how"), [
    ("dock", "quit"),     # app.quit(): the reported crash (was 139)
    ("dock", "close"),    # the user closes the window
    ("dock", "exit"),     # app.exit(0): no window is closed first
    ("window", "quit"),   # the main window with its attention dock (was 139)
    ("window", "close"),
    ("window", "exit"),   # the translation engine's thread must stop too (was 134)
])
def test_exit_is_clean_with_the_attention_view(what, how, tmp_path):
    proc, result = _run_child(what, how, tmp_path)
    detail = f"exit status {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, detail
    assert result is not None, detail
    assert result["drawn"] is True  # the view really rendered a page before the quit
    assert result["code"] == 0 and result["about_to_quit"] == 1, result  # one quit, not re-entered
    # Nothing of ours left for QtWebEngine's own teardown: no page (none re-created by the view's
    # show/hide handlers after its page went), no profile, the worker stopped, temp pages removed.
    assert result["view_pages"] == 0 and result["live_pages"] == 0, result
    assert result["disposed"] is True and result["profile_alive"] is False, result
    assert result["worker_running"] is False and result["work_dir_left"] is False, result
    assert "WebEnginePage still not deleted" not in proc.stderr, detail
    assert "Fatal Python error" not in proc.stderr, detail


def test_quit_slot_does_not_reenter_exit(tmp_path):
    """The mechanism behind the crash, without QtWebEngine: flushing posted events inside
    ``aboutToQuit`` after ``app.quit()`` emits ``aboutToQuit`` a second time, nested. This is why
    ``view._release_pages`` must not process events (if Qt changes this, the note in view.py can go)."""
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "import desktop\n"
        "from PySide6.QtCore import QCoreApplication, QTimer\n"
        "from PySide6.QtWidgets import QApplication, QWidget\n"
        "app = QApplication([]); depth = [0]; seen = []\n"
        "def slot():\n"
        "    depth[0] += 1; seen.append(depth[0])\n"
        "    if depth[0] == 1: QCoreApplication.sendPostedEvents(None, 0)\n"
        "    depth[0] -= 1\n"
        "app.aboutToQuit.connect(slot)\n"
        "w = QWidget(); w.show(); QTimer.singleShot(20, app.quit); app.exec()\n"
        "print('SEEN', seen)\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SEEN [1, 2]" in proc.stdout, proc.stdout
