"""Compatibility name for the one GGUF header reader, :mod:`medcore.gguf_header` (app, converter, tests)."""

from __future__ import annotations

from medcore.gguf_header import ArrayLength, GGUFInfo, Key, read_gguf_info

__all__ = ["ArrayLength", "GGUFInfo", "Key", "read_gguf_info"]
