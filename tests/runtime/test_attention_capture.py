"""The parts of the attention capture (``runtime.attention_capture``) that need no model; the capture
itself is checked through the app's attention engine against the transformers reference
(``tests/attention/test_llama_engine.py``)."""

from __future__ import annotations

import pytest

from runtime.attention_capture import CaptureError, char_offsets, max_bytes_from_env


def test_char_offsets_cover_multibyte_fragments_and_refuse_a_mismatch():
    text = "心肌 a氯"
    pieces = ["心".encode(), "肌".encode(), b" a", "氯".encode()[:2], "氯".encode()[2:]]
    # A piece holding part of a character gets the whole character (as HF offset mappings do).
    assert char_offsets(text, pieces) == [(0, 1), (1, 2), (2, 4), (4, 5), (4, 5)]
    assert char_offsets(text, pieces[:-1]) is None  # does not spell the text out: the caller falls back


def test_memory_cap_from_environment():
    assert max_bytes_from_env(environ={}) == 192 * 2**20
    assert max_bytes_from_env(environ={"TSX_ATTENTION_MAX_MB": "8"}) == 8 * 2**20
    for bad in ("lots", "0", "-3"):
        with pytest.raises(CaptureError, match="TSX_ATTENTION_MAX_MB"):
            max_bytes_from_env(environ={"TSX_ATTENTION_MAX_MB": bad})
