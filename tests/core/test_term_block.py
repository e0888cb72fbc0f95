"""The prompt contract's term block: what goes in, how it renders, and which training examples get it."""

from __future__ import annotations

import pytest

from medcore.prompt import load_contract
from medcore.records import PreparedRecord
from medcore.term_block import (
    block_terms,
    display_form,
    glossary_from_records,
    in_share,
    reads_term_block,
    term_block_in_use,
    training_terms,
)
from medcore.terms import Glossary, Term

V1_USER = {"zh-en": "Translate the following Chinese medical text into English.\n\n",
           "en-zh": "Translate the following English medical text into Simplified Chinese.\n\n"}
GLOSSARY = Glossary([Term("高血压", "Hypertension", "hpo"), Term("高血压", "high blood pressure", "cedict"),
                     Term("心肌梗死", "myocardial infarction", "hpo"), Term("COVID-19", "COVID-19", "tico")])


def test_without_terms_the_prompt_is_exactly_version_1():
    """Models trained on contract v1 stay valid: an empty term block leaves no trace."""
    contract = load_contract()
    assert contract.version == 2
    for direction, head in V1_USER.items():
        for terms in ((), [("", "x")], [("x", " ")]):
            assert contract.messages("ABC", direction, terms)[1]["content"] == head + "ABC"


def test_block_lists_terms_once_in_order_and_is_capped():
    contract = load_contract()
    terms = [("高血压", "hypertension"), ("心肌梗死", "myocardial infarction"), ("高血压", "hypertension")]
    user = contract.messages("患者高血压，心肌梗死。", "zh-en", terms)[1]["content"]
    assert user == (V1_USER["zh-en"] + "Use these translations for the terms below:\n"
                    "高血压 → hypertension\n心肌梗死 → myocardial infarction\n\n患者高血压，心肌梗死。")
    many = [(f"term{i}", f"t{i}") for i in range(20)] + [("TERM0", "dup")]
    block = contract.term_block.render(many)
    assert block.count("→") == contract.term_block.max_terms == 8
    assert "TERM0" not in block  # case-insensitive duplicate of term0


def test_braces_in_source_or_terms_are_not_substituted():
    user = load_contract().messages("剂量{terms}{source}", "zh-en", [("{source}", "{terms}")])[1]["content"]
    assert user.endswith("{source} → {terms}\n\n剂量{terms}{source}")


def test_block_terms_come_from_the_shared_matcher_in_source_order():
    assert block_terms(GLOSSARY, "心肌梗死合并高血压", "zh-en") == [
        ("心肌梗死", "myocardial infarction"), ("高血压", "hypertension")]  # first entry wins, sentence case dropped
    assert block_terms(GLOSSARY, "Covid-19 with Hypertension", "en-zh") == [("Covid-19", "COVID-19"),
                                                                             ("Hypertension", "高血压")]
    assert block_terms(GLOSSARY, "无关文本", "zh-en") == []
    everyday = Glossary([Term("服用", "take", "cedict", general=True), Term("高血压", "hypertension", "hpo")])
    assert block_terms(everyday, "服用药物控制高血压", "zh-en") == [("高血压", "hypertension")]  # advisory left out
    assert block_terms(None, "高血压", "zh-en") == []
    keep_hpo = lambda hit: any(t.origin == "hpo" for t in hit.terms)  # noqa: E731
    assert block_terms(GLOSSARY, "COVID-19 合并高血压", "zh-en", keep=keep_hpo) == [("高血压", "hypertension")]


@pytest.mark.parametrize(("term", "shown"), [
    ("Hypertension", "hypertension"), ("Decreased circulating antibody concentration",
                                       "decreased circulating antibody concentration"),
    ("COVID-19", "COVID-19"), ("HbA1c", "HbA1c"), ("pH", "pH"), ("A", "A"), ("X-linked inheritance", "X-linked inheritance"),
    ("Parkinson Disease", "Parkinson Disease"),
])
def test_display_form_drops_only_a_heading_capital(term, shown):
    assert display_form(term, "en") == shown
    assert display_form("高血压", "zh") == "高血压"


def test_training_terms_only_name_translations_the_reference_uses():
    zh_record = PreparedRecord("s1", "sentence", "zh-en", "高血压和心肌梗死", "High blood pressure and a heart attack.")
    assert training_terms(GLOSSARY, zh_record) == [("高血压", "high blood pressure")]
    en_record = PreparedRecord("s2", "sentence", "en-zh", "Myocardial infarction.", "心肌梗死。")
    assert training_terms(GLOSSARY, en_record) == [("Myocardial infarction", "心肌梗死")]


def test_glossary_from_prepared_records_reads_both_directions():
    records = [PreparedRecord("t1", "term", "zh-en", "发热", "Fever"),
               PreparedRecord("t1e", "term", "en-zh", "Fever", "发热"),
               PreparedRecord("t2e", "term", "en-zh", "Cough", "咳嗽")]
    glossary = glossary_from_records(records, "train")
    assert sorted((t.zh, t.en) for t in glossary.terms) == [("发热", "Fever"), ("咳嗽", "Cough")]


def test_share_draw_is_seeded_order_free_and_near_the_share():
    ids = [f"sent-train-{i:06d}" for i in range(4000)]
    drawn = [i for i in ids if in_share(i, 0.5, 42)]
    assert 0.47 < len(drawn) / len(ids) < 0.53
    assert drawn == [i for i in reversed(ids) if in_share(i, 0.5, 42)][::-1]
    assert drawn != [i for i in ids if in_share(i, 0.5, 7)]
    assert not any(in_share(i, 0.0, 42) for i in ids[:50]) and all(in_share(i, 1.0, 42) for i in ids[:50])


def test_auto_uses_the_block_only_for_a_model_trained_with_it():
    stage1, stage2 = {"stage": 1, "term_block_share": 0.0}, {"stage": 2, "term_block_share": 0.5}
    assert reads_term_block([stage1, stage2]) and not reads_term_block([stage1]) and not reads_term_block([])
    assert not reads_term_block([{"stage": 2}])  # an adapter exported before the block existed
    assert [term_block_in_use(mode, [stage1, stage2]) for mode in ("auto", "on", "off")] == [True, True, False]
    assert [term_block_in_use(mode, []) for mode in ("auto", "on", "off")] == [False, True, False]
    with pytest.raises(ValueError, match="auto, on, off"):
        term_block_in_use("yes", [])
