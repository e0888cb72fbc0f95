"""One reader for every zh/en pair file: term lists and sentence pairs alike.

Formats (chosen by extension):

- ``.tsv`` / ``.txt``: ``zh<TAB>en`` a line; an optional header line naming the columns.
- ``.csv``: a header row naming the columns (``zh``/``en`` or ``chinese``/``english`` or ``中文``/``英文``).
- ``.xlsx``: the first sheet, header row as for CSV.
- ``.jsonl``: one object a line with ``zh`` and ``en`` keys, or ``{"translation": {"zh":…, "en":…}}``.
- ``.zh`` + ``.en``: two line-aligned files; pass either one.

Malformed input raises :class:`DataFormatError` naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ZH_NAMES = ("zh", "chinese", "zh_cn", "zh-cn", "zh-hans", "中文", "汉语", "source_zh")
EN_NAMES = ("en", "english", "en_us", "en-us", "英文", "英语", "source_en")
SUPPORTED = (".tsv", ".txt", ".csv", ".xlsx", ".jsonl", ".zh", ".en")


class DataFormatError(ValueError):
    """A pair file that cannot be read as written: says which file, which line, and what is wrong."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class RawPair:
    zh: str
    en: str
    path: str
    line: int


def read_pairs(path: str | Path, columns: tuple[str, str] | None = None) -> Iterator[RawPair]:
    """Yield the pairs of one file, unnormalised. ``columns`` names the zh and en columns explicitly."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, None, "file not found")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".txt"):
        yield from _read_tsv(path, columns)
    elif suffix == ".csv":
        yield from _read_table(path, _csv_rows(path), columns)
    elif suffix == ".xlsx":
        yield from _read_table(path, _xlsx_rows(path), columns)
    elif suffix == ".jsonl":
        yield from _read_jsonl(path, columns)
    elif suffix in (".zh", ".en"):
        yield from _read_aligned(path)
    else:
        raise DataFormatError(path, None, f"unsupported extension {suffix!r}; use one of {', '.join(SUPPORTED)}")


def _open_text(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"not valid UTF-8 ({exc.reason}); re-save the file as UTF-8") from None


def _header_index(path: Path, header: list[str], columns: tuple[str, str] | None) -> tuple[int, int] | None:
    names = [str(h or "").strip().lower() for h in header]
    if columns:
        wanted = [c.lower() for c in columns]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataFormatError(path, 1, f"column(s) {missing} not in header {header}")
        return names.index(wanted[0]), names.index(wanted[1])
    zh = next((names.index(n) for n in ZH_NAMES if n in names), None)
    en = next((names.index(n) for n in EN_NAMES if n in names), None)
    if zh is None or en is None:
        return None
    return zh, en


def _read_tsv(path: Path, columns: tuple[str, str] | None) -> Iterator[RawPair]:
    lines = _open_text(path)
    idx = (0, 1)
    start = 0
    if lines:
        found = _header_index(path, lines[0].split("\t"), columns)
        if found is not None:
            idx, start = found, 1
        elif columns:
            raise DataFormatError(path, 1, f"columns {columns} requested but the first line is not a header")
    width = max(idx) + 1
    for number, text in enumerate(lines[start:], start=start + 1):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) < width:
            raise DataFormatError(path, number, f"expected {width} tab-separated fields (zh<TAB>en), found {len(fields)}")
        if start == 0 and len(fields) > 2:
            raise DataFormatError(path, number, f"expected 2 tab-separated fields (zh<TAB>en), found {len(fields)}")
        yield RawPair(fields[idx[0]], fields[idx[1]], str(path), number)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    lines = _open_text(path)
    try:
        yield from enumerate(csv.reader(lines), start=1)
    except csv.Error as exc:
        raise DataFormatError(path, None, f"CSV error: {exc}") from None


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise DataFormatError(path, None, f"cannot open as an Excel workbook: {exc}") from None
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, ["" if v is None else str(v) for v in row]
    finally:
        book.close()


def _read_table(path: Path, rows: Iterator[tuple[int, list[str]]], columns: tuple[str, str] | None) -> Iterator[RawPair]:
    first = next(rows, None)
    if first is None:
        return
    idx = _header_index(path, first[1], columns)
    if idx is None:
        raise DataFormatError(
            path, 1, f"no zh/en columns in header {first[1]}; name them 'zh' and 'en' or pass columns explicitly"
        )
    for number, row in rows:
        if not any(str(c).strip() for c in row):
            continue
        if len(row) <= max(idx):
            raise DataFormatError(path, number, f"row has {len(row)} cells, the zh/en columns need {max(idx) + 1}")
        yield RawPair(row[idx[0]], row[idx[1]], str(path), number)


def _read_jsonl(path: Path, columns: tuple[str, str] | None) -> Iterator[RawPair]:
    zh_key, en_key = columns or ("zh", "en")
    for number, text in enumerate(_open_text(path), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, number, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        if isinstance(obj, dict) and isinstance(obj.get("translation"), dict):
            obj = obj["translation"]
        if not isinstance(obj, dict) or zh_key not in obj or en_key not in obj:
            raise DataFormatError(path, number, f"expected an object with {zh_key!r} and {en_key!r} keys")
        zh, en = obj[zh_key], obj[en_key]
        if not isinstance(zh, str) or not isinstance(en, str):
            raise DataFormatError(path, number, f"{zh_key!r} and {en_key!r} must be strings")
        yield RawPair(zh, en, str(path), number)


def _read_aligned(path: Path) -> Iterator[RawPair]:
    zh_path, en_path = path.with_suffix(".zh"), path.with_suffix(".en")
    for p in (zh_path, en_path):
        if not p.exists():
            raise DataFormatError(p, None, "aligned .zh/.en input needs both files side by side")
    zh_lines, en_lines = _open_text(zh_path), _open_text(en_path)
    if len(zh_lines) != len(en_lines):
        raise DataFormatError(
            en_path, None, f"line counts differ: {zh_path.name} has {len(zh_lines)}, {en_path.name} has {len(en_lines)}"
        )
    for number, (zh, en) in enumerate(zip(zh_lines, en_lines, strict=True), start=1):
        if zh.strip() or en.strip():
            yield RawPair(zh, en, str(zh_path), number)
