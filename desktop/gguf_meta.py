"""Read a GGUF file's key/value header in pure Python, before llama.cpp ever sees the file.

llama.cpp can abort the whole process on a damaged file, and it cannot tell us how much memory a
model needs until it has loaded it. The header alone says both: the architecture's sizes give the
KV-cache size, and a header that ends early means a truncated or corrupt file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcore.models import ModelError, check_gguf_header

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
    path: Path
    size: int
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def n_layers(self) -> int:
        return int(self.arch_value("block_count", 0) or 0)

    @property
    def n_embd(self) -> int:
        return int(self.arch_value("embedding_length", 0) or 0)

    @property
    def train_ctx(self) -> int:
        return int(self.arch_value("context_length", 0) or 0)

    @property
    def n_vocab(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        return tokens.count if isinstance(tokens, ArrayLength) else len(tokens or [])

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template.strip() else None

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """K and V for every layer and position (f16 by default, llama.cpp's default cache type)."""
        heads = int(self.arch_value("attention.head_count", 0) or 0)
        kv_heads = int(self.arch_value("attention.head_count_kv", heads) or heads)
        if not heads or not self.n_embd:
            return 0
        head_dim = int(self.arch_value("attention.key_length", self.n_embd // heads) or self.n_embd // heads)
        return 2 * self.n_layers * n_ctx * kv_heads * head_dim * bytes_per_value


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the header of a GGUF file; :class:`ModelError` with a plain reason if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    check_gguf_header(path)
    size = path.stat().st_size
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
    except EOFError:
        raise ModelError(f"{path.name} is truncated or corrupt: its GGUF header ends early ({size:,} bytes)") from None
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ModelError(f"{path.name} is not a readable GGUF file: {exc}") from None
    if tensor_count == 0:
        raise ModelError(f"{path.name} holds no tensors: it is not a model")
    return GGUFInfo(path, size, version, tensor_count, metadata)
