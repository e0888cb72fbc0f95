"""Screenshots of the main window mid-translation (and when done), for the docs.

Needs an X server; on a headless Linux box:

    apt-get install -y xvfb fonts-wqy-microhei libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m scripts.screenshot_main_window

Settings go to a temporary file, so the user's own settings are untouched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT = (
    "患者男，65岁，因胸痛3小时入院。心电图提示ST段抬高，诊断为急性心肌梗死。\n"
    "既往有高血压和2型糖尿病病史，规律服用阿司匹林。"
    "行经皮冠状动脉介入治疗后症状缓解，无发热、咳嗽。"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots" / "main_window.png"))
    ap.add_argument("--after-tokens", type=int, default=40, help="take the picture after this many streamed pieces")
    # The default medical glossary is always loaded (as at a user's first start); these come on top.
    ap.add_argument("--glossary", action="append", default=[], help="an extra term list of the user's")
    ap.add_argument("--no-attention", action="store_true", help="leave the attention dock out of the picture")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer

    from desktop.app import create_app
    from desktop.main_window import MainWindow
    from desktop.settings import AppSettings
    from medcore.models import resolve_model
    from runtime.options import LoadOptions

    app = create_app([sys.argv[0]])
    tmp = tempfile.mkdtemp(prefix="tsx-shot-")
    settings = AppSettings(QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat))
    model = resolve_model(args.model)
    settings.set_load_options(model, LoadOptions(n_ctx=2048))
    window = MainWindow(settings=settings, model=str(model), attention=not args.no_attention)
    window.resize(1500, 820)
    window.show()
    window.terms.load_glossaries([g for g in args.glossary if Path(g).exists()])
    window.source.setPlainText(TEXT)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {"shot": False}

    def poll():  # runs in the GUI thread, where grabbing is allowed
        if not state["shot"] and window.documents.busy and window.documents._pieces >= args.after_tokens:
            state["shot"] = True
            window.grab().save(str(out))
            print(f"wrote {out}")

    def on_finished(_result):
        QTimer.singleShot(300, lambda: (window.grab().save(str(out.with_name(out.stem + "_done.png"))),
                                        print(f"wrote {out.with_name(out.stem + '_done.png')}"), window.close(), app.quit()))

    def start():
        if window.models.info is None:
            QTimer.singleShot(200, start)
            return
        window.terms.refresh()
        window.documents.translate()

    timer = QTimer(window)
    timer.timeout.connect(poll)
    timer.start(100)
    window.documents.translationFinished.connect(on_finished)
    QTimer.singleShot(300, start)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
