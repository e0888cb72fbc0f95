"""Work around a PySide6 6.12 refcount bug on Python < 3.12: make None/True/False effectively immortal.

With PySide6 6.12.0 on Python 3.11, every call of a void C++ method (``QLabel.setText``,
``QTextCharFormat.setBackground``, ``QTableWidgetItem.setData`` ...) returns ``None`` without taking
a reference, so ``None``'s reference count drops by one per call; some bool-returning calls do the
same to ``True``/``False``. After a few thousand calls the count reaches zero and the interpreter
aborts ("Fatal Python error: none_dealloc"): the window dies mid-session, or at exit. Measured here:
20,000 ``QLabel.setText`` calls kill a bare PySide6 script.

Python 3.12+ makes these singletons immortal, so the bug is harmless there. On older Pythons we do the
same by hand: add 2**40 to their reference counts once, before any Qt call. They are never freed
anyway, so the only effect is that the miscount can no longer reach zero.
"""

from __future__ import annotations

import ctypes
import sys

_BOOST = 1 << 40
_done = False


def pin_singletons() -> bool:
    """Raise the refcounts of None, True and False once (no-op on Python >= 3.12). True if applied."""
    global _done
    if _done or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Py_ssize_t).
        ctypes.c_ssize_t.from_address(id(obj)).value += _BOOST
    _done = True
    return True
