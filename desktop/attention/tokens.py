"""Readable tokens: byte-level BPE pieces merged into whole characters and words.

Qwen's tokenizer is byte-level BPE: a rare Chinese character can be split over two or three
pieces that each hold a fragment of its UTF-8 bytes, and an English word is often several pieces
(``my`` ``ocard`` ``ial``). Shown as they are, the pieces are garbled symbols (``å¿ĥ``: the
problem in the paper's Figure 3c) or fragments a reader cannot judge.

So the views never show pieces. Every piece carries its character span in the original string
(the fast tokenizer's offset mapping), and pieces are grouped into *units*:

* pieces whose spans overlap (fragments of one character) always share a unit;
* a piece that continues a Latin/digit word with no space in between joins it (``my``+``ocard``+
  ``ial`` -> ``myocardial``; ``COVID``+``-``+``19`` -> ``COVID-19``); CJK characters are never
  joined this way, so a Chinese piece keeps the tokenizer's own grouping (``心肌`` stays one unit,
  ``梗`` another): the model's granularity, made readable, not a word segmentation of our own;
* a piece that is only whitespace is attached to the unit before it (or after it, at the start).

A unit's label is the slice of the original text under its span, never a decoded piece, so it is
always whole characters.

Attention is carried over as in Clark et al. (2019, "What does BERT look at?"): attention *to* a
unit is the **sum** over its pieces (attention is a probability mass over keys, and mass adds up),
attention *from* a unit is the **mean** over its pieces (each piece's row is a distribution; the
mean of distributions is a distribution). Rows that summed to 1 over pieces still sum to 1 over
units.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Characters that glue two word parts together when there is no space around them.
_JOINERS = frozenset("-'’_")


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, hangul and CJK punctuation/full-width forms (never word-joined)."""
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF  # radicals, punctuation, kana, CJK unified
        or 0xAC00 <= code <= 0xD7AF  # hangul
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFE30 <= code <= 0xFE4F  # compatibility forms
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x3FFFF  # extension B and later
    )


def _is_word_char(ch: str) -> bool:
    return (ch.isalnum() or unicodedata.category(ch) == "Mn") and not is_cjk(ch)


def _joins(left: str, right: str) -> bool:
    """Whether text ending in ``left`` and a piece starting with ``right`` are one word."""
    if is_cjk(left) or is_cjk(right):
        return False
    if _is_word_char(left) and _is_word_char(right):
        return True
    return (_is_word_char(left) and right in _JOINERS) or (left in _JOINERS and _is_word_char(right))


@dataclass(frozen=True)
class Unit:
    """A readable token: whole characters/words made of one or more BPE pieces."""

    text: str  # the original text under ``span`` (never a decoded piece)
    span: tuple[int, int]  # character offsets into the segment's string, whitespace trimmed
    pieces: tuple[int, ...]  # indices of the BPE pieces it is made of


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def merge_pieces(text: str, spans: Sequence[tuple[int, int]]) -> list[Unit]:
    """Group BPE pieces (given by their character spans in ``text``) into readable units.

    ``spans`` are in piece order; a piece may have an empty span only if it lies inside text
    covered by its neighbours (it then joins the previous unit).
    """
    groups: list[list[int]] = []
    bounds: list[list[int]] = []  # [start, end] of each group, untrimmed
    pending_ws: list[int] = []  # leading whitespace-only pieces, before the first real unit
    for i, (s, e) in enumerate(spans):
        s, e = int(s), int(e)
        ts, te = _trim(text, s, e)
        blank = ts >= te
        if not groups:
            if blank:
                pending_ws.append(i)
                continue
            groups.append(pending_ws + [i])
            bounds.append([s if not pending_ws else int(spans[pending_ws[0]][0]), e])
            pending_ws = []
            continue
        prev_start, prev_end = bounds[-1]
        gs, ge = _trim(text, prev_start, prev_end)
        overlaps = s < prev_end  # fragments of the same character(s)
        contiguous = ts == ge and ts == s  # no whitespace between the unit and this piece
        if blank or overlaps or (contiguous and ge > gs and _joins(text[ge - 1], text[ts])):
            groups[-1].append(i)
            bounds[-1][1] = max(prev_end, e)
        else:
            groups.append([i])
            bounds.append([s, e])
    if pending_ws:  # only whitespace: one unit so that no piece is lost
        groups.append(pending_ws)
        bounds.append([int(spans[pending_ws[0]][0]), int(spans[pending_ws[-1]][1])])
    units = []
    for group, (s, e) in zip(groups, bounds, strict=True):
        ts, te = _trim(text, s, e)
        if ts >= te:
            ts, te = s, e
        units.append(Unit(text[ts:te] if te > ts else "\u2423", (ts, te), tuple(group)))
    return units


def membership(groups: Sequence[Sequence[int]], n_pieces: int) -> np.ndarray:
    """[units, pieces] 0/1 matrix: which pieces each unit is made of (each piece in exactly one)."""
    m = np.zeros((len(groups), n_pieces), dtype=np.float32)
    for u, pieces in enumerate(groups):
        m[u, list(pieces)] = 1.0
    if not np.all(m.sum(axis=0) == 1.0):
        raise ValueError("every piece must belong to exactly one unit")
    return m


def _runs(member: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first piece, piece count) of each unit when every unit is a run of consecutive pieces, in order.

    Always the case for units made by :func:`merge_pieces`; merging is then a segmented sum
    (``np.add.reduceat``) that keeps the input's dtype, instead of a matrix product.
    """
    ones = member > 0
    counts = ones.sum(axis=1)
    if counts.size == 0 or np.any(counts == 0):
        return None
    starts = ones.argmax(axis=1)
    if starts[0] != 0 or np.any(starts[1:] != starts[:-1] + counts[:-1]) or starts[-1] + counts[-1] != member.shape[1]:
        return None
    return starts, counts


def merge_keys(attn: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Sum attention over the key pieces of each unit: [..., q, pieces] -> [..., q, units]."""
    runs = _runs(member)
    if runs is not None:
        return np.add.reduceat(attn, runs[0], axis=-1)
    return attn @ member.T


def merge_queries(attn: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Average attention over the query pieces of each unit: [..., pieces, k] -> [..., units, k]."""
    runs = _runs(member)
    if runs is not None:
        starts, counts = runs
        out = np.add.reduceat(attn, starts, axis=-2)
        out /= counts[:, None].astype(out.dtype)
        return out
    mean = member / member.sum(axis=1, keepdims=True)
    return np.einsum("uq,...qk->...uk", mean, attn, optimize=True)


def merge_vector(values: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Average a per-query-piece quantity over each unit's pieces: [..., pieces] -> [..., units]."""
    mean = member / member.sum(axis=1, keepdims=True)
    return values @ mean.T
