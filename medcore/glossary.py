"""The default medical glossary (shipped, loaded from the first start) and the user's own glossary.

The default glossary is built at build time (``make glossary`` / ``python -m medcore.glossary build``)
from the shared term lists, each kept with its source and priority:

======================  ========  =========  =====================================================
list                    priority  kind       licence
======================  ========  =========  =====================================================
HPO Chinese (CHPO)      30        curated    HPO licence: attribution, HPO version, do not alter
TICO-19 terminology     20        curated    CC0 1.0
CC-CEDICT medical       10        general    CC BY-SA 4.0 (the subset stays CC BY-SA 4.0)
======================  ========  =========  =====================================================

The artefact is ``resources/glossary/medical_glossary.tsv`` (``zh<TAB>en<TAB>source``, header line;
labels verbatim, only whitespace-normalised, as HPO's licence requires) with ``sources.json``
(priority, kind, licence, attribution) and ``NOTICE.md`` beside it. The user's glossary files come
on top (:data:`medcore.terms.USER_PRIORITY`); the app's "Add to my glossary" writes the user's own
file atomically (:func:`add_user_term`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from medcore.atomic import write_json, write_text
from medcore.glossary_audit import AUDIT_FILE, read_demotions
from medcore.pairs import read_pairs
from medcore.terms import USER_PRIORITY, Glossary, Term
from medcore.textnorm import match_key, normalize_en, normalize_zh

GLOSSARY_FILE = "medical_glossary.tsv"
SOURCES_FILE = "sources.json"
NOTICE_FILE = "NOTICE.md"
DEFAULT_NAME = "default medical glossary"

# What each shared list is, in the order of priority. ``file`` is relative to shared/data.
SOURCES: dict[str, dict] = {
    "hpo": {
        "file": "terms/hpo_zh.tsv",
        "name": "Human Phenotype Ontology, Chinese translations (CHPO)",
        "priority": 30,
        "general": False,
        "licence": "Human Phenotype Ontology licence (free use with attribution; do not alter HPO content)",
        "attribution": "This product uses the Human Phenotype Ontology (hpo-translations zh, 2026-06-22). "
                       "Köhler S. et al., The Human Phenotype Ontology, Nucleic Acids Research; "
                       "Chinese translations by the Chinese HPO Consortium (CHPO, chinahpo.net). "
                       "Source: github.com/obophenotype/hpo-translations, babelon/hp-zh.babelon.tsv, "
                       "commit 62f1d254f93e47d87e874783019ccd7480400e76. Labels are reproduced verbatim.",
    },
    "tico19": {
        "file": "terms/tico19_covid_terms.tsv",
        "name": "TICO-19 COVID-19 terminology (Facebook, Google)",
        "priority": 20,
        "general": False,
        "licence": "CC0 1.0",
        "attribution": "TICO-19: the Translation Initiative for COVID-19 (tico-19.github.io), terminologies by "
                       "Facebook and Google, CC0 1.0 (commit d97615f9cffa28ec7de571e00fbd513e5a1c7fc7).",
    },
    "cedict": {
        "file": "terms/cedict_medical.tsv",
        "name": "CC-CEDICT, medical subset",
        "priority": 10,
        "general": True,
        "licence": "CC BY-SA 4.0 (creativecommons.org/licenses/by-sa/4.0/); this subset is shared under the same licence",
        "attribution": "CC-CEDICT (MDBG, www.mdbg.net/chinese/dictionary?page=cc-cedict), 2023-11-07 edition, "
                       "CC BY-SA 4.0. Changes: medical entries selected, glosses shortened (see the project's "
                       "shared/data/SOURCES.md).",
    },
}


class GlossaryError(ValueError):
    """The shipped glossary or the user's glossary file cannot be used, with the reason."""


def default_dir() -> Path:
    from medcore.resources import RESOURCES_DIR

    return RESOURCES_DIR / "glossary"


