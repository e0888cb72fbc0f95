"""The reference audit: glossary renderings human translators reject become advisory, per source language."""

from __future__ import annotations

import json
import shutil

import pytest

from medcore.glossary import GlossaryError, default_dir, default_terms, load_glossary
from medcore.glossary_audit import AUDIT_FILE, audit, demoted, read_demotions, write_audit
from medcore.records import PreparedRecord
from medcore.terms import Glossary, Term


def _pairs(zh: str, en: str, n: int, start: int = 0) -> list[PreparedRecord]:
    """n sentence pairs in both directions."""
    out = []
    for i in range(start, start + n):
        out.append(PreparedRecord(f"s{i}-zh-en", "sentence", "zh-en", zh, en))
        out.append(PreparedRecord(f"s{i}-en-zh", "sentence", "en-zh", en, zh))
    return out


def _glossary() -> Glossary:
    return Glossary([Term("疾病", "sickness", "tico19", 20), Term("发热", "fever", "hpo", 30),
                     Term("咳嗽", "cough", "hpo", 30), Term("巨蟹座", "cancer", "cedict", 10, True)])


def _records() -> list[PreparedRecord]:
    return (_pairs("这种疾病很常见。", "This disease is common.", 6)           # references never say "sickness"
            + _pairs("患者发热。", "The patient has a fever.", 6, 10)          # always "fever"
            + _pairs("患者咳嗽很重。", "The patient coughs badly.", 1, 20)      # "coughs": agreed
            + _pairs("他咳嗽。", "He has a bad chest.", 4, 30)                   # 4 of 5 disagree ...
            + _pairs("癌症患者。", "Cancer patients.", 5, 40)                   # en "cancer" → 巨蟹座? never
            + [PreparedRecord("t1-zh-en", "term", "zh-en", "疾病", "disease")])  # term records are not audited


def test_audit_counts_agreement_per_source_language():
    rows = {(r.source_lang, r.term): r for r in audit(_glossary(), _records())}
    assert (rows["zh", "疾病"].seen, rows["zh", "疾病"].agreed) == (6, 0)
    assert (rows["zh", "发热"].seen, rows["zh", "发热"].agreed) == (6, 6)
    assert (rows["zh", "咳嗽"].seen, rows["zh", "咳嗽"].agreed) == (5, 1)
    assert rows["zh", "疾病"].examples == ["s0-zh-en", "s1-zh-en", "s2-zh-en"]
    assert (rows["en", "fever"].seen, rows["en", "fever"].agreed) == (6, 6)
    # CC-CEDICT's three-character 巨蟹座 (the zodiac sign) counts as required by the word-form rule: the
    # audit is what catches it.
    assert (rows["en", "Cancer"].seen, rows["en", "Cancer"].agreed) == (5, 0)
    out = {(r.source_lang, r.term) for r in demoted(rows.values())}
    assert out == {("zh", "疾病"), ("zh", "咳嗽"), ("en", "Cancer")}  # 1/5 agreement < 0.3; 发热 kept
    assert {(r.source_lang, r.term) for r in demoted(rows.values(), min_seen=6)} == {("zh", "疾病")}


def test_demotions_make_an_entry_advisory_from_that_language_only(tmp_path):
    folder = tmp_path / "glossary"
    folder.mkdir()
    shutil.copy(default_dir() / "sources.json", folder / "sources.json")
    (folder / "medical_glossary.tsv").write_text("zh\ten\tsource\n疾病\tsickness\ttico19\n发热\tfever\thpo\n"
                                                 "咳嗽\tcough\thpo\n", encoding="utf-8")
    rows = audit(Glossary(default_terms(folder)), _records())
    doc = write_audit(folder / AUDIT_FILE, rows, {"split": "test"})
    assert doc["counts"]["zh"]["demoted"] == 2 and doc["counts"]["en"]["demoted"] == 0
    assert read_demotions(folder / AUDIT_FILE) == {"zh": {"疾病", "咳嗽"}, "en": set()}

    glossary = Glossary(default_terms(folder))
    zh_hit = glossary.find("这种疾病", "zh")[0]
    en_hit = glossary.find("a sickness", "en")[0]
    assert not glossary.required(zh_hit) and glossary.required(en_hit)
    assert glossary.required(glossary.find("发热", "zh")[0])
    checks = glossary.check("这种疾病", "This disease", "zh", "en")
    assert [c.status for c in checks] == ["advisory"] and not checks[0].flagged
    # Asking for every general word does not bring a rejected rendering back ...
    assert not Glossary(default_terms(folder), general_terms=True).required(zh_hit)
    # ... the user's own entry does.
    mine = tmp_path / "mine.tsv"
    mine.write_text("疾病\tdisease\n", encoding="utf-8")
    ours = load_glossary([mine], default_folder=folder)
    hit = ours.find("这种疾病", "zh")[0]
    assert ours.required(hit) and hit.expected("en") == ["disease", "sickness"]


def test_a_damaged_audit_file_is_a_clear_error(tmp_path):
    (tmp_path / AUDIT_FILE).write_text('{"demoted": [{"source_lang": "zh"}]}', encoding="utf-8")
    with pytest.raises(GlossaryError, match="medcore.glossary audit"):
        read_demotions(tmp_path / AUDIT_FILE)
    assert read_demotions(tmp_path / "absent.json") == {"zh": set(), "en": set()}


def test_shipped_audit_demotes_rejected_renderings_and_keeps_medical_terms():
    doc = json.loads((default_dir() / AUDIT_FILE).read_text(encoding="utf-8"))
    assert doc["data"]["split"].startswith("sentences/train.jsonl") and doc["data"]["sentence_records"] > 7000
    shipped = {(t.zh, t.en) for t in default_terms()}
    for row in doc["demoted"]:  # not stale: every demoted entry is in the shipped glossary, and was measured
        assert all(tuple(e) in shipped for e in row["entries"]), row
        assert row["seen"] >= doc["rule"]["min_seen"] and row["agreement"] < doc["rule"]["max_agreement"]
    glossary = load_glossary()

    def required(text: str, lang: str) -> bool:
        return glossary.required(next(h for h in glossary.find(text, lang) if h.span.text == text))

    assert not required("疾病", "zh") and not required("中心", "zh") and not required("试验", "zh")
    assert not required("severe", "en") and not required("right", "en")
    assert required("高血压", "zh") and required("肺炎", "zh") and required("pneumonia", "en")
    assert 0 < doc["counts"]["zh"]["demoted"] < 0.2 * doc["counts"]["zh"]["terms_seen"]


def test_an_advisory_term_left_untranslated_is_still_flagged():
    glossary = Glossary([Term("疾病", "sickness", "tico19", 20, advisory_from=frozenset({"zh", "en"})),
                         Term("变异", "mutation", "tico19", 20, advisory_from=frozenset({"en"})),
                         Term("脱氧核糖核酸", "DNA", "tico19", 20, advisory_from=frozenset({"en"}))])
    [rendered] = glossary.check("这种疾病", "This disease", "zh", "en")
    [left] = glossary.check("这种疾病", "This 疾病 is common", "zh", "en")
    assert rendered.status == "advisory" and not rendered.flagged
    assert left.untranslated and left.flagged and left.status == "missing"
    [english] = glossary.check("The mutation rate.", "mutation 的比率。", "en", "zh")
    assert english.flagged
    [abbreviation] = glossary.check("DNA vaccines.", "DNA 疫苗。", "en", "zh")  # kept as is in Chinese text
    assert not abbreviation.flagged and abbreviation.status == "advisory"
