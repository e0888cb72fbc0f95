"""The one GGUF header reader: key/value metadata and tensor types, in pure Python, weights untouched.

Used by the app (memory estimate, chat template, refusing a damaged file before llama.cpp, which
can abort the whole process on one), by the converter (file type, tensor types, adapter metadata of
what it wrote) and by the tests. No Qt, no torch, no ``gguf`` package. Every metadata key the
project reads is in one table, :class:`Key`; :class:`GGUFInfo` exposes them under one set of names.

Format: GGUF v2/v3 (little-endian): magic, version, tensor count, key/value count, the key/value
pairs, then one info record per tensor (name, dimensions, ggml type, offset). Long arrays (the
vocabulary, the merges) are skipped, only their length is kept (:class:`ArrayLength`).
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcore.models import ModelError, check_gguf_header


class Key:
    """Every GGUF metadata key the project reads (``ARCH_*``: prefixed with ``<architecture>.``)."""

    ARCHITECTURE = "general.architecture"
    NAME = "general.name"
    FILE_TYPE = "general.file_type"
    TYPE = "general.type"                        # "model" or "adapter"
    CHAT_TEMPLATE = "tokenizer.chat_template"
    TOKENS = "tokenizer.ggml.tokens"
    EOS_TOKEN_ID = "tokenizer.ggml.eos_token_id"
    EOT_TOKEN_ID = "tokenizer.ggml.eot_token_id"
    LORA_ALPHA = "adapter.lora.alpha"
    ARCH_BLOCK_COUNT = "block_count"
    ARCH_EMBEDDING_LENGTH = "embedding_length"
    ARCH_CONTEXT_LENGTH = "context_length"
    ARCH_HEAD_COUNT = "attention.head_count"
    ARCH_HEAD_COUNT_KV = "attention.head_count_kv"
    ARCH_KEY_LENGTH = "attention.key_length"


# general.file_type values (llama_ftype) -> the converter's names for them.
FILE_TYPE_NAMES = {0: "f32", 1: "f16", 7: "q8_0", 2: "q4_0", 15: "q4_k_m", 17: "q5_k_m", 18: "q6_k", 32: "bf16"}
# ggml tensor types (ggml.h, enum ggml_type) -> names, as the gguf package spells them.
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
    12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# GGUF value types (gguf spec v3).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this are not kept (token lists, merges): only their length is recorded.
_KEEP_ARRAY = 64


class _Reader:
    def __init__(self, fh, size: int):
        self.fh, self.size = fh, size

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise EOFError
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.size:
            raise EOFError
        return self.read(n).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        if n > self.size:
            raise EOFError
        self.fh.seek(n, os.SEEK_CUR)

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.unpack("<I"), self.unpack("<Q")
            if count > self.size:
                raise EOFError
            if count <= _KEEP_ARRAY:
                return [self.value(itype) for _ in range(count)]
            if itype in _SCALARS:
                self.fh.seek(struct.calcsize(_SCALARS[itype]) * count, os.SEEK_CUR)
            elif itype == _STRING:
                for _ in range(count):
                    self.skip_string()
            else:
                for _ in range(count):
                    self.value(itype)
            return ArrayLength(count)
        raise ValueError(f"unknown GGUF value type {vtype}")


@dataclass(frozen=True)
class ArrayLength:
    """Stands in for a long array (e.g. the vocabulary) whose items were skipped."""

    count: int


@dataclass
class GGUFInfo:
    """What a GGUF says about itself. ``metadata``: every key/value (long arrays as :class:`ArrayLength`)."""

    path: Path
    size: int
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_types: Counter = field(default_factory=Counter)  # ggml type name -> number of tensors

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get(Key.ARCHITECTURE, "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get(Key.NAME) or self.path.stem)

    @property
    def file_type(self) -> str:
        """The converter's name for ``general.file_type`` (``q4_k_m``, ``f16``, ...), else the number."""
        ftype = self.metadata.get(Key.FILE_TYPE)
        return FILE_TYPE_NAMES.get(ftype, str(ftype))

    @property
    def n_layers(self) -> int:
        return int(self.arch_value(Key.ARCH_BLOCK_COUNT, 0) or 0)

    @property
    def n_embd(self) -> int:
        return int(self.arch_value(Key.ARCH_EMBEDDING_LENGTH, 0) or 0)

    @property
    def train_ctx(self) -> int:
        return int(self.arch_value(Key.ARCH_CONTEXT_LENGTH, 0) or 0)

    @property
    def n_vocab(self) -> int:
        tokens = self.metadata.get(Key.TOKENS)
        return tokens.count if isinstance(tokens, ArrayLength) else len(tokens or [])

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get(Key.CHAT_TEMPLATE)
        return template if isinstance(template, str) and template.strip() else None

    @property
    def eos_token_id(self) -> int | None:
        return self.metadata.get(Key.EOS_TOKEN_ID)

    @property
    def eot_token_id(self) -> int | None:
        return self.metadata.get(Key.EOT_TOKEN_ID)

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """K and V for every layer and position (f16 by default, llama.cpp's default cache type)."""
        heads = int(self.arch_value(Key.ARCH_HEAD_COUNT, 0) or 0)
        kv_heads = int(self.arch_value(Key.ARCH_HEAD_COUNT_KV, heads) or heads)
        if not heads or not self.n_embd:
            return 0
        head_dim = int(self.arch_value(Key.ARCH_KEY_LENGTH, self.n_embd // heads) or self.n_embd // heads)
        return 2 * self.n_layers * n_ctx * kv_heads * head_dim * bytes_per_value


def read_gguf_info(path: str | os.PathLike[str], tensors: bool = True) -> GGUFInfo:
    """Parse the header of a GGUF file; :class:`ModelError` with a plain reason if it is not one.

    ``tensors=False`` stops after the key/value pairs (the tensor records are not needed to load).
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    check_gguf_header(path)
    size = path.stat().st_size
    types: Counter = Counter()
    try:
        with open(path, "rb", buffering=1 << 20) as fh:
            reader = _Reader(fh, size)
            reader.read(4)  # magic, checked above
            version = reader.unpack("<I")
            if version not in (2, 3):
                raise ModelError(f"{path.name}: unsupported GGUF version {version} (this app reads versions 2 and 3)")
            tensor_count, kv_count = reader.unpack("<Q"), reader.unpack("<Q")
            if kv_count > 100_000 or tensor_count > 1_000_000:
                raise ModelError(f"{path.name}: corrupt GGUF header ({kv_count} keys, {tensor_count} tensors)")
            metadata: dict[str, Any] = {}
            for _ in range(kv_count):
                key = reader.string()
                vtype = reader.unpack("<I")
                metadata[key] = reader.value(vtype)
            if tensors:
                for _ in range(tensor_count):
                    reader.skip_string()  # name
                    n_dims = reader.unpack("<I")
                    if n_dims > 8:
                        raise ValueError(f"a tensor with {n_dims} dimensions")
                    reader.fh.seek(8 * n_dims, os.SEEK_CUR)
                    gtype = reader.unpack("<I")
                    reader.fh.seek(8, os.SEEK_CUR)  # offset
                    types[GGML_TYPE_NAMES.get(gtype, f"type{gtype}")] += 1
    except EOFError:
        raise ModelError(f"{path.name} is truncated or corrupt: its GGUF header ends early ({size:,} bytes)") from None
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ModelError(f"{path.name} is not a readable GGUF file: {exc}") from None
    if tensor_count == 0:
        raise ModelError(f"{path.name} holds no tensors: it is not a model")
    return GGUFInfo(path, size, version, tensor_count, metadata, types)


__all__ = ["FILE_TYPE_NAMES", "GGML_TYPE_NAMES", "ArrayLength", "GGUFInfo", "Key", "read_gguf_info"]
