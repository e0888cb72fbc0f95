"""Metric values on inputs small enough to work out by hand, the term-accuracy rules, COMET from a local checkpoint."""

from __future__ import annotations

import math

import pytest

from evaluation import scoring as S
from medcore.terms import Glossary, Term

# ---------------------------------------------------------------------------------------------
# BLEU / chrF against hand-computed values
# ---------------------------------------------------------------------------------------------


def test_bleu_13a_hand_computed():
    # 5 tokens, one wrong at the end: p1..p4 = 4/5, 3/4, 2/3, 1/2; same length, so BP = 1.
    score = S.bleu(["the patient has acute fever"], ["the patient has acute pain"], "en")
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert score.score == pytest.approx(expected, abs=1e-9)
    assert round(score.score, 2) == 66.87
    assert "tok:13a" in score.signature and "nrefs:1" in score.signature


def test_bleu_brevity_penalty():
    # All n-grams of the 4-token hypothesis match, but it is shorter than the 6-token reference.
    score = S.bleu(["the patient has fever"], ["the patient has fever and cough"], "en")
    assert score.score == pytest.approx(100 * math.exp(1 - 6 / 4), abs=1e-9)  # 60.65


def test_bleu_zh_tokenizes_per_character():
    # 急性心肌梗死 vs 急性心肌梗塞: 6 characters, last differs: p = 5/6, 4/5, 3/4, 2/3 -> (1/3)^(1/4).
    score = S.bleu(["急性心肌梗死"], ["急性心肌梗塞"], "zh")
    assert score.score == pytest.approx(100 * (1 / 3) ** 0.25, abs=1e-9)  # 75.98
    assert "tok:zh" in score.signature
    # With the English tokenizer the whole Chinese string is one (wrong) token: BLEU 0.
    assert S.bleu(["急性心肌梗死"], ["急性心肌梗塞"], "en").score == 0.0


def test_corpus_bleu_pools_ngram_counts():
    # Corpus BLEU adds the n-gram counts of all segments before taking precisions (it is not a mean
    # of sentence BLEU): seg 1 matches 4/3/2/1 of 4/3/2/1, seg 2 matches 3/2/1/0 of 4/3/2/1.
    score = S.bleu(["a b c d", "a b c d"], ["a b c d", "a b c e"], "en")
    expected = 100 * (7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** 0.25
    assert score.score == pytest.approx(expected, abs=1e-9)


def test_chrf_hand_computed():
    # "fever" vs "fevers": every hypothesis n-gram (n=1..5) matches, P=1; recall 5/6, 4/5, 3/4, 2/3, 1/2;
    # n=6 has no hypothesis n-gram and does not count. chrF2 = 5 P R / (4 P + R).
    recall = (5 / 6 + 4 / 5 + 3 / 4 + 2 / 3 + 1 / 2) / 5
    expected = 100 * 5 * recall / (4 + recall)
    score = S.chrf(["fever"], ["fevers"])
    assert score.score == pytest.approx(expected, abs=1e-9)  # 75.37
    assert "nc:6" in score.signature and "nw:0" in score.signature


def test_bleu_rejects_unknown_language_and_length_mismatch():
    with pytest.raises(ValueError):
        S.bleu(["a"], ["a"], "fr")
    with pytest.raises(ValueError):
        S.bleu(["a", "b"], ["a"], "en")


# ---------------------------------------------------------------------------------------------
# Term accuracy: term pairs (exact match)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hyp", "target", "tgt_lang", "ok"), [
    ("Angina.", "angina", "en", True),                    # case and a closing full stop
    ("  ANGINA  ", "angina", "en", True),
    ("ＣＯＶＩＤ－１９", "COVID-19", "en", True),         # full-width letters, digits, hyphen
    ("\"Myocardial  infarction\"", "myocardial infarction", "en", True),  # quotes, double space
    ("acute angina", "angina", "en", False),              # an extra word is another term
    ("headaches", "headache", "en", False),               # plural is not the exact term
    ("ache", "headache", "en", False),
    ("心肌梗死。", "心肌梗死", "zh", True),                # a closing 。 is not part of the term
    ("心肌梗塞", "心肌梗死", "zh", False),                # one different character: different term
    ("急性心肌梗死", "心肌梗死", "zh", False),            # a longer term containing it is not it
    ("新型冠狀病毒", "新型冠状病毒", "zh", False),        # traditional 狀 is a different character
    ("", "angina", "en", False),
])
def test_term_exact_match_rules(hyp, target, tgt_lang, ok):
    src_lang = "zh" if tgt_lang == "en" else "en"
    assert S.term_exact_match("x", hyp, target, src_lang, tgt_lang).ok is ok


