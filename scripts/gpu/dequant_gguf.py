"""Dequantise a Qwen2/Llama GGUF into the trainer's HF cache layout with gguf-py and numpy only.

Why it exists: the GPU machine lent to some sessions has no network and a different transformers
line (5.x), and the only way to bring the bundled base there is the GGUF itself, in pieces. This
reproduces, tensor for tensor, what ``hfmodel.cache.hf_dir_for`` writes through transformers'
GGUF loader (``--check`` compares against such a cache and must report max |diff| = 0). The small
non-weight files (config.json, tokenizer files) are copied from a local cache made by the trainer.

    python scripts/gpu/dequant_gguf.py MODEL.gguf --meta-from CACHE_DIR --out OUT_DIR
    python scripts/gpu/dequant_gguf.py MODEL.gguf --check CACHE_DIR
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from medcore.models import sha256_file  # noqa: E402

# GGUF tensor name -> HF name (llama.cpp's TensorNameMap, reduced to the Qwen2/Llama decoder).
_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")
# The files of a trainer cache other than the weights.
META_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja")


def hf_name(name: str) -> str:
    if name in _GLOBAL:
        return _GLOBAL[name]
    match = _BLOCK_RE.match(name)
    if not match or match.group(2) not in _BLOCK:
        raise KeyError(f"no HF name for GGUF tensor {name!r}")
    layer, part, kind = match.groups()
    return f"model.layers.{layer}.{_BLOCK[part]}.{kind}"


def dequantised_tensors(path: Path) -> dict[str, np.ndarray]:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    if arch not in ("qwen2",):
        # Llama GGUFs permute q/k for llama.cpp's RoPE; undoing that is not implemented here.
        raise SystemExit(f"{path}: architecture {arch!r} not supported by this script (qwen2 only)")
    out = {}
    for tensor in reader.tensors:
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
        out[hf_name(tensor.name)] = np.ascontiguousarray(weights.reshape(tuple(reversed(tensor.shape.tolist()))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--out", type=Path, help="cache directory to write")
    parser.add_argument("--meta-from", type=Path, help="a trainer cache (or a folder) holding config/tokenizer files")
    parser.add_argument("--check", type=Path, help="compare with this transformers-made cache instead of writing")
    args = parser.parse_args(argv)

    tensors = dequantised_tensors(args.gguf)
    if args.check:
        from safetensors.numpy import load_file

        reference = {}
        for shard in sorted(args.check.glob("*.safetensors")):
            reference.update(load_file(shard))
        missing, extra = sorted(set(reference) - set(tensors)), sorted(set(tensors) - set(reference))
        worst = max(float(np.abs(reference[k].astype(np.float32) - tensors[k]).max())
                    for k in reference if k in tensors)
        print(json.dumps({"tensors": len(tensors), "missing": missing, "extra": extra, "max_abs_diff": worst}))
        return 0 if not missing and not extra and worst == 0.0 else 1

    if not args.out or not args.meta_from:
        parser.error("--out and --meta-from are needed to write a cache")
    from safetensors.numpy import save_file

    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in META_FILES:
        if (args.meta_from / name).exists():
            shutil.copy2(args.meta_from / name, tmp / name)
    if not (tmp / "config.json").exists():
        raise SystemExit(f"{args.meta_from} has no config.json")
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "tsx_source.json").write_text(json.dumps({"gguf": str(args.gguf), "sha256": sha256_file(args.gguf)}, indent=2))
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"wrote {args.out} ({len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
