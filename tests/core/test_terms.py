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
    assert find_phrase("headaches", "headache", "en").text == "headaches"  # inflection tolerated
    assert find_phrase("headachesque", "headache", "en") is None  # still whole words
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


def test_english_inflection_spelling_and_numerals():
    cases = [
        ("The symptoms resolved.", "symptom", "symptoms"),
        ("She was diagnosed with it.", "diagnose", "diagnosed"),
        ("a diagnosis of", "diagnose", "diagnosis"),
        ("Bleeding stopped", "bleed", "Bleeding"),
        ("two biopsies were taken", "biopsy", "biopsies"),
        ("esophageal tumors", "oesophageal tumour", "esophageal tumors"),
        ("severe anaemia", "anemia", "anaemia"),
        ("the patient was hospitalised", "hospitalized", "hospitalised"),
        ("in the centre", "center", "centre"),
        ("labelled samples", "labeled sample", "labelled samples"),
        ("type 2 diabetes mellitus", "Type II diabetes mellitus", "type 2 diabetes mellitus"),
        ("NON-SMALL cell lung cancer", "non small cell lung cancer", "NON-SMALL cell lung cancer"),
    ]
    for text, phrase, found in cases:
        span = find_phrase(text, phrase, "en")
        assert span is not None and span.text == found, (text, phrase, span)
    # Whole words and the term's own punctuation still hold; an acronym is not an inflected word.
    assert find_phrase("takeaway", "take", "en") is None
    assert find_phrase("myocardial, infarction", "myocardial infarction", "en") is None
    assert find_phrase("first aid was given", "AIDS", "en") is None
    assert find_phrase("hiv and aids", "AIDS", "en").text == "aids"
    assert find_phrase("symptomatic", "symptom", "en") is None


def test_alternatives_in_one_field():
    glossary = Glossary([Term("艾滋病", "acquired immunodeficiency syndrome (AIDS)"),
                         Term("高血压", "hypertension | high blood pressure")])
    checks = glossary.check("艾滋病和高血压", "AIDS and high blood pressure", "zh", "en")
    assert [(c.expected, c.ok) for c in checks] == [
        (["acquired immunodeficiency syndrome", "AIDS"], True), (["hypertension", "high blood pressure"], True)]
    assert [h.span.text for h in glossary.find("Hypertension with AIDS", "en")] == ["Hypertension", "AIDS"]


def test_priority_orders_expected_and_general_words_are_advisory():
    glossary = Glossary([
        Term("治疗", "medical treatment", "cedict", 10, general=True),      # everyday gloss: advisory
        Term("肺炎", "inflammation of the lungs", "cedict", 10, general=True),
        Term("肺炎", "pneumonia", "hpo", 30),                                 # curated outranks
        Term("冠状动脉", "coronary artery", "cedict", 10, general=True),     # specific: still required
        Term("贫血", "anemia", "cedict", 10, general=True),                  # medical word-form: required
    ])
    checks = {c.hit.span.text: c for c in glossary.check("治疗肺炎，冠状动脉，贫血", "We treated it.", "zh", "en")}
    assert checks["肺炎"].expected == ["pneumonia", "inflammation of the lungs"]
    assert (checks["治疗"].status, checks["治疗"].flagged) == ("advisory", False)
    assert [k for k, c in checks.items() if c.flagged] == ["肺炎", "冠状动脉", "贫血"]
    strict = Glossary(glossary.terms, general_terms=True)
    assert all(c.flagged for c in strict.check("治疗肺炎", "We treated it.", "zh", "en"))
    # A plain term file (no source information) is always required: the metric counts every term.
    assert Glossary([Term("治疗", "medical treatment")]).check("治疗", "x", "zh", "en")[0].flagged


def test_consistency_flags_two_translations_of_one_term():
    glossary = Glossary([Term("高血压", "hypertension"), Term("高血压", "high blood pressure"),
                         Term("糖尿病", "diabetes"), Term("糖尿病", "diabetes mellitus")])
    found = glossary.consistency("高血压。糖尿病。高血压，糖尿病。",
                                 "Hypertension. Diabetes mellitus. High blood pressure, diabetes.", "zh", "en")
    assert [(f.term, f.to_dict()["variants"]) for f in found] == [("高血压", ["Hypertension", "High blood pressure"])]
    assert glossary.consistency("高血压，高血压", "hypertension, hypertensions", "zh", "en") == []
    assert glossary.consistency("高血压", "hypertension, high blood pressure", "zh", "en") == []  # one occurrence