def test_term_exact_match_accepts_glossary_alternatives():
    glossary = Glossary([Term("心绞痛", "angina"), Term("心绞痛", "angina pectoris"), Term("绞痛", "colic")])
    match = S.term_exact_match("心绞痛", "Angina pectoris", "angina", "zh", "en", glossary)
    assert match.ok and match.accepted == ["angina", "angina pectoris"]
    # 绞痛 is inside the source but is not the whole source term, so "colic" is not accepted.
    assert not S.term_exact_match("心绞痛", "colic", "angina", "zh", "en", glossary).ok


def test_term_records_accuracy_counts():
    tally = S.term_records_accuracy(["头痛", "发热", "心肌梗死"], ["Headache", "fever.", "heart attack"],
                                    ["headache", "fever", "myocardial infarction"], "zh", "en")
    assert (tally.correct, tally.total, tally.accuracy) == (2, 3, pytest.approx(2 / 3))
    assert tally.misses[0]["hypothesis"] == "heart attack"


# ---------------------------------------------------------------------------------------------
# Term accuracy: glossary terms inside sentences
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def glossary() -> Glossary:
    return Glossary([Term("头痛", "headache"), Term("疼痛", "ache"), Term("发热", "fever"),
                     Term("心肌梗死", "myocardial infarction"), Term("急性心肌梗死", "acute myocardial infarction"),
                     Term("新型冠状病毒", "novel coronavirus"), Term("COVID-19", "COVID-19")])


def _acc(glossary, src, hyp, src_lang, tgt_lang, ref=None):
    every, confirmed = S.sentence_term_accuracy([src], [hyp], src_lang, tgt_lang, glossary,
                                                None if ref is None else [ref])
    return every, confirmed


def test_sentence_terms_case_and_width_insensitive_english(glossary):
    every, _ = _acc(glossary, "患者头痛，伴发热。", "The patient had a HEADACHE with ｆｅｖｅｒ.", "zh", "en")
    assert (every.correct, every.total) == (2, 2)


def test_sentence_terms_whole_words_only_in_output(glossary):
    # "headaches" is the term inflected (counted, medcore.terms.word_key); "feverish" is another word.
    every, _ = _acc(glossary, "患者头痛，伴发热。", "The patient had headaches and felt feverish.", "zh", "en")
    assert (every.correct, every.total) == (1, 2)
    assert {m["term"] for m in every.misses} == {"发热"}


def test_sentence_terms_word_inside_longer_word_in_source(glossary):
    # "ache" inside "headache" is not a separate source term: only headache and fever are counted.
    every, _ = _acc(glossary, "Severe headache and fever.", "严重头疼和发热。", "en", "zh")
    assert every.total == 2
    # 头疼 is not 头痛 (character-exact); 发热 is found.
    assert every.correct == 1 and every.misses[0]["expected"] == ["头痛"]


def test_sentence_terms_longest_match_in_chinese_source(glossary):
    # 急性心肌梗死 is matched as one term (leftmost-longest); its expected translation is the full phrase.
    every, _ = _acc(glossary, "急性心肌梗死患者", "patients with myocardial infarction", "zh", "en")
    assert (every.correct, every.total) == (0, 1)
    every, _ = _acc(glossary, "急性心肌梗死患者", "Patients with Acute Myocardial Infarction", "zh", "en")
    assert (every.correct, every.total) == (1, 1)


def test_sentence_terms_chinese_target_is_character_exact(glossary):
    every, _ = _acc(glossary, "The novel coronavirus spreads.", "新型冠狀病毒传播。", "en", "zh")
    assert (every.correct, every.total) == (0, 1)
    every, _ = _acc(glossary, "The NOVEL CORONAVIRUS spreads.", "新型冠状病毒传播。", "en", "zh")
    assert (every.correct, every.total) == (1, 1)


def test_sentence_terms_reference_confirmed(glossary):
    # Only the terms whose expected translation the reference also uses count in the second tally.
    every, confirmed = _acc(glossary, "患者头痛，伴发热。", "The patient had a headache and pyrexia.", "zh", "en",
                            ref="The patient had a headache and pyrexia.")
    assert (every.correct, every.total) == (1, 2)
    assert (confirmed.correct, confirmed.total) == (1, 1)


def test_no_terms_gives_no_accuracy(glossary):
    every, _ = _acc(glossary, "今天天气很好。", "The weather is fine today.", "zh", "en")
    assert every.total == 0 and every.accuracy is None


# ---------------------------------------------------------------------------------------------
# Paired bootstrap
# ---------------------------------------------------------------------------------------------

REFS = [f"the patient has acute chest pain number {i} today" for i in range(40)]
BASE = [f"the patient has pain number {i}" for i in range(40)]


