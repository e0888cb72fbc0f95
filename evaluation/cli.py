"""`tsx-eval`: score translations, evaluate a model on a test set, run the base/+stage1/+stage1+2 ablation.

    tsx-eval score --hyp hyp.txt --ref ref.txt --target-lang en [--src src.txt] [--glossary terms.tsv]
                   [--comet CKPT] [--baseline other_hyp.txt]
    tsx-eval run --model qwen2.5-coder-0.5b --backend llamacpp --test prepared/combined_test.jsonl --out eval/base
    tsx-eval ablation --base BASE --stage1 runs/stage1/adapter --stage2 runs/stage2/adapter \\
                      --test prepared/combined_test.jsonl --out eval/ablation [--limit 200] [--comet CKPT]

COMET needs a local checkpoint (``--comet``: the model directory or its ``checkpoints/model.ckpt``);
nothing is downloaded. Without one, COMET is reported as not computed and everything else still is.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from medcore.models import ModelError
from medcore.pairs import DataFormatError
from medcore.prompt import DIRECTIONS

NO_COMET = "COMET: not computed (no --comet checkpoint given; COMET runs only from a local checkpoint)."


def _read_lines(path: str, what: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    text = p.read_text(encoding="utf-8")
    # One segment a line; only "\n" separates (str.splitlines would also split at U+2028 etc.).
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _add_comet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comet", metavar="CKPT", help="local COMET checkpoint (model dir or .ckpt); no hub access")
    p.add_argument("--comet-encoder", metavar="DIR",
                   help="local encoder dir (tokenizer+config) replacing the hub name in the checkpoint's hparams")
    p.add_argument("--comet-batch-size", type=int, default=16)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True, help="prepared JSONL (e.g. prepared/combined_test.jsonl) or a pair file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backend", choices=("transformers", "llamacpp"), default="transformers")
    p.add_argument("--limit", type=int, help="evaluate a seeded sample of N records, spread over direction x kind")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--directions", nargs="+", choices=DIRECTIONS, help="only these directions")
    p.add_argument("--kinds", nargs="+", choices=("term", "sentence"), help="only these kinds")
    p.add_argument("--glossary", help="term file for term accuracy in sentences, or 'default' for the app's "
                                      "shipped medical glossary (default: glossary.tsv beside the prepared test set)")
    p.add_argument("--term-block", nargs="?", const="on", choices=("on", "auto"), default=None,
                   help="put the glossary's terms found in each source into the prompt as required translations "
                        "(the prompt contract's term block); sentences only. 'on' (the flag alone): with every "
                        "model; 'auto': as the app does, only for a model whose stage adapters were trained "
                        "with it")
    p.add_argument("--batch-size", type=int, default=8, help="transformers batch size (llama.cpp: see --parallel)")
    p.add_argument("--parallel", type=int, default=0, metavar="N",
                   help="llama.cpp: segments decoded side by side, as the app does (0 = automatic, 1 = one at a time)")
    p.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size")
    p.add_argument("--max-new-tokens", type=int, default=1024,
                   help="upper bound on tokens per output (each output's budget is 2 x source tokens + 16, "
                        "within the context)")
    p.add_argument("--threads", type=int, help="CPU threads (llama.cpp n_threads / torch threads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a line per saved chunk instead")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: keep the translations it saved (same model and "
                        "records only) and skip systems already finished")
    p.add_argument("--rescore", action="store_true",
                   help="with --resume: score finished systems' saved translations again (today's scoring code "
                        "and glossary), translating nothing")
    _add_comet_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsx-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="score existing translations (one a line); prints JSON")
    s.add_argument("--hyp", required=True)
    s.add_argument("--ref", required=True)
    s.add_argument("--target-lang", required=True, choices=("en", "zh"))
    s.add_argument("--src", help="source lines (needed for --glossary and --comet)")
    s.add_argument("--glossary", help="term file (TSV/CSV/XLSX/JSONL zh/en pairs)")
    s.add_argument("--kind", choices=("sentence", "term"), default="sentence",
                   help="sentence: share of glossary terms in the source rendered as expected; "
                        "term: each line is one term, exact match against --ref")
    s.add_argument("--baseline", metavar="HYP2", help="a second system's hypotheses: paired bootstrap vs this one")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    _add_comet_args(s)

    r = sub.add_parser("run", help="translate a test set with one model and score it")
    r.add_argument("--model", required=True, help="GGUF file, HF directory, bundled model name, or (llama.cpp) a "
                                                "tuned-model spec")
    r.add_argument("--adapters", nargs="*", default=[], help="stage adapters in training order: PEFT dirs (transformers) or GGUF LoRA files "
                        "applied at run time (llama.cpp, from `tsx-convert lora`)")
    r.add_argument("--name", default="system", help="system name in the outputs")
    _add_run_args(r)

    c = sub.add_parser("compare", help="two run folders on the same records: B against A per direction and "
                                       "kind, with paired-bootstrap p-values (BLEU, chrF, term accuracy)")
    c.add_argument("a", help="the reference system's run folder (e.g. the 1.5B base)")
    c.add_argument("b", help="the system under test's run folder (e.g. the tuned model)")
    c.add_argument("--bootstrap", type=int, default=1000, help="paired-bootstrap resamples")
    c.add_argument("--json", help="also write the numbers here")
    c.add_argument("--examples", type=int, default=0, metavar="N",
                   help="also show N sentences per direction that the two translate differently (seeded draw)")

    a = sub.add_parser("ablation", help="base | +stage1 | +stage1+2 on one test set: table + chart")
    a.add_argument("--base", required=True, help="base model (transformers: GGUF/HF dir; llama.cpp: base GGUF)")
    a.add_argument("--stage1", help="transformers: stage-1 adapter dir; llama.cpp: stage-1 GGUF LoRA (runtime) or GGUF of base+stage1")
    a.add_argument("--stage2", help="transformers: stage-2 adapter dir; llama.cpp: stage-2 GGUF LoRA (runtime) or GGUF of base+stage1+2")
    a.add_argument("--bootstrap", type=int, default=1000, help="paired-bootstrap resamples")
    _add_run_args(a)
    return parser


def cmd_score(args: argparse.Namespace) -> dict:
    from evaluation import scoring as S

    hyps = _read_lines(args.hyp, "hypothesis")
    refs = _read_lines(args.ref, "reference")
    srcs = _read_lines(args.src, "source") if args.src else None
    if len(hyps) != len(refs) or (srcs is not None and len(srcs) != len(hyps)):
        raise ValueError(f"line counts differ: hyp {len(hyps)}, ref {len(refs)}"
                         + (f", src {len(srcs)}" if srcs is not None else ""))
    tgt = args.target_lang
    src_lang = "zh" if tgt == "en" else "en"
    b, c = S.bleu(hyps, refs, tgt), S.chrf(hyps, refs)
    out: dict = {"n": len(hyps), "bleu": b.score, "chrf": c.score,
                 "signature": {"bleu": b.signature, "chrf": c.signature}, "bleu_detail": b.detail}
    print(f"BLEU {b.score:.2f}  {b.signature}", file=sys.stderr)
    print(f"chrF {c.score:.2f}  {c.signature}", file=sys.stderr)
    if args.glossary or args.kind == "term":
        from medcore.terms import Glossary

        glossary = Glossary.load(args.glossary) if args.glossary else None
        if args.kind == "term":
            if srcs is None and glossary is not None:
                raise ValueError("--kind term with --glossary needs --src (to look up alternative translations)")
            tally = S.term_records_accuracy(srcs or [""] * len(hyps), hyps, refs, src_lang, tgt, glossary)
            out["term_accuracy"] = tally.accuracy
            out["term_detail"] = {"kind": "term exact match", **tally.to_dict(max_misses=10)}
        else:
            if srcs is None:
                raise ValueError("--glossary needs --src: term accuracy looks for glossary terms in the source")
            every, confirmed = S.sentence_term_accuracy(srcs, hyps, src_lang, tgt, glossary, refs)
            out["term_accuracy"] = every.accuracy
            out["term_detail"] = {"kind": "glossary terms in source rendered in output",
                                  **every.to_dict(max_misses=10), "reference_confirmed": confirmed.to_dict()}
    if args.comet:
        if srcs is None:
            raise ValueError("--comet needs --src (COMET scores source, translation and reference together)")
        result = S.comet_score(srcs, hyps, refs, checkpoint=args.comet, encoder=args.comet_encoder,
                               batch_size=args.comet_batch_size)
        out["comet"] = result.system
        out["comet_segments"] = result.segments
        out["comet_checkpoint"] = str(args.comet)
        print(f"COMET {result.system:.4f}  ({args.comet})", file=sys.stderr)
    else:
        print(NO_COMET, file=sys.stderr)
    if args.baseline:
        base = _read_lines(args.baseline, "baseline hypothesis")
        out["paired_bootstrap"] = S.paired_bootstrap(("baseline", base), [("system", hyps)], refs, tgt,
                                                     n_samples=args.bootstrap)
    return out


def _comet_spec(args: argparse.Namespace):
    from evaluation.scoring import CometSpec

    return CometSpec(args.comet, args.comet_encoder, args.comet_batch_size)


def _print_summary(metrics: dict, name: str) -> None:
    def pct(v):
        return "   –  " if v is None else f"{100 * v:6.1f}"

    print(f"\n{name}:  (BLEU/chrF 0-100; term accuracy %; COMET)")
    print(f"{'group':<22}{'n':>6}{'BLEU':>8}{'chrF':>8}{'termEM':>8}{'termSent':>9}{'COMET':>8}{'s/seg':>8}")
    groups = [("overall", metrics["overall"])]
    for direction, parts in metrics["by_direction"].items():
        groups += [(f"{direction} {k}", v) for k, v in parts.items()]
    for label, m in groups:
        if not m.get("n"):
            continue
        ta = m.get("term_accuracy", {})
        comet = m.get("comet")
        sps = m.get("seconds_per_segment")
        print(f"{label:<22}{m['n']:>6}{m['bleu']:>8.2f}{m['chrf']:>8.2f}"
              f"{pct(ta.get('terms', {}).get('accuracy')):>8}{pct(ta.get('sentences', {}).get('accuracy')):>9}"
              f"{'–' if comet is None else f'{comet:.4f}':>8}{'–' if sps is None else f'{sps:.2f}':>8}")
    for key, sig in metrics["signatures"].items():
        print(f"signature {key}: {sig}")
    if metrics.get("comet", "").startswith("not computed"):
        print(NO_COMET)


def _set_threads(args: argparse.Namespace) -> dict:
    """--threads: torch's intra-op threads now, llama.cpp's n_threads (and --parallel) through the translator."""
    extra = {"parallel": args.parallel} if args.backend == "llamacpp" and args.parallel else {}
    if not args.threads:
        return extra
    if args.backend == "transformers":
        import torch

        torch.set_num_threads(args.threads)
        return {}
    return {"n_threads": args.threads, **extra}


def _term_block_kwargs(args: argparse.Namespace, glossary) -> dict:
    """The translator's term glossary for --term-block (sentences only: a term record's block would hold its answer)."""
    if not args.term_block:
        return {}
    if glossary is None:
        raise ValueError("--term-block needs a glossary: pass --glossary or use a prepared test set with glossary.tsv")
    if args.kinds != ["sentence"]:
        raise ValueError("--term-block applies to sentences only (a term record's block would contain its own "
                         "answer): add --kinds sentence")
    return {"term_glossary": glossary, "term_block_mode": args.term_block}


def cmd_run(args: argparse.Namespace) -> dict:
    from evaluation.runs import evaluate
    from evaluation.testsets import data_identity, find_glossary, load_eval_glossary, load_test_set
    from evaluation.translators import make_translator
    from medcore.records import select_records

    records = select_records(load_test_set(args.test), args.limit, args.seed, args.directions, args.kinds)
    if not records:
        raise ValueError(f"no records selected from {args.test}")
    glossary_path = args.glossary or find_glossary(args.test)
    glossary = load_eval_glossary(glossary_path)
    term_kwargs = _term_block_kwargs(args, glossary)
    comet = _comet_spec(args)
    comet.model()  # fail before translating, not after, when the checkpoint is unusable
    translator = make_translator(args.backend, args.model, args.adapters, batch_size=args.batch_size,
                                 n_ctx=args.n_ctx, max_new_cap=args.max_new_tokens, **_set_threads(args),
                                 **term_kwargs)
    try:
        metrics = evaluate(records, translator, args.out, glossary=glossary, comet=comet,
                           data=data_identity(args.test, records), name=args.name, progress=not args.no_progress,
                           resume=args.resume, rescore=args.rescore)
    finally:
        translator.close()
    metrics["glossary"] = str(glossary_path) if glossary_path else None
    _print_summary(metrics, args.name)
    print(f"\nhypotheses: {Path(args.out) / 'hypotheses.jsonl'}  metrics: {Path(args.out) / 'metrics.json'}")
    return metrics


def cmd_compare(args: argparse.Namespace) -> dict:
    from evaluation.compare import compare_runs, table_markdown
    from medcore.atomic import write_json

    result = compare_runs(args.a, args.b, args.bootstrap, args.examples)
    print(table_markdown(result))
    if args.json:
        write_json(Path(args.json), result)
    return result


def cmd_ablation(args: argparse.Namespace) -> dict:
    from evaluation.ablation import ablation_systems, run_ablation
    from evaluation.testsets import find_glossary, load_eval_glossary

    systems = ablation_systems(args.backend, args.base, args.stage1, args.stage2)
    threads = _set_threads(args)
    if args.term_block:
        glossary_path = args.glossary or find_glossary(args.test)
        threads.update(_term_block_kwargs(args, load_eval_glossary(glossary_path)))
    comet = _comet_spec(args)
    comet.model()
    summary = run_ablation(systems, args.test, args.out, backend=args.backend, limit=args.limit, seed=args.seed,
                           glossary_path=args.glossary, comet=comet, batch_size=args.batch_size, n_ctx=args.n_ctx,
                           bootstrap_samples=args.bootstrap, progress=not args.no_progress,
                           directions=args.directions, kinds=args.kinds, max_new_cap=args.max_new_tokens,
                           translator_kwargs=threads, resume=args.resume, rescore=args.rescore)
    print((Path(args.out) / "ablation.md").read_text(encoding="utf-8"))
    print(f"written: {', '.join(str(Path(args.out) / f) for f in ('ablation.md', 'ablation.csv', 'ablation.json', 'ablation.png'))}")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rescore", False):
        args.resume = True  # rescoring reads what a finished run saved
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from evaluation.scoring import CometUnavailable

    try:
        if args.command == "score":
            print(json.dumps(cmd_score(args), ensure_ascii=False, indent=2))
        elif args.command == "compare":
            cmd_compare(args)
        elif args.command == "run":
            cmd_run(args)
        else:
            cmd_ablation(args)
    except (CometUnavailable, ModelError, DataFormatError, FileNotFoundError, ValueError) as exc:
        print(f"tsx-eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
