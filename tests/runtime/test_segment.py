from runtime.segment import join_translations, separator_after, split_clauses, split_in_half, split_sentences


def test_sentences_chinese_and_english_punctuation_keep_offsets():
    text = "患者男，65岁。主诉胸痛3小时！诊断：急性心肌梗死。\n\nDr. Smith gave 3.5 mg aspirin, e.g. daily. He improved! Discharged"
    segs = split_sentences(text)
    assert [s.text for s in segs] == [
        "患者男，65岁。", "主诉胸痛3小时！", "诊断：急性心肌梗死。",
        "Dr. Smith gave 3.5 mg aspirin, e.g. daily.", "He improved!", "Discharged",
    ]
    for s in segs:
        assert text[s.start:s.end] == s.text
    assert segs[2].gap == "\n\n" and segs[3].gap == " " and segs[-1].gap == ""


def test_closing_quotes_stay_with_their_sentence():
    segs = split_sentences("医生说：“需要住院。”随后转入ICU。")
    assert [s.text for s in segs] == ["医生说：“需要住院。”", "随后转入ICU。"]


def test_join_keeps_line_breaks_and_uses_target_spacing():
    segs = split_sentences("第一句。第二句。\n第三句。")
    assert join_translations(segs, ["One.", "Two.", "Three."], "en") == "One. Two.\nThree."
    segs = split_sentences("One. Two.\n\nThree.")
    assert join_translations(segs, ["一。", "二。", "三。"], "zh") == "一。二。\n\n三。"
    assert separator_after(segs[0], "zh", last=False) == ""
    assert separator_after(segs[1], "zh", last=False) == "\n\n"
    assert separator_after(segs[2], "zh", last=True) == ""


def test_clauses_and_halves_cover_the_sentence():
    sentence = split_sentences("患者入院后给予阿司匹林、氯吡格雷，并行冠状动脉造影：提示三支病变。")[0]
    parts = split_clauses(sentence)
    assert len(parts) == 4
    assert "".join(p.text for p in parts) == sentence.text
    long = split_sentences("a very long clause without any punctuation at all that goes on and on")[0]
    left, right = split_in_half(long)
    assert f"{left.text} {right.text}" == long.text
    assert long.text[right.start - long.start:] == right.text


def test_whitespace_only_input_has_no_segments():
    assert split_sentences(" \n\t ") == []