# -- build --------------------------------------------------------------------------------------
def build_rows(data_dir: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """(zh, en, source id) for every pair of the shared lists, in priority order, duplicates dropped."""
    data_dir = Path(data_dir)
    rows, seen = [], set()
    for source_id, meta in sorted(SOURCES.items(), key=lambda kv: -kv[1]["priority"]):
        path = data_dir / meta["file"]
        if not path.is_file():
            raise GlossaryError(f"{path} is missing: the default glossary is built from the shared term lists "
                                f"(pass --data with the folder that holds terms/)")
        for pair in read_pairs(path):
            zh, en = normalize_zh(pair.zh), normalize_en(pair.en)
            if not zh or not en or "\t" in zh + en or (zh, en) in seen:
                continue
            seen.add((zh, en))
            rows.append((zh, en, source_id))
    return rows


def notice_text() -> str:
    lines = ["# Default medical glossary: sources, licences and attribution", "",
             f"`{GLOSSARY_FILE}` is built by `python -m medcore.glossary build` from the lists below.",
             "Each row names its source in the third column. Priority: a higher number wins when two",
             "lists translate the same term; a *general* list's everyday words are advisory only.", ""]
    for source_id, meta in SOURCES.items():
        lines += [f"## {meta['name']} (`{source_id}`, priority {meta['priority']}"
                  f"{', general dictionary' if meta['general'] else ', curated'})", "",
                  f"- Licence: {meta['licence']}", f"- Attribution: {meta['attribution']}", ""]
    return "\n".join(lines)


def build(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> dict:
    """Write the glossary, its sources and its notices to ``out_dir`` (atomically); returns counts."""
    out_dir = Path(out_dir) if out_dir else default_dir()
    rows = build_rows(data_dir)
    buf = io.StringIO()
    buf.write("zh\ten\tsource\n")
    for zh, en, source_id in rows:
        buf.write(f"{zh}\t{en}\t{source_id}\n")
    write_text(out_dir / GLOSSARY_FILE, buf.getvalue())
    counts = {sid: sum(1 for r in rows if r[2] == sid) for sid in SOURCES}
    meta = {sid: {k: v for k, v in m.items() if k != "file"} | {"terms": counts[sid]} for sid, m in SOURCES.items()}
    write_json(out_dir / SOURCES_FILE, {"name": DEFAULT_NAME, "sources": meta})
    write_text(out_dir / NOTICE_FILE, notice_text())
    return counts


# -- load ---------------------------------------------------------------------------------------
def default_terms(folder: str | os.PathLike[str] | None = None) -> list[Term]:
    """The shipped glossary's terms with their source, priority, kind and reference-audit demotions."""
    folder = Path(folder) if folder else default_dir()
    path, sources_path = folder / GLOSSARY_FILE, folder / SOURCES_FILE
    if not path.is_file() or not sources_path.is_file():
        raise GlossaryError(f"the default medical glossary is missing from the installation ({folder}); "
                            "rebuild it with `python -m medcore.glossary build --data <shared/data>`")
    sources = json.loads(sources_path.read_text(encoding="utf-8"))["sources"]
    demotions = read_demotions(folder / AUDIT_FILE)
    terms = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["zh", "en", "source"]:
            raise GlossaryError(f"{path}: expected the header zh<TAB>en<TAB>source, found {header}")
        for number, row in enumerate(reader, start=2):
            if len(row) != 3 or row[2] not in sources:
                raise GlossaryError(f"{path}:{number}: expected zh<TAB>en<TAB>source with a source from {SOURCES_FILE}")
            meta = sources[row[2]]
            advisory = frozenset(lang for lang, keys in demotions.items()
                                 if match_key(row[0] if lang == "zh" else row[1], lang) in keys)
            terms.append(Term(row[0], row[1], row[2], int(meta["priority"]), bool(meta["general"]), advisory))
    return terms


def load_glossary(user_files: Sequence[str | os.PathLike[str]] = (), use_default: bool = True,
                  general_terms: bool = False, default_folder: str | os.PathLike[str] | None = None) -> Glossary | None:
    """The default glossary (unless ``use_default`` is False) with the user's files on top; None when empty."""
    base: Iterable[Term] = default_terms(default_folder) if use_default else ()
    if not use_default and not user_files:
        return None
    return Glossary.load(list(user_files), priority=USER_PRIORITY, general_terms=general_terms, base=base)


def audit_default(prepared: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> dict:
    """Run the reference audit of the shipped glossary on ``prepared``'s training sentences; write it beside it."""
    from medcore.glossary_audit import audit, write_audit
    from medcore.models import sha256_file
    from medcore.records import read_records

    folder, prepared = Path(folder) if folder else default_dir(), Path(prepared)
    train, manifest = prepared / "sentences" / "train.jsonl", prepared / "manifest.json"
    if not train.is_file() or not manifest.is_file():
        raise GlossaryError(f"{prepared} holds no prepared training sentences: run `tsx-train prepare` first")
    # Measure the lists as built, not as last demoted (the shipped audit stays until the new one is written).
    glossary = Glossary([replace(t, advisory_from=frozenset()) for t in default_terms(folder)])
    records = read_records(train)
    rows = audit(glossary, records)
    data = {"split": "sentences/train.jsonl (training split only; never a test split)",
            "sentence_records": len(records), "train_sha256": sha256_file(train),
            "manifest_sha256": sha256_file(manifest)}
    return write_audit(folder / AUDIT_FILE, rows, data)


def user_glossary_path() -> Path:
    """The user's own glossary file: ``$TSX_USER_GLOSSARY`` or ``~/.local/share/tsx-medtrans/my_glossary.tsv``."""
    env = os.environ.get("TSX_USER_GLOSSARY")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tsx-medtrans" / "my_glossary.tsv"


def add_user_term(path: str | os.PathLike[str], zh: str, en: str) -> bool:
    """Append zh/en to the user's TSV glossary, written atomically; False when the pair is already there.

    The file stays a plain ``zh<TAB>en`` list the user owns (their other lines are kept as they are).
    """
    zh, en = normalize_zh(zh), normalize_en(en)
    if not zh or not en:
        raise GlossaryError("a glossary entry needs both a Chinese and an English side")
    if "\t" in zh + en or "\n" in zh + en:
        raise GlossaryError("a glossary entry cannot contain tabs or line breaks")
    path = Path(path)
    existing = path.read_text(encoding="utf-8-sig") if path.exists() else ""
    if path.exists():
        for pair in read_pairs(path):
            if normalize_zh(pair.zh) == zh and normalize_en(pair.en) == en:
                return False
    if existing and not existing.endswith("\n"):
        existing += "\n"
    write_text(path, existing + f"{zh}\t{en}\n")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medcore.glossary", description="Build the default medical glossary.")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build resources/glossary/ from the shared term lists")
    b.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding terms/ (default ../shared/data)")
    b.add_argument("--out", type=Path, default=None, help="output folder (default resources/glossary)")
    a = sub.add_parser("audit", help="measure the glossary against the human references of the prepared training "
                                     "sentences and write reference_audit.json (demotions)")
    a.add_argument("--prepared", type=Path, default=Path("prepared"), help="tsx-train prepare output (default prepared)")
    a.add_argument("--out", type=Path, default=None, help="glossary folder (default resources/glossary)")
    args = ap.parse_args(argv)
    try:
        if args.command == "audit":
            doc = audit_default(args.prepared, args.out)
            for lang, c in doc["counts"].items():
                print(f"from {lang}: {c['terms_seen']} terms in {c['checks']} checks, references agree in "
                      f"{c['agreed']}; {c['demoted']} demoted to advisory")
            return 0
        counts = build(args.data, args.out)
    except GlossaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"default glossary: {sum(counts.values())} terms ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
