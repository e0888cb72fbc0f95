"""``tsx-medtrans check``: the term checks and clinical red flags on any source/translation pair.

A reviewer can check a human translation or another system's output with exactly the checks the app
runs on its own translations (no model is loaded)::

    tsx-medtrans check --source "患者否认胸痛，左肺无啰音。" --translation "The patient reports chest pain." --json
    tsx-medtrans check -i pairs.tsv -g clinic_terms.tsv        # source<TAB>translation a line

Exit status: 0 when nothing is flagged, 1 when a term is to review, a term is translated two ways or
a red flag is raised, 2 for a usage or input error. With ``-i`` the whole file is one document for the
consistency check (one term translated two ways across its lines is flagged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from medcore.prompt import DIRECTIONS, auto_direction


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="check a translation: glossary terms and clinical red flags (no model needed)",
        description="Check any source/translation pair: glossary terms, consistency, numbers and units, "
                    "negation, laterality, completeness. Exit 0 when clean, 1 when something is flagged.")
    p.add_argument("--source", help="the source text")
    p.add_argument("--translation", help="its translation")
    p.add_argument("-i", "--input", type=Path,
                   help="a TSV file of pairs, source<TAB>translation a line (an optional header 'source<TAB>translation')")
    p.add_argument("-d", "--direction", default="auto", choices=("auto", *DIRECTIONS),
                   help="zh-en or en-zh (default: detected from each source)")
    p.add_argument("-g", "--glossary", action="append", default=[], type=Path,
                   help="your own term list on top of the default medical glossary; repeat for several")
    p.add_argument("--no-default-glossary", action="store_true", help="do not use the shipped medical glossary")
    p.add_argument("--all-terms", action="store_true",
                   help="also require the general dictionary's everyday words (CC-CEDICT), advisory by default")
    p.add_argument("--json", action="store_true", help="write the findings as JSON")
    p.set_defaults(func=cmd_check)


def read_pairs_tsv(path: Path) -> list[tuple[int, str, str]]:
    """(line number, source, translation) of a TSV of pairs; a clear error for a malformed line."""
    from desktop.documents import DocumentError, read_source_file

    text, _ = read_source_file(path)
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and [f.strip().lower() for f in fields] == ["source", "translation"]:
            continue
        if len(fields) != 2:
            raise DocumentError(f"{path.name}:{number}: expected source<TAB>translation (2 fields), found {len(fields)}")
        out.append((number, fields[0].strip(), fields[1].strip()))
    if not out:
        raise DocumentError(f"{path.name}: no pairs found")
    return out


def check_one(glossary, source: str, translation: str, direction: str) -> dict[str, Any]:
    from desktop.documents import term_checks, term_consistency, term_report
    from medcore.redflags import check_pair

    checks = term_checks(glossary, source, translation, direction)
    consistency = term_consistency(glossary, source, translation, direction)
    flags = check_pair(source, translation, direction)
    report = term_report(checks)
    return {
        "source": source, "translation": translation, "direction": direction,
        "flagged": bool(flags or consistency or report["missing"]),
        "red_flags": [f.to_dict() for f in flags],
        "term_report": report,
        "consistency": [c.to_dict() for c in consistency],
    }


def _print_text(result: dict[str, Any], label: str) -> None:
    print(f"{label} ({result['direction']}): {'FLAGGED' if result['flagged'] else 'clean'}")
    for row in result["term_report"]["terms"]:
        if row["status"] == "missing":
            print(f"  term to review: {row['term']} -> expected {' | '.join(row['expected'])}")
    for item in result["consistency"]:
        print(f"  inconsistent: {item['term']} translated as {' / '.join(item['variants'])}")
    for flag in result["red_flags"]:
        print(f"  {flag['kind']}: {flag['message']}")


def cmd_check(args) -> int:
    from desktop.documents import DocumentError
    from medcore.glossary import GlossaryError, load_glossary
    from medcore.pairs import DataFormatError

    if args.input is None and (args.source is None or args.translation is None):
        print("error: give --source and --translation, or -i FILE.tsv", file=sys.stderr)
        return 2
    if args.input is not None and (args.source is not None or args.translation is not None):
        print("error: -i cannot be combined with --source/--translation", file=sys.stderr)
        return 2
    try:
        glossary = load_glossary(args.glossary, use_default=not args.no_default_glossary, general_terms=args.all_terms)
        pairs = read_pairs_tsv(args.input) if args.input is not None else [(0, args.source, args.translation)]
    except (GlossaryError, DataFormatError, DocumentError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = []
    for line, source, translation in pairs:
        direction = auto_direction(source) if args.direction == "auto" else args.direction
        result = check_one(glossary, source, translation, direction)
        if args.input is not None:
            result["line"] = line
        results.append(result)
    document_consistency = []
    if args.input is not None and glossary is not None:
        # The file is one document: one source term translated two ways across lines is flagged too.
        for direction in sorted({r["direction"] for r in results}):
            rows = [r for r in results if r["direction"] == direction]
            document_consistency += [c.to_dict() for c in glossary.consistency(
                "\n".join(r["source"] for r in rows), "\n".join(r["translation"] for r in rows), *direction.split("-"))]
    flagged = any(r["flagged"] for r in results) or bool(document_consistency)
    if args.json:
        if args.input is None:
            payload: dict[str, Any] = results[0]
        else:
            payload = {"pairs": results, "pairs_checked": len(results),
                       "pairs_flagged": sum(1 for r in results if r["flagged"]),
                       "consistency": document_consistency, "flagged": flagged}
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            _print_text(r, f"line {r['line']}" if "line" in r else "pair")
        for item in document_consistency:
            print(f"document: {item['term']} translated as {' / '.join(item['variants'])}")
    return 1 if flagged else 0
