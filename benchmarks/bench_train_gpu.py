"""Stage 1 / stage 2 training throughput at the paper's real shape (LLaMA-3-8B, bf16, seq 1024, batch 16).

Random weights (the real ones are not obtainable and too large to move): throughput, memory and FLOP
utilisation do not depend on the weight values. Prints tokens/s, peak GPU memory and MFU per stage,
then the estimated wall time of the paper's full runs. Works with transformers 4.x and 5.x.

    python benchmarks/bench_train_gpu.py                     # on a GPU machine (LLaMA-3-8B shape)
    python benchmarks/bench_train_gpu.py --shape tiny --steps 2   # smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import time

import torch

SHAPES = {
    # meta-llama/Meta-Llama-3-8B config.json values
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000, max_position_embeddings=2048),
}
STAGES = {
    "stage1": dict(r=16, lora_alpha=32, target_modules=["gate_proj", "up_proj", "down_proj"]),
    "stage2": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
}
# Paper data sizes; average token lengths measured on our prepared data with the Qwen2.5 tokenizer
# (prompt contract + answer): override with --term-tokens / --sentence-tokens for another tokenizer.
PAPER = {"stage1": 47_500, "stage2": 56_200}


def peak_bf16_tflops() -> float:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    if "H100" in name or "H200" in name:
        return 989.0  # dense bf16, SXM
    if "A100" in name:
        return 312.0
    return float("nan")


def bench_stage(stage: str, shape: str, micro: int, seq: int, batch: int, steps: int, checkpointing: bool) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = LlamaConfig(**SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.05, **STAGES[stage]))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    accum = batch // micro
    ids = torch.randint(0, config.vocab_size, (micro, seq), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        for _ in range(accum):
            model(input_ids=ids, labels=ids).loss.div(accum).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (allocations, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    tokens_per_s = batch * seq / seconds
    # FLOPs per token: 6N is the usual full-training count; LoRA skips the frozen weights' gradient
    # GEMMs, so 4N (+ recompute 2N with checkpointing) is what really runs. Attention: 12*L*h*s.
    attn = 12 * config.num_hidden_layers * config.hidden_size * seq
    flops_lora = (4 + (2 if checkpointing else 0)) * n_params + attn
    flops_6n = 6 * n_params + attn
    peak = peak_bf16_tflops() * 1e12
    return {
        "stage": stage, "shape": shape, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "params": n_params, "trainable": trainable, "trainable_percent": 100 * trainable / n_params,
        "micro_batch": micro, "accumulation": accum, "seq": seq, "step_seconds": seconds,
        "tokens_per_s": tokens_per_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "mfu_lora_flops": tokens_per_s * flops_lora / peak, "mfu_6n_convention": tokens_per_s * flops_6n / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="llama3-8b")
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--term-tokens", type=float, default=62.5, help="mean tokens per term example")
    parser.add_argument("--sentence-tokens", type=float, default=115.7, help="mean tokens per sentence example")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    results = []
    for stage in STAGES:
        r = bench_stage(stage, args.shape, args.micro_batch, args.seq, args.batch, args.steps,
                        args.gradient_checkpointing)
        mean_tokens = args.term_tokens if stage == "stage1" else args.sentence_tokens
        # Padded to seq (what this measures) vs packed/length-bucketed (mean tokens per example).
        examples = PAPER[stage] * 2 * args.epochs  # both directions
        r["paper_hours_padded_to_seq"] = examples * args.seq / r["tokens_per_s"] / 3600
        r["paper_hours_length_bucketed"] = examples * mean_tokens / r["tokens_per_s"] / 3600
        results.append(r)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        print(json.dumps(r, indent=2), flush=True)
    for r in results:
        mem = "n/a" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.1f} GiB"
        print(f"{r['stage']}: {r['tokens_per_s']:,.0f} tok/s, peak {mem}, MFU {100 * r['mfu_lora_flops']:.1f} % "
              f"(6N convention {100 * r['mfu_6n_convention']:.1f} %), paper run ~{r['paper_hours_length_bucketed']:.1f} h "
              f"length-bucketed / {r['paper_hours_padded_to_seq']:.1f} h padded to {r['seq']}")


if __name__ == "__main__":
    main()
