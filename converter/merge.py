"""Base model + stage adapters (in training order) -> one merged HF directory with a manifest.

Stage 2 was trained on base+stage1 merged, so the adapters are applied exactly the way training
saw them (``hfmodel.adapters.stack_adapters``), each merged into the weights in turn. Before any
weight is loaded the inputs are checked: supported architecture, tokenizer files present, every
adapter trained on this base (``tsx_stage.json``'s fingerprint) and given in its recorded order
(no stage skipped), enough free disk. The output directory appears atomically or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from converter import ConvertError
from converter.checks import architecture, check_tokenizer_files, ensure_disk
from medcore.atomic import atomic_dir
from medcore.models import resolve_model, sha256_file

log = logging.getLogger(__name__)
MANIFEST = "tsx_merge.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "tsx_stage.json")


def _hash_tree(directory: Path, names: list[str] | None = None) -> dict[str, str]:
    files = [directory / n for n in names] if names else sorted(p for p in directory.iterdir() if p.is_file())
    return {p.name: sha256_file(p) for p in files if p.exists()}


def check_adapters(base: str | os.PathLike[str], adapters: list[str | os.PathLike[str]]) -> list[dict]:
    """Every adapter belongs to this base and the list is the stack it was trained in. Returns the metas."""
    from hfmodel.adapters import read_stage_meta
    from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

    fingerprint = base_fingerprint(base)
    metas = []
    for index, adapter in enumerate(adapters):
        adapter = Path(adapter)
        if not adapter.is_dir():
            raise ConvertError(f"adapter not found: {adapter}")
        meta = read_stage_meta(adapter)
        if not meta:
            log.warning("%s has no tsx_stage.json: cannot check which base or stage it belongs to", adapter)
        recorded = meta.get("base_fingerprint")
        if recorded and recorded != fingerprint:
            raise ConvertError(
                f"adapter {adapter} was trained on another base model ({meta.get('base')}, fingerprint "
                f"{recorded[:12]}…), not on {base} (fingerprint {fingerprint[:12]}…)")
        stack = meta.get("stack")
        if stack is not None:
            given = [str(Path(a).resolve()) for a in adapters[:index]]
            if len(stack) != len(given):
                raise ConvertError(
                    f"adapter {adapter} was trained on top of {len(stack)} earlier stage(s) ({', '.join(stack) or 'none'}) "
                    f"but {len(given)} were given before it; pass the adapters in training order, none skipped")
            recorded = meta.get("stack_sha256")
            if recorded is not None:  # the earlier stages' content is known: a copy elsewhere is fine, others are not
                for want, got in zip(recorded, given, strict=False):
                    if adapter_fingerprint(got) != want:
                        raise ConvertError(
                            f"adapter {adapter} was trained on top of another earlier stage (sha256 {want[:12]}…) "
                            f"than {got}; use the adapters of one training run")
            else:
                for want, got in zip(stack, given, strict=False):
                    if want != got:
                        log.warning("adapter %s was trained on top of %s; using %s in its place", adapter, want, got)
        metas.append(meta)
    stages = [m.get("stage") for m in metas if m.get("stage") is not None]
    if stages != sorted(stages):
        raise ConvertError(f"adapters are not in training order (stages {stages}); give stage 1 before stage 2")
    return metas


def merge(base: str | os.PathLike[str], adapters: list[str | os.PathLike[str]], out: str | os.PathLike[str],
          dtype: str = "float32", check: bool = True) -> dict[str, Any]:
    """Merge ``adapters`` into ``base`` and save to ``out``; returns the manifest.

    ``check=False`` skips the adapter/base checks (only for building deliberately wrong merges in tests).
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    from hfmodel.adapters import stack_adapters
    from hfmodel.cache import hf_dir_for
    from hfmodel.fingerprints import base_fingerprint
    from hfmodel.loading import load_model
    from medcore.prompt import end_of_turn_id

    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model(str(base))
    base_dir = hf_dir_for(base_path)
    arch = architecture(base_dir)
    check_tokenizer_files(base_dir)
    metas = check_adapters(base_path, adapters) if check else [{} for _ in adapters]
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = load_model(base_dir, dtype=torch.float32)  # merge in fp32, cast once at the end
    n_params = sum(p.numel() for p in model.parameters())
    ensure_disk(out.parent, int(n_params * torch_dtype.itemsize * 1.05) + (64 << 20), "the merged model")
    try:
        model = stack_adapters(model, [str(a) for a in adapters], live="none")
    except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatch, missing target module
        raise ConvertError(f"the adapters do not fit {base} ({exc.__class__.__name__}: {str(exc)[:300]})") from None
    model = model.to(torch_dtype)
    model.eval()

    eot = end_of_turn_id(tokenizer)
    gen = GenerationConfig.from_model_config(model.config)
    if (base_dir / "generation_config.json").exists():
        gen = GenerationConfig.from_pretrained(base_dir)
    # Generation must stop at the template's end-of-turn token, not only at the tokenizer's EOS:
    # a GGUF/HF model that only knows <|endoftext|> runs past the end of its answer.
    eos = [eot] + [t for t in ([gen.eos_token_id] if isinstance(gen.eos_token_id, int) else gen.eos_token_id or [])
                   if t != eot]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    gen.eos_token_id = eos
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[-1]

    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        gen.save_pretrained(tmp)
        check_tokenizer_files(tmp)
        manifest = {
            "kind": "tsx-merge",
            "architecture": arch,
            "dtype": dtype,
            "base": {"path": str(base_path), "hf_dir": str(base_dir), "fingerprint": base_fingerprint(base_path),
                     "sha256": sha256_file(base_path) if base_path.is_file() else _hash_tree(base_dir)},
            "adapters": [{"path": str(Path(a).resolve()), "stage": m.get("stage"),
                          "sha256": _hash_tree(Path(a), list(ADAPTER_FILES))} for a, m in zip(adapters, metas, strict=False)],
            "end_of_turn_id": eot,
            "checked": check,
            "versions": _versions(),
            "seconds": None,
            "outputs": {},
        }
        manifest["outputs"] = _hash_tree(tmp)
        manifest["seconds"] = round(time.perf_counter() - start, 2)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    log.info("merged %d adapter(s) into %s in %.1f s", len(adapters), out, manifest["seconds"])
    return manifest


