"""TSX-MedTrans desktop app: offline zh<->en medical translation on a local GGUF model.

The translation core (no Qt) is :mod:`runtime`'s engine, shared with the ``translate`` CLI, ``tsx-eval``
and the self-test; ``worker`` runs it on a QThread. ``main_window`` builds the UI and wires its parts: ``term_highlighter``
(its Qt-free logic in ``highlight``), ``model_controller`` and ``document_controller``. ``selftest`` is
``tsx-medtrans --self-test``; ``webengine_env`` sets up QtWebEngine for the app, the attention CLI and it.
"""

__version__ = "0.1.0"

# Must run before any PySide6 call in the process (see desktop/qt_compat.py): every part of the app,
# the attention view and the self-test included, imports this package first.
from desktop.qt_compat import pin_singletons as _pin_singletons  # noqa: E402

_pin_singletons()
