"""``tsx-medtrans attention``: the attention views from the command line, as offline HTML (and PNG).

    tsx-medtrans attention --source TEXT --translation TEXT [--model FILE] [--term TEXT] --out page.html
    python -m desktop.attention.cli --source TEXT --translation TEXT --term TEXT --out page.html

The page is the same file the app shows (one standalone HTML file, no network). ``--png`` also
renders it with QtWebEngine (offscreen when there is no display) and saves a picture. The term's
alignment summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from desktop.attention.session import VIEWS


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="the source text")
    p.add_argument("--translation", required=True, help="its translation (as the model produced it)")
    p.add_argument("--model", default=None,
                   help="tuned-model spec, GGUF file, bundled model name or merged HF directory (default: the app's model)")
    p.add_argument("--adapters", nargs="*", default=[], metavar="FILE_OR_DIR",
                   help="in training order: GGUF LoRA files (llama.cpp engine) or PEFT stage adapter directories "
                        "(transformers engine)")
    p.add_argument("--engine", default="auto", choices=["auto", "llama", "transformers"],
                   help="llama: attention captured from llama.cpp on the app's weights (default for GGUF/spec models); "
                        "transformers: the reference engine (needs torch; default for HF directories and PEFT adapters)")
    p.add_argument("--repack", action="store_true",
                   help="llama engine: load with weight repacking, as translation does (more memory, no faster: "
                        "a capture is one prompt-sized batch)")
    p.add_argument("--base-model", default=None,
                   help="for --compare-base with a model that has no adapters: the base to compare with")
    p.add_argument("--hf-dir", default=None, help="merged HF directory with the same weights as --model")
    p.add_argument("--term", default=None, help="a term of the translation to inspect (first occurrence)")
    p.add_argument("--source-term", default=None, help="the source term it should align to (optional)")
    p.add_argument("--direction", default="auto", choices=["auto", "zh-en", "en-zh"])
    p.add_argument("--view", default=None, choices=list(VIEWS),
                   help="which view to write (default: term with --term, else head)")
    p.add_argument("--compare-base", action="store_true",
                   help="term view: add the base model (adapters disabled) side by side")
    p.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    p.add_argument("--png", type=Path, default=None, help="also save a picture of the page")
    p.add_argument("--json", type=Path, default=None, help="also save the alignment summary as JSON")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``attention`` subcommand on ``tsx-medtrans``'s subparsers."""
    p = subparsers.add_parser("attention", help="attention views of a translation as offline HTML/PNG",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _span(text: str, phrase: str | None, lang: str, what: str) -> tuple[int, int] | None:
    from medcore.terms import find_phrase

    if not phrase:
        return None
    found = find_phrase(text, phrase, lang)
    if found is None:
        raise SystemExit(f"error: {what} {phrase!r} does not occur in the {'translation' if what == 'term' else 'source'}")
    return found.start, found.end


def render_png(html_path: Path, png_path: Path, width: int = 1200) -> Path:
    """Render a page with QtWebEngine and save a full-page picture (offscreen without a display)."""
    from desktop.webengine_env import prepare_webengine

    prepare_webengine(offscreen="any", disable_gpu="always")  # a picture, no window: offscreen without a display
    import PySide6.QtWebEngineWidgets  # noqa: F401  (before the QApplication)
    from PySide6.QtWidgets import QApplication

    from desktop.attention.view import AttentionView

    app = QApplication.instance() or QApplication([sys.argv[0]])
    view = AttentionView()
    view.resize(width, 800)
    view.show()
    try:
        if not view.load_and_wait(html_path, timeout_ms=60000):
            raise RuntimeError(f"the page did not finish drawing: {html_path}")
        remote = view.interceptor.remote_requests()
        if remote:
            raise RuntimeError(f"the page asked for remote resources (blocked): {remote}")
        return view.save_png(png_path)
    finally:
        view.dispose()
        view.deleteLater()
        app.processEvents()


def pick_engine(model: str | None, adapters: list[str], hf_dir: str | None, engine: str = "auto") -> str:
    """``llama`` or ``transformers`` for ``--engine auto``: transformers only for what llama.cpp cannot run
    (a merged HF directory, PEFT adapter directories, an explicit ``--hf-dir``)."""
    if engine != "auto":
        return engine
    if hf_dir or any(Path(a).is_dir() for a in adapters) or (model and (Path(model) / "config.json").exists()):
        return "transformers"
    return "llama"


def make_engine(args: argparse.Namespace):
    """The engine the CLI runs: the app's (llama.cpp) unless the reference is asked for or needed."""
    from medcore.models import ModelError
    from medcore.modelspec import resolve

    kind = pick_engine(args.model, args.adapters, args.hf_dir, args.engine)
    try:
        if kind == "llama":
            from desktop.attention.llama_engine import LlamaAttentionEngine

            model = str(resolve(args.model).source)  # a spec keeps its adapters; None: the app's default
            return LlamaAttentionEngine(model, adapters=args.adapters, base_model=args.base_model,
                                        repack=None if args.repack else False)
        from desktop.attention.engine import TransformersAttentionEngine

        # The reference engine runs PEFT adapters, not a spec's GGUF LoRAs: a spec gives it its base.
        model = resolve(args.model, base_only=True).base
        return TransformersAttentionEngine(model, adapters=args.adapters, base_model=args.base_model,
                                           hf_dir=args.hf_dir)
    except (ModelError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from desktop.attention.session import ViewRequest, build_views
    from medcore.prompt import auto_direction, split_direction

    direction = auto_direction(args.source) if args.direction == "auto" else args.direction
    src_lang, tgt_lang = split_direction(direction)
    tgt_span = _span(args.translation, args.term, tgt_lang, "term")
    src_span = _span(args.source, args.source_term, src_lang, "source term")
    view = args.view or ("term" if tgt_span else "head")
    if view == "term" and tgt_span is None:
        raise SystemExit("error: the term view needs --term")
    engine = make_engine(args)
    if args.compare_base and not engine.has_base:
        raise SystemExit("error: --compare-base needs a model with adapters (a tuned-model spec or --adapters) "
                         "or --base-model")
    request = ViewRequest(args.source, args.translation, direction, tgt_span, src_span,
                          compare=args.compare_base, views=(view,))
    with tempfile.TemporaryDirectory(prefix="tsx-attention-") as tmp:
        pages = build_views(engine, request, tmp, progress=lambda m: print(m + "…", file=sys.stderr))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(pages.paths[view].read_bytes())
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)", file=sys.stderr)
    if args.png:
        render_png(args.out, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    summary = {"view": view, "out": str(args.out), "model": engine.describe(), "direction": direction,
               "tokens": {"source": pages.result.src_tokens, "translation": pages.result.tgt_tokens}}
    if pages.alignment is not None:
        summary["alignment"] = pages.alignment.to_dict()
    if pages.base_alignment is not None:
        summary["base_alignment"] = pages.base_alignment.to_dict()
    text = json.dumps(summary, ensure_ascii=False, indent=2)
    if args.json:
        from medcore.atomic import write_text

        write_text(args.json, text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m desktop.attention.cli [attention] --source ... --out ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["attention"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="tsx-medtrans attention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
