"""QtWebEngine's environment, set in one place: the app, the attention CLI and the self-test call
:func:`prepare_webengine` before QtWebEngine is imported (it reads these variables once, at start).

* ``QTWEBENGINE_DISABLE_SANDBOX=1`` when running as root: Chromium refuses to start sandboxed as
  root (containers, CI) and would take the attention view, or the whole app, down. The pages are
  local files only. Always applied.
* ``QT_QPA_PLATFORM=offscreen`` when there is no display (``DISPLAY`` and ``WAYLAND_DISPLAY`` unset):
  ``offscreen="linux"`` on Linux only (the self-test: Windows and macOS have a display without those
  variables), ``"any"`` on every platform (the attention CLI's ``--png``, a picture without a window),
  ``"never"`` (the app: a window needs a display).
* ``QTWEBENGINE_CHROMIUM_FLAGS=--disable-gpu``: ``disable_gpu="always"`` (the attention CLI),
  ``"offscreen"`` only when the offscreen platform was chosen here (the self-test), ``"never"`` (the app).

A variable already set is left as it is (``setdefault``). Qt-free: nothing here imports Qt.
"""

from __future__ import annotations

import os
import sys
from typing import Literal


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def prepare_webengine(offscreen: Literal["never", "linux", "any"] = "never",
                      disable_gpu: Literal["never", "offscreen", "always"] = "never") -> dict[str, str]:
    """Set QtWebEngine's environment (see the module docstring); returns the variables it is about,
    with their values now in effect."""
    changed: dict[str, str] = {}
    no_display = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    headless = no_display and (offscreen == "any" or (offscreen == "linux" and sys.platform.startswith("linux")))
    if headless:
        changed["QT_QPA_PLATFORM"] = os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if disable_gpu == "always" or (disable_gpu == "offscreen" and headless):
        changed["QTWEBENGINE_CHROMIUM_FLAGS"] = os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--disable-gpu")
    if running_as_root():
        changed["QTWEBENGINE_DISABLE_SANDBOX"] = os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    return changed
