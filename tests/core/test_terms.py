"""The one term matcher: the rules the app highlights with and the metric counts with."""

from __future__ import annotations

from medcore.terms import Glossary, Term, find_phrase
from medcore.textnorm import detect_lang, normalize_en, normalize_zh

GLOSSARY = Glossary([
    Term("心肌梗死", "myocardial infarction"),
    Term("急性心肌梗死", "acute myocardial infarction"),
    Term("头痛", "headache"),
    Term("疼痛", "ache"),
    Term("新型冠状病毒肺炎", "COVID-19"),
    Term("阿司匹林", "aspirin"),
    Term("阿司匹林", "acetylsalicylic acid"),
    Term("肺", "lung"),  # single characters are too ambiguous to match in Chinese
])


def test_chinese_leftmost_longest():
    hits = GLOSSARY.find("患者急性心肌梗死后心肌梗死复发，伴头痛。肺", "zh")
    assert [(h.span.text, h.span.start) for h in hits] == [("急性心肌梗死", 2), ("心肌梗死", 9), ("头痛", 17)]


def test_english_word_boundaries_case_width_and_spacing():
    text = "Acute  Myocardial infarction, headache, an ache, ＣＯＶＩＤ-19 and covid19"
    hits = GLOSSARY.find(text, "en")
    assert [h.span.text for h in hits] == ["Acute  Myocardial infarction", "headache", "ache", "ＣＯＶＩＤ-19"]
    assert text[hits[0].span.start : hits[0].span.end] == "Acute  Myocardial infarction"
    # "ache" inside "headache" is not a hit: headache matched whole, and only the free-standing "ache" follows.
    assert sum(1 for h in hits if h.span.text == "ache") == 1


def test_punctuation_between_words_must_match_the_term():
    assert GLOSSARY.find("myocardial, infarction", "en") == []


def test_check_flags_missing_translations_and_accepts_alternatives():
    checks = GLOSSARY.check("急性心肌梗死患者服用阿司匹林后头痛", "Patients with ACUTE myocardial infarction "
                            "took acetylsalicylic acid, then had a head ache", "zh", "en")
    status = {c.hit.span.text: (c.ok, c.found.text if c.found else None) for c in checks}
    assert status == {"急性心肌梗死": (True, "ACUTE myocardial infarction"),
                      "阿司匹林": (True, "acetylsalicylic acid"), "头痛": (False, None)}
    assert checks[2].to_dict()["status"] == "missing"


def test_find_phrase_rules():
    assert find_phrase("患者有心肌梗死病史", "心肌梗死", "zh").start == 3
    assert find_phrase("患者有心肌梗塞病史", "心肌梗死", "zh") is None  # character-exact for Chinese
    assert find_phrase("Severe HEADACHE.", "headache", "en").text == "HEADACHE"
    assert find_phrase("headaches", "headache", "en") is None
    assert find_phrase("ｃｏｖｉｄ-19", "COVID-19", "en").text == "ｃｏｖｉｄ-19"


def test_glossary_load_real_files(shared_data):
    glossary = Glossary.load([shared_data / "terms" / "tico19_covid_terms.tsv", shared_data / "terms" / "cedict_medical.tsv"])
    assert len(glossary) > 2500
    hits = glossary.find("急性支气管炎患者需要活组织检查", "zh")
    assert [h.span.text for h in hits][:1] == ["急性支气管炎"]
    assert "acute bronchitis" in hits[0].expected("en")


def test_normalisation_and_language_detection():
    assert normalize_zh("鸟氨 酸　ＣＴ检查，５０ｍｇ") == "鸟氨酸 CT检查，50mg"
    assert normalize_en("５０ ｍｇ\u200b （daily）") == "50 mg (daily)"
    assert detect_lang("患者CT示右肺HIV阳性") == "zh"
    assert detect_lang("The patient's CT showed 肺 nodules in both lungs") == "en"
    assert detect_lang("12345") == "en"