def test_paired_bootstrap_clear_improvement_is_significant():
    result = S.paired_bootstrap(("base", BASE), [("better", REFS)], REFS, "en", n_samples=300)
    base, better = result["systems"]
    assert base["bleu"]["p_value"] is None
    assert better["bleu"]["score"] == pytest.approx(100.0)
    assert better["bleu"]["p_value"] < 0.01 and better["chrf"]["p_value"] < 0.01
    assert "bs:300" in result["signatures"]["BLEU"] and "tok:13a" in result["signatures"]["BLEU"]


def test_paired_bootstrap_one_changed_segment_is_not_significant():
    near = list(BASE)
    near[3] = REFS[3]
    result = S.paired_bootstrap(("base", BASE), [("near", near)], REFS, "en", n_samples=300)
    assert result["systems"][1]["bleu"]["p_value"] > 0.05
    # Same seed, same answer.
    again = S.paired_bootstrap(("base", BASE), [("near", near)], REFS, "en", n_samples=300)
    assert again["systems"] == result["systems"]


def test_paired_bootstrap_identical_system_gets_p_one():
    result = S.paired_bootstrap(("base", BASE), [("same", list(BASE))], REFS, "en", n_samples=100)
    same = result["systems"][1]
    assert same["identical"] is True and same["bleu"]["p_value"] == 1.0


def test_paired_bootstrap_length_mismatch():
    with pytest.raises(ValueError, match="hypotheses"):
        S.paired_bootstrap(("base", BASE), [("short", BASE[:5])], REFS, "en")


# ---------------------------------------------------------------------------------------------
# COMET, end to end through the real package with a tiny local checkpoint
# ---------------------------------------------------------------------------------------------


def _triples(samples):
    return [s["src"] for s in samples], [s["mt"] for s in samples], [s["ref"] for s in samples]


@pytest.mark.parametrize("which", ["dir", "ckpt"])
def test_comet_from_local_checkpoint(tiny_comet, which):
    src, mt, ref = _triples(tiny_comet["samples"])
    result = S.comet_score(src, mt, ref, checkpoint=tiny_comet[which], batch_size=2)
    # The checkpoint round trip reproduces the in-memory model's scores (weights came from the file).
    assert result.segments == pytest.approx(tiny_comet["scores"], abs=1e-5)
    assert result.system == pytest.approx(sum(result.segments) / len(result.segments))
    assert all(math.isfinite(s) for s in result.segments)
    # A segment's score does not depend on what it is batched with.
    single = S.comet_score(src[1:2], mt[1:2], ref[1:2], checkpoint=tiny_comet["dir"], batch_size=1)
    assert single.segments[0] == pytest.approx(result.segments[1], abs=1e-5)


def test_comet_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(S.CometUnavailable, match="not found"):
        S.comet_score(["a"], ["b"], ["c"], checkpoint=tmp_path / "nothing.ckpt")
    with pytest.raises(S.CometUnavailable, match="checkpoints/model.ckpt"):
        S.comet_score(["a"], ["b"], ["c"], checkpoint=tmp_path)
    with pytest.raises(S.CometUnavailable, match="no COMET checkpoint"):
        S.comet_score(["a"], ["b"], ["c"])


def test_comet_encoder_override(tiny_comet, tmp_path):
    """A checkpoint whose hparams name an encoder that is not here (like xlm-roberta-large on the hub)
    fails offline with a clear message, and loads when the encoder directory is given."""
    import shutil

    import torch
    import yaml

    copy = tmp_path / "moved"
    shutil.copytree(tiny_comet["dir"], copy, ignore=shutil.ignore_patterns("encoder"))
    missing = str(tmp_path / "not-here" / "xlm-roberta-tiny")
    # The encoder name lives in hparams.yaml and in the checkpoint's own hyper_parameters.
    hparams = yaml.safe_load((copy / "hparams.yaml").read_text())
    hparams["pretrained_model"] = missing
    (copy / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    ckpt = torch.load(copy / "checkpoints" / "model.ckpt", map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["pretrained_model"] = missing
    torch.save(ckpt, copy / "checkpoints" / "model.ckpt")
    src, mt, ref = _triples(tiny_comet["samples"])
    with pytest.raises(S.CometUnavailable, match="encoder"):
        S.comet_score(src, mt, ref, checkpoint=copy)
    result = S.comet_score(src, mt, ref, checkpoint=copy, encoder=tiny_comet["encoder"])
    assert result.segments == pytest.approx(tiny_comet["scores"], abs=1e-5)


def test_scoring_imports_without_torch():
    """Scoring (and the breakdown, reports and test sets around it) needs no torch, sacreBLEU or COMET to import."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import json, sys\n"
            "import evaluation.scoring, evaluation.aggregate, evaluation.reports, evaluation.testsets\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'sacrebleu', 'comet') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
