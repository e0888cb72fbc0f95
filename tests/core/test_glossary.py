"""The shipped default medical glossary (built from the shared lists) and the user's own glossary file."""

from __future__ import annotations

import json

import pytest

from medcore.glossary import (
    DEFAULT_NAME,
    SOURCES,
    GlossaryError,
    add_user_term,
    build,
    default_dir,
    default_terms,
    load_glossary,
)
from medcore.terms import USER_PRIORITY


def test_shipped_glossary_is_the_build_of_the_shared_lists(shared_data, tmp_path):
    """resources/glossary/ is exactly what `python -m medcore.glossary build` makes from shared/data."""
    counts = build(shared_data, tmp_path)
    for name in ("medical_glossary.tsv", "sources.json", "NOTICE.md"):
        assert (tmp_path / name).read_bytes() == (default_dir() / name).read_bytes(), (
            f"resources/glossary/{name} is stale: run `python -m medcore.glossary build`")
    assert counts["hpo"] > 17000 and counts["tico19"] > 600 and counts["cedict"] > 2000


def test_sources_priorities_and_notices():
    meta = json.loads((default_dir() / "sources.json").read_text(encoding="utf-8"))
    assert meta["name"] == DEFAULT_NAME
    assert [s["priority"] for s in meta["sources"].values()] == [30, 20, 10]
    assert [s["general"] for s in meta["sources"].values()] == [False, False, True]
    notice = (default_dir() / "NOTICE.md").read_text(encoding="utf-8")
    # The attribution each licence requires (shared/data/SOURCES.md).
    assert "This product uses the Human Phenotype Ontology (hpo-translations zh, 2026-06-22)" in notice
    assert "CC BY-SA 4.0" in notice and "MDBG" in notice and "CC0 1.0" in notice
    assert set(meta["sources"]) == set(SOURCES)


def test_default_glossary_priority_and_user_terms_on_top(tmp_path):
    terms = default_terms()
    assert len(terms) > 20000
    glossary = load_glossary()
    hits = {h.span.text: h for h in glossary.find("2型糖尿病患者服用阿司匹林后肺炎好转", "zh")}
    assert hits["肺炎"].expected("en")[0] == "Pneumonia"  # HPO (curated) before CC-CEDICT's glosses
    assert hits["肺炎"].sources[0] == "hpo"
    assert not glossary.required(hits["服用"])           # CC-CEDICT "take": advisory
    assert glossary.required(hits["阿司匹林"])          # CC-CEDICT, but a drug name
    mine = tmp_path / "mine.tsv"
    mine.write_text("肺炎\tlung infection\n", encoding="utf-8")
    ours = load_glossary([mine])
    hit = next(h for h in ours.find("肺炎", "zh"))
    assert hit.expected("en")[0] == "lung infection" and hit.terms[0].priority == USER_PRIORITY
    assert load_glossary(use_default=False) is None


def test_missing_default_glossary_is_a_clear_error(tmp_path):
    with pytest.raises(GlossaryError, match="medcore.glossary build"):
        default_terms(tmp_path)


def test_add_user_term_is_atomic_and_keeps_the_users_lines(tmp_path):
    path = tmp_path / "my_glossary.tsv"
    assert add_user_term(path, "冠状动脉", "coronary artery") is True
    assert add_user_term(path, "冠状动脉", "coronary artery") is False  # already there
    path.write_text(path.read_text(encoding="utf-8") + "# my own note line stays\tas it is", encoding="utf-8")
    assert add_user_term(path, "心梗", "heart attack") is True
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == ["冠状动脉\tcoronary artery", "# my own note line stays\tas it is", "心梗\theart attack"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind
    with pytest.raises(GlossaryError, match="both"):
        add_user_term(path, "心梗", " ")
    assert add_user_term(path, "心衰", "heart\tfailure\n")  # whitespace is normalised, the file stays zh<TAB>en
    assert path.read_text(encoding="utf-8").splitlines()[-1] == "心衰\theart failure"
