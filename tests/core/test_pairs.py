"""One reader for every pair format; malformed input names file, line and problem."""

from __future__ import annotations

import json

import pytest

from medcore.pairs import DataFormatError, read_pairs


def test_tsv_with_and_without_header(tmp_path):
    plain = tmp_path / "a.tsv"
    plain.write_text("心绞痛\tangina\n\n头痛\theadache\n", encoding="utf-8")
    assert [(p.zh, p.en, p.line) for p in read_pairs(plain)] == [("心绞痛", "angina", 1), ("头痛", "headache", 3)]
    headed = tmp_path / "b.tsv"
    headed.write_text("id\tEnglish\tChinese\n1\tangina\t心绞痛\n", encoding="utf-8")
    assert [(p.zh, p.en) for p in read_pairs(headed)] == [("心绞痛", "angina")]


def test_tsv_wrong_field_count_names_the_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("心绞痛\tangina\n头痛 headache\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        list(read_pairs(bad))
    assert info.value.line == 2 and "bad.tsv:2" in str(info.value) and "found 1" in str(info.value)


def test_not_utf8_is_reported_with_line(tmp_path):
    bad = tmp_path / "gbk.tsv"
    bad.write_bytes("心绞痛\tangina\n".encode() + "发热\tfever\n".encode("gb18030"))
    with pytest.raises(DataFormatError, match=r"gbk.tsv:2: not valid UTF-8"):
        list(read_pairs(bad))


def test_csv_named_columns_and_missing_columns(tmp_path):
    good = tmp_path / "t.csv"
    good.write_text('en,zh,note\n"fever, high",高热,x\n', encoding="utf-8")
    assert [(p.zh, p.en, p.line) for p in read_pairs(good)] == [("高热", "fever, high", 2)]
    bad = tmp_path / "u.csv"
    bad.write_text("a,b\nx,y\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no zh/en columns"):
        list(read_pairs(bad))


def test_xlsx(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["中文", "英文"])
    sheet.append(["贫血", "anemia"])
    sheet.append([None, None])
    sheet.append(["发热", "fever"])
    path = tmp_path / "t.xlsx"
    book.save(path)
    assert [(p.zh, p.en, p.line) for p in read_pairs(path)] == [("贫血", "anemia", 2), ("发热", "fever", 4)]
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="Excel"):
        list(read_pairs(broken))


def test_jsonl_both_shapes_and_errors(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"zh": "咳嗽", "en": "cough"}, ensure_ascii=False) + "\n"
                    + json.dumps({"translation": {"zh": "哮喘", "en": "asthma"}}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert [(p.zh, p.en) for p in read_pairs(path)] == [("咳嗽", "cough"), ("哮喘", "asthma")]
    path.write_text('{"zh": "咳嗽", "en": "cough"}\n{"zh": 1}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"t.jsonl:2: expected an object"):
        list(read_pairs(path))
    path.write_text('{"zh": "咳嗽", \n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="invalid JSON"):
        list(read_pairs(path))


def test_aligned_files(tmp_path):
    (tmp_path / "c.zh").write_text("发热\n咳嗽\n", encoding="utf-8")
    (tmp_path / "c.en").write_text("fever\ncough\n", encoding="utf-8")
    assert [(p.zh, p.en) for p in read_pairs(tmp_path / "c.en")] == [("发热", "fever"), ("咳嗽", "cough")]
    (tmp_path / "c.en").write_text("fever\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line counts differ"):
        list(read_pairs(tmp_path / "c.zh"))


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(DataFormatError, match="unsupported extension"):
        list(read_pairs(tmp_path / "x.docx"))
    with pytest.raises(DataFormatError, match="file not found"):
        list(read_pairs(tmp_path / "nope.tsv"))


def test_every_shared_file_reads(shared_data):
    counts = {p.name: sum(1 for _ in read_pairs(p)) for p in sorted(shared_data.glob("*/*.tsv"))}
    assert counts["hpo_zh.tsv"] == 18069 and counts["tico19_en2zh.tsv"] == 3070
