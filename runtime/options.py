"""What a model is loaded with (:class:`LoadOptions`) and what was loaded (:class:`ModelInfo`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadOptions:
    """Per-model settings (the window keeps them in QSettings, the CLI takes them as flags)."""

    n_ctx: int = 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    n_batch: int = 512
    # llama.cpp's weight repacking (CPU_REPACK buffers, faster kernels). Off = plain weights, the way
    # out when a CPU-specific path misbehaves; $TSX_NO_REPACK=1 turns it off whatever this says.
    repack: bool = True
    # Segments translated side by side (runtime.side_by_side): 0 = automatic (up to AUTO_PARALLEL,
    # as many as the context size and free memory allow), 1 = one after the other.
    parallel: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelInfo:
    path: Path
    name: str
    size: int
    architecture: str
    n_layers: int
    n_ctx: int
    n_vocab: int
    end_of_turn: str
    estimated_bytes: int
    load_seconds: float
    options: LoadOptions
    repack: bool = True                                          # what llama.cpp was told
    buffers: dict[str, float] = field(default_factory=dict)     # weight buffers, MiB per type
    cpu_variant: str | None = None                               # e.g. "zen4" (portable build)
    source: Path | None = None                # what was chosen: a tuned-model spec file, or the GGUF (= path)
    spec: str | None = None                   # the tuned model's name
    adapters: list[dict[str, Any]] = field(default_factory=list)  # runtime LoRA stack (medcore.lora provenance)
    adapters_active: bool = False             # False: the base model alone translates
    base_sha256: str | None = None            # known when adapters were checked against the base
