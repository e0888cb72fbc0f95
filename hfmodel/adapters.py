"""Stage adapters: their ``tsx_stage.json``, and the one way they are put on a base model."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from medcore.models import ModelError

STAGE_META = "tsx_stage.json"  # written beside every adapter: which base and which earlier stages
LIVE = ("none", "last", "all")


def read_stage_meta(adapter: str | os.PathLike[str]) -> dict:
    """An adapter's ``tsx_stage.json`` ({} when it has none); refuses a directory that is no adapter."""
    path = Path(adapter) / STAGE_META
    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    return json.loads(path.read_text()) if path.exists() else {}


def stack_adapters(model, adapters: Sequence[str | os.PathLike[str]], live: str = "none"):
    """Stage adapters on ``model`` in training order; ``live`` says which stay LoRA modules.

    - ``"none"``: each adapter merged into the weights in turn; a plain transformers model comes
      back. What the next stage trains on, what the converter merges and exports, what the
      evaluation translates with.
    - ``"last"``: the earlier stages merged, the last kept as a LoRA (a PeftModel): the last adapter
      sees exactly the weights it was trained on top of.
    - ``"all"``: nothing merged: every adapter a live LoRA named ``stage1``, ``stage2``, ... and all
      active together. A LoRA delta is additive, so this computes what the merged stack computes,
      while peft's ``disable_adapter()`` gives back the untouched base weights (the attention
      view's base comparison).
    """
    if live not in LIVE:
        raise ValueError(f"live={live!r}: choose one of {', '.join(LIVE)}")
    from peft import PeftModel

    names = [f"stage{i + 1}" for i in range(len(adapters))]
    for index, (name, adapter) in enumerate(zip(names, adapters, strict=True)):
        read_stage_meta(adapter)  # validates the directory
        if live == "all" and isinstance(model, PeftModel):
            model.load_adapter(str(adapter), adapter_name=name, is_trainable=False)
        else:
            model = PeftModel.from_pretrained(model, str(adapter), adapter_name=name, is_trainable=False)
        if live == "none" or (live == "last" and index < len(adapters) - 1):
            model = model.merge_and_unload()
    if live == "all" and names:
        model.base_model.set_adapter(names)
    return model
