"""The self-test's command line (``tsx-medtrans --self-test [options]``) and the order its checks run in:
each check runs only when what it needs passed before it (see :mod:`desktop.selftest`)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from desktop import selftest
from desktop.selftest.attention import build_attention_pages, check_attention, render_page
from desktop.selftest.checks import (
    SENTENCES,
    check_environment,
    check_llama_backend,
    check_load,
    check_model,
    check_resources,
    check_translate,
)
from desktop.selftest.report import Report, seconds_since_process_start
from desktop.webengine_env import prepare_webengine


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsx-medtrans --self-test", description=selftest.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="tuned-model spec, GGUF file or bundled model name "
                                   "(default: resources/models/default.yaml)")
    p.add_argument("--direction", choices=tuple(SENTENCES), default="zh-en", help="direction of the test sentence")
    p.add_argument("--sentence", help="translate this instead of the built-in sentence")
    p.add_argument("--attention-model", help="model for the attention check (default: --model, with its adapters)")
    p.add_argument("--no-page", action="store_true", help="skip drawing the attention pages (no Qt)")
    p.add_argument("--no-hash", action="store_true", help="skip the sha256 check of a bundled model")
    p.add_argument("--ctx", type=int, default=2048, help="context size for the load check (default 2048)")
    p.add_argument("--no-repack", action="store_true",
                   help="load without llama.cpp's weight repacking (also: TSX_NO_REPACK=1)")
    p.add_argument("--page-timeout", type=float, default=60.0, help="seconds to wait for a page to draw")
    p.add_argument("--keep", type=Path, help="keep the pages and pictures in this directory")
    p.add_argument("--json-out", type=Path, help="also write the JSON report to this file")
    return p


def main(argv: list[str]) -> int:
    """Run the checks with ``argv`` (the options after ``--self-test``); 0 when every check passed."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 for --help
        return int(exc.code or 0)
    since_start = seconds_since_process_start()
    report = Report()
    state: dict[str, Any] = {}

    report.run("environment", check_environment)
    report.run("resources", check_resources)

    def model() -> tuple[str, dict[str, Any]]:
        status, detail = check_model(args.model, verify_hash=not args.no_hash)
        state["model_path"] = Path(detail["path"])       # the GGUF (the attention engine reads it)
        state["model_source"] = Path(detail["source"])   # what the app loads: a spec (base + adapters) or the GGUF
        return status, detail

    report.run("model", model)
    source = args.sentence or SENTENCES[args.direction]

    backend = report.run("llama_backend", check_llama_backend)
    if "model_path" in state and backend.ok:
        from runtime.engine import TranslationEngine

        engine = TranslationEngine()
        load = report.run("load", lambda: check_load(engine, state["model_source"], args.ctx, not args.no_repack))
        if load.ok:
            report.run("translate", lambda: check_translate(engine, source, args.direction, since_start, state))
        engine.unload()
    else:
        report.fail("load", "skipped: " + ("no model" if "model_path" not in state else "no llama.cpp backend"))

    # Attention: captured from llama.cpp on the weights that translated (adapters included).
    attention_box: dict[str, Any] = {}
    if "translation" in state:
        from desktop.attention.llama_engine import LlamaAttentionEngine

        attention = LlamaAttentionEngine(args.attention_model or state["model_source"], n_ctx=args.ctx)

        def attention_engine() -> dict[str, Any]:
            detail, span = check_attention(attention, source, state["translation"], args.direction)
            attention_box.update(engine=attention, span=span)
            return detail

        report.run("attention_engine", attention_engine)
    else:
        report.fail("attention_engine", "skipped: no translation to inspect")

    if args.no_page:
        pass
    elif "engine" not in attention_box:
        report.fail("attention_page", "skipped: no attention to show")
    else:
        keep = args.keep
        tmp = None
        if keep is None:
            tmp = tempfile.TemporaryDirectory(prefix="tsx-selftest-")
            keep = Path(tmp.name)
        keep.mkdir(parents=True, exist_ok=True)
        built_box: dict[str, Any] = {}

        def build_pages() -> tuple[str, dict[str, Any]]:
            status, detail, built = build_attention_pages(attention_box["engine"], source, state["translation"],
                                                          args.direction, attention_box["span"], keep)
            built_box["built"] = built
            return status, detail

        if report.run("attention_pages_built", build_pages).ok:
            # offscreen on a Linux without a display (Xvfb-less CI, ssh), no GPU there; no sandbox as root
            qt_env = prepare_webengine(offscreen="linux", disable_gpu="offscreen")
            import PySide6.QtWebEngineWidgets  # noqa: F401  (must precede the QApplication)
            from PySide6.QtWidgets import QApplication

            app = QApplication.instance() or QApplication([sys.argv[0]])
            state["qt_env"] = qt_env
            for view, path in built_box["built"].paths.items():
                report.run(f"attention_page:{view}",
                           lambda path=path, view=view: render_page(path, keep / f"{view}.png",
                                                                    int(args.page_timeout * 1000)))
            from desktop.attention import view as view_mod

            view_mod._release_pages()  # pages before their profile, or Chromium crashes at exit
            app.processEvents()
        if tmp is not None:
            tmp.cleanup()
    if "engine" in attention_box:
        attention_box["engine"].close()

    extra = {"seconds_since_process_start_at_main": None if since_start is None else round(since_start, 3)}
    if "qt_env" in state:
        extra["qt_env"] = state["qt_env"]
    payload = report.to_dict(extra)
    text = json.dumps(payload, ensure_ascii=False, indent=2)
    print(text, flush=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n", encoding="utf-8")
    verdict = "PASSED" if report.ok else f"FAILED ({', '.join(payload['failed'])})"
    print(f"self-test {verdict} in {payload['total_seconds']:.1f} s", file=sys.stderr, flush=True)
    return 0 if report.ok else 1
