"""``tsx-medtrans``: the window without a subcommand, ``translate`` for scripts and batch work.

``translate`` uses the same engine and prompt as the window (TranslateLocally-style flags:
``-m/--model``, ``-i/--input``, ``-o/--output``); text comes from the argument, a file or stdin.
The translation goes to stdout (or ``-o``); ``--json`` writes the translation with its term
report, red flags, stats and provenance instead. Progress, warnings and flags go to stderr.
``check`` (``desktop/check_cli.py``) runs the same checks on any source/translation pair.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from medcore.prompt import DIRECTIONS


def _add_translate(subparsers) -> None:
    p = subparsers.add_parser("translate", help="translate text from an argument, a file or stdin",
                              description="Translate medical text with a local GGUF model (offline).")
    p.add_argument("text", nargs="?", help="text to translate (default: --input, else stdin)")
    p.add_argument("-i", "--input", type=Path, help="read the text from this file (UTF-8 or GB18030)")
    p.add_argument("-o", "--output", type=Path, help="write the result here instead of stdout")
    p.add_argument("-m", "--model", help="tuned-model spec (name or .yaml), bundled model name or GGUF file "
                                         "(default: resources/models/default.yaml)")
    p.add_argument("--base-only", action="store_true",
                   help="translate with the tuned model's base alone, without its adapters (for comparison)")
    p.add_argument("--lora", action="append", default=[], type=Path, metavar="GGUF",
                   help="a GGUF LoRA adapter (tsx-convert lora) to apply at run time; repeat in training order")
    p.add_argument("-d", "--direction", default="auto", choices=("auto", *DIRECTIONS))
    p.add_argument("-g", "--glossary", action="append", default=[], type=Path,
                   help="your term list (TSV/CSV/XLSX/JSONL as the trainer reads them) on top of the default "
                        "medical glossary; repeat for several")
    p.add_argument("--no-default-glossary", action="store_true", help="do not use the shipped medical glossary")
    p.add_argument("--term-block", choices=("auto", "on", "off"), default="auto",
                   help="put the glossary's terms into the prompt as required translations: auto (default) = "
                        "only with a model trained to follow them (a tuned model); on = with any model; "
                        "off = never (the terms are still checked)")
    p.add_argument("--no-term-block", dest="term_block", action="store_const", const="off", help="same as --term-block off")
    p.add_argument("--json", action="store_true", help="write JSON with the term report and provenance")
    p.add_argument("--ctx", type=int, default=2048, help="context size in tokens (default 2048)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    p.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to a GPU build (default 0)")
    p.add_argument("--max-tokens", type=int, default=None, help="cap on generated tokens per sentence")
    p.add_argument("--parallel", type=_parallel, default=0, metavar="N",
                   help="segments translated side by side in one llama.cpp context: 1 = one after another, "
                        "0 = automatic (default: up to 8, as the context size and free memory allow)")
    p.add_argument("--no-repack", action="store_true",
                   help="load the model without llama.cpp's weight repacking (also: TSX_NO_REPACK=1)")
    p.add_argument("--log-source-text", action="store_true",
                   help="allow the source text in debug logs (off by default: patient text stays out of logs)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress and timing on stderr")
    p.set_defaults(func=cmd_translate)


def _parallel(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of segments from 1 to 64, or 0 for automatic; got {value!r}")
    return n


def _read_text(args) -> str:
    from desktop.documents import read_source_file

    if args.text is not None:
        return args.text
    if args.input is not None:
        return read_source_file(args.input)[0]
    data = sys.stdin.buffer.read()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SystemExit("stdin is neither UTF-8 nor GB18030 text")


def cmd_translate(args) -> int:
    from desktop.documents import (
        DocumentError,
        export,
        red_flags,
        report_payload,
        term_checks,
        term_consistency,
    )
    from desktop.provenance import build_provenance
    from medcore.glossary import DEFAULT_NAME, GlossaryError, load_glossary
    from medcore.models import ModelError
    from medcore.modelspec import default_model
    from medcore.pairs import DataFormatError
    from runtime.engine import TranslationEngine
    from runtime.errors import EngineError
    from runtime.options import LoadOptions

    level = logging.DEBUG if (args.verbose and args.log_source_text) else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        text = _read_text(args)
        if not text.strip():
            print("error: no text to translate", file=sys.stderr)
            return 2
        glossary = load_glossary(args.glossary, use_default=not args.no_default_glossary)
        engine = TranslationEngine(log_source_text=args.log_source_text)
        options = LoadOptions(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.gpu_layers,
                              repack=not args.no_repack, parallel=args.parallel)
        info = engine.load(args.model or default_model(), options, base_only=args.base_only, adapters=args.lora)
        engine.set_term_glossary(None if args.term_block == "off" else glossary, mode=args.term_block)
        stream = args.output is None and not args.json
        result = engine.translate(
            text, args.direction, max_new_tokens=args.max_tokens,
            on_token=(lambda piece: (sys.stdout.write(piece), sys.stdout.flush())) if stream else None,
            on_progress=(lambda done, total: print(f"[{done}/{total}]", file=sys.stderr)) if args.verbose else None,
        )
    except (ModelError, EngineError, DocumentError, DataFormatError, GlossaryError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    checks = term_checks(glossary, text, result.translation, result.direction)
    flags = red_flags(result.segments, result.direction)
    glossaries = ([] if args.no_default_glossary else [DEFAULT_NAME]) + [str(g) for g in args.glossary]
    provenance = build_provenance(info.path, info.name, glossaries, result.direction,
                                  info.options.to_dict(), model=result.model)
    payload = report_payload(text, result.translation, result.direction, checks, provenance,
                             result.stats(), result.warnings, result.cancelled, flags,
                             term_consistency(glossary, text, result.translation, result.direction))
    if args.verbose:
        active = result.model.get("adapters") or []
        print(f"model: {info.spec or info.path.name}"
              + (f" ({len(active)} runtime adapter(s) on {info.path.name})" if active else "")
              + (" (base model only)" if result.model.get("base_only") else ""), file=sys.stderr)
        print(f"{result.generated_tokens} tokens in {result.seconds:.2f} s, {result.tokens_per_second:.1f} tok/s, "
              f"first token {result.first_token_s or 0:.2f} s, {result.parallel} segment(s) side by side",
              file=sys.stderr)
    if args.json:
        if args.output:
            export(args.output, payload)
        else:
            json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
            sys.stdout.write("\n")
    elif args.output:
        from medcore.atomic import write_text

        write_text(args.output, result.translation + "\n")
    else:
        sys.stdout.write("\n")
        for c in checks:
            if c.flagged:
                print(f"review: {c.hit.span.text} -> expected {' | '.join(c.expected)}", file=sys.stderr)
        for f in flags:
            where = f" (sentence {f.segment + 1})" if f.segment is not None else ""
            print(f"red flag{where}: {f.kind}: {f.message}", file=sys.stderr)
    return 0


def cmd_gui(args) -> int:
    from desktop.app import run_gui

    documents = list(getattr(args, "documents", None) or [])
    if len(documents) > 1:  # one document per window
        print(f"opening {documents[0]}; the window holds one document, so {len(documents) - 1} more "
              "were left unopened", file=sys.stderr)
    return run_gui(model=getattr(args, "model", None), document=str(documents[0]) if documents else None)


def route_documents_to_gui(argv: list[str], commands: Sequence[str]) -> list[str]:
    """``tsx-medtrans note.txt`` is ``tsx-medtrans gui note.txt``: the desktop entry runs
    ``tsx-medtrans %F`` when a file is opened with the app, and argparse would read the path as an
    unknown subcommand."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--model":
            i += 2
        elif token.startswith("--model="):
            i += 1
        elif token.startswith("-") or token in commands:
            return argv
        else:
            return [*argv[:i], "gui", *argv[i:]]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsx-medtrans",
                                     description="Offline Chinese<->English medical translation. "
                                                 "Without a subcommand the window opens.")
    parser.add_argument("--model", help="open the window with this GGUF file or bundled model name")
    sub = parser.add_subparsers(dest="command")
    _add_translate(sub)
    from desktop.check_cli import add_parser as add_check_parser

    add_check_parser(sub)
    gui = sub.add_parser("gui", help="open the window (the default); `tsx-medtrans FILE` opens FILE in it")
    gui.add_argument("documents", nargs="*", type=Path, metavar="FILE", help="a text file to open (UTF-8 or GB18030)")
    gui.set_defaults(func=cmd_gui)
    try:  # the attention view is optional: the app works without it
        from desktop.attention.cli import add_parser as add_attention_parser
    except Exception:  # an attention view that fails to import must not take the translator down
        add_attention_parser = None
    if add_attention_parser is not None:
        add_attention_parser(sub)
    parser.set_defaults(commands=tuple(sub.choices))  # what route_documents_to_gui must not take for a file
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:  # the installation check: its one entry point (desktop/selftest/)
        from desktop.selftest.run import main as self_test

        return int(self_test(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(route_documents_to_gui(argv, list(parser.get_default("commands"))))
    func = getattr(args, "func", None)
    if func is None:
        return cmd_gui(args)
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
