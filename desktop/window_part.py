"""What the main window's parts have in common: they report, the window shows.

A part (the term highlighter, the model controller, the document controller) never touches the
banner or the status bar: it emits ``error`` / ``message``, and ``changed`` when something the
toolbar's actions depend on changed; :class:`desktop.main_window.MainWindow` connects them.
Errors go to a banner, never to a modal box: a modal dialog would stop a clinician mid-task and
blocks headless tests.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget


class WindowPart(QObject):
    error = Signal(str)           # shown in the banner (and the status bar) until cleared
    errorCleared = Signal()
    message = Signal(str, int)    # a status-bar message and its timeout in ms (0: until replaced)
    changed = Signal()            # the state the window's actions depend on changed

    def dialog_parent(self) -> QWidget | None:
        """The window, as the parent of the file and input dialogs this part opens."""
        parent = self.parent()
        return parent if isinstance(parent, QWidget) else None