def read_manifest(merged: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(merged) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "transformers", "peft", "llama-cpp-python"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def check_merge(merged: str | os.PathLike[str], base: str | os.PathLike[str], adapters: list[str | os.PathLike[str]],
                probes=None, tolerance_kl: float | None = None) -> dict[str, Any]:
    """The saved merged model against base + adapters applied live (the last one as an unmerged LoRA).

    Catches a merge that changed the model: wrong order, wrong scaling, lost weights on save, a cast
    too far. Teacher-forced over the probe prompts; returns top-1 agreement and KL (nats).
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from converter.verify import _kl, load_probes
    from hfmodel.adapters import stack_adapters
    from hfmodel.cache import hf_dir_for
    from hfmodel.loading import load_model
    from medcore.prompt import render_prompt_ids

    merged = Path(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    probes = probes or load_probes()
    sequences = [render_prompt_ids(tokenizer, p.source, p.direction) for p in probes]

    def logprobs(model) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for ids in sequences:
                rows.append(torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1).numpy())
        return np.concatenate(rows)

    live = stack_adapters(load_model(hf_dir_for(base), dtype=torch.float32), [str(a) for a in adapters], live="last")
    live.eval()
    ref = logprobs(live)
    del live
    saved = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    saved.eval()
    got = logprobs(saved)
    del saved
    kl = _kl(ref, got)
    dtype = read_manifest(merged).get("dtype", "float32")
    limit = tolerance_kl if tolerance_kl is not None else (1e-4 if dtype == "float32" else 5e-2)
    result = {"positions": int(kl.size), "top1_agreement": round(float((ref.argmax(-1) == got.argmax(-1)).mean()), 4),
              "kl_mean": float(kl.mean()), "kl_max": float(kl.max()), "kl_limit": limit}
    result["passed"] = bool(kl.max() <= limit * 10 and kl.mean() <= limit)
    return result
