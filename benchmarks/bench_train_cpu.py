"""Stage-1 training throughput on the CPU: the trainer as it was vs the fast path, side by side.

Same machine, same model (the bundled 0.5B, LoRA r=16 on the MLP as stage 1), same real batches
(the first optimizer steps of stage 1's seeded epoch order over prepared/terms/train.jsonl). Each
configuration runs its own warm-up step, then ``--steps`` timed optimizer steps of batch 16
(forward, backward, AdamW):

- ``before``: fp32 weights, micro-batch 4 x 4 accumulation, the plain loss (full logits);
- ``+bf16``: bf16 weights (where the CPU has AMX-BF16 / AVX512-BF16), otherwise as before;
- ``+fast loss``: fp32, one micro-batch of 16, shared prompt prefix + answer-only logits;
- ``after``: bf16 + fast loss + micro-batch 16, on the same batches;
- ``after+grouped``: as ``after`` on the batches ``tsx-train stage1`` now forms (length-grouped:
  other examples, so compare examples/s): what the trainer now does on such a CPU.

    .venv/bin/python -m benchmarks.bench_train_cpu --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch

from hfmodel.loading import cpu_has_fast_bf16, load_model, load_tokenizer
from trainer.answer_loss import answer_loss, plain_answer_loss
from trainer.config import load_stage_config
from trainer.data import read_split
from trainer.stages import answer_tokens, collate, epoch_order, tokenize


def lora(model, cfg):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)
    return get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                            target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM"))


def run(model, batches, micro: int, loss_fn, pad_id: int) -> tuple[float, float]:
    """Wall and CPU seconds for the optimizer steps over ``batches`` (each a list of 16 examples).

    CPU seconds (this process, all threads) matter on a shared machine: other work stretches the
    wall time of both sides of a comparison, but not the work each side does."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()
    start, cpu = time.perf_counter(), time.process_time()
    for examples in batches:
        total = sum(answer_tokens(e) for e in examples)
        for i in range(0, len(examples), micro):
            loss, _ = loss_fn(model, collate(examples[i : i + micro], pad_id))
            (loss / total).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--data", default="prepared")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="*", help="run only these configurations (names as printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_stage_config("stage1", None, [f"data={args.data}"])
    tokenizer = load_tokenizer(cfg.base)
    records = read_split(f"{args.data}/terms/train.jsonl", None, cfg.seed)
    examples, _ = tokenize(records, tokenizer, cfg.max_length)
    need = (args.steps + 1) * cfg.batch_size
    lengths = [len(e.input_ids) for e in examples]

    def batches_of(order):
        batches = [[examples[i] for i in order[k : k + cfg.batch_size]] for k in range(0, need, cfg.batch_size)]
        return batches[:1], batches[1:]

    plain_order = list(range(len(examples)))
    random.Random(cfg.seed * 1000).shuffle(plain_order)  # the trainer's epoch-0 order before grouping
    plain_batches = batches_of(plain_order)
    grouped_batches = batches_of(epoch_order(lengths, cfg.seed * 1000, cfg.batch_size))
    n_examples = sum(len(b) for b in plain_batches[1])
    n_tokens = sum(len(e.input_ids) for b in plain_batches[1] for e in b)

    bf16 = cpu_has_fast_bf16()
    fast_dtype = torch.bfloat16 if bf16 else torch.float32
    configs = [("before", torch.float32, 4, plain_answer_loss, plain_batches),
               ("+fast loss", torch.float32, 16, answer_loss, plain_batches)]
    if bf16:
        configs[1:1] = [("+bf16", torch.bfloat16, 4, plain_answer_loss, plain_batches)]
        configs.append(("after", torch.bfloat16, 16, answer_loss, plain_batches))
    configs.append(("after+grouped", fast_dtype, 16, answer_loss, grouped_batches))
    if args.only:
        configs = [c for c in configs if c[0] in args.only]
    print(f"{n_examples} examples ({n_tokens} tokens) in {args.steps} steps of batch {cfg.batch_size}; "
          f"{args.threads} threads; CPU bf16 {'yes' if bf16 else 'no'}; load {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for name, dtype, micro, loss_fn, (warm, timed) in configs:
        model = lora(load_model(cfg.base, dtype=dtype), cfg)
        run(model, warm, micro, loss_fn, tokenizer.pad_token_id)
        seconds, cpu = run(model, timed, micro, loss_fn, tokenizer.pad_token_id)
        tokens = sum(len(e.input_ids) for b in timed for e in b)
        results[name] = {"s_per_step": seconds / args.steps, "cpu_s_per_step": cpu / args.steps,
                         "examples_per_s": n_examples / seconds, "examples_per_cpu_s": n_examples / cpu,
                         "tokens_per_s": tokens / seconds, "load": os.getloadavg()[0]}
        del model
        print(f"{name:14s} {seconds / args.steps:7.2f} s/step ({cpu / args.steps:7.2f} CPU-s) "
              f"{n_examples / seconds:7.2f} examples/s {tokens / seconds:8.1f} tok/s  "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
    if "before" in results:
        base, base_cpu = results["before"]["examples_per_s"], results["before"]["examples_per_cpu_s"]
        for r in results.values():
            r["speed_up"], r["speed_up_cpu"] = r["examples_per_s"] / base, r["examples_per_cpu_s"] / base_cpu
        print("speed-up vs before (wall / CPU time): "
              + ", ".join(f"{n} {r['speed_up']:.2f}x / {r['speed_up_cpu']:.2f}x" for n, r in results.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
