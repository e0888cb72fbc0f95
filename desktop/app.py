"""The QApplication: translations (English / Simplified Chinese by system locale), logging, window."""

from __future__ import annotations

import contextlib
import logging
import sys

from desktop.fonts import install_app_font
from desktop.webengine_env import prepare_webengine
from medcore.resources import RESOURCES_DIR

I18N_DIR = RESOURCES_DIR / "i18n"
QM_BASENAME = "tsx_medtrans"


def install_translator(app, locale=None):
    """Load ``resources/i18n/tsx_medtrans_<lang>.qm`` for ``locale`` (default: the system's).

    Returns the installed QTranslator, or None when the UI stays in English.
    """
    from PySide6.QtCore import QLocale, QTranslator

    locale = locale or QLocale.system()
    translator = QTranslator(app)
    # QTranslator.load(locale, ...) tries tsx_medtrans_zh_CN, tsx_medtrans_zh, ... for zh_CN / zh_Hans_*.
    if translator.load(locale, QM_BASENAME, "_", str(I18N_DIR)):
        app.installTranslator(translator)
        return translator
    return None


def setup_logging(debug: bool = False) -> None:
    """Log to stderr. The engine logs counts and timings; source text only at DEBUG, when allowed."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _preload_attention() -> None:
    # As root, Chromium's sandbox off (desktop/webengine_env.py); a window needs a display, so no offscreen.
    prepare_webengine()
    # QtWebEngine (used by the attention view) must be imported before the QApplication exists.
    with contextlib.suppress(Exception):  # optional part
        import desktop.attention.dock  # noqa: F401


def create_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication

    from desktop.settings import APPLICATION, ORGANIZATION

    _preload_attention()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("TSX-MedTrans")
    install_translator(app)
    install_app_font()  # Chinese text on desktops without a CJK font
    return app


def run_gui(model: str | None = None, document: str | None = None) -> int:
    from desktop.main_window import MainWindow
    from desktop.settings import AppSettings

    app = create_app()
    settings = AppSettings()
    setup_logging(debug=settings.log_source_text())
    window = MainWindow(settings=settings, model=model, document=document)
    window.show()
    return app.exec()


def main() -> int:
    return run_gui()


if __name__ == "__main__":
    sys.exit(main())
