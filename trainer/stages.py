"""The two LoRA stages: one training loop, configured by a StageConfig.

Stage 1 adds a LoRA to the MLP and trains it on term pairs; stage 2 merges stage 1 into the base
and trains a new, smaller LoRA on the attention projections over sentence pairs. The loop:

    for each epoch (seeded order):  micro-batches -> accumulate -> clip -> AdamW step -> LR step
        every eval_every steps and at each epoch end: validation loss; the lowest one is the stage
        output (out_dir/adapter); a resumable checkpoint goes to out_dir/checkpoints/last.

Loss is token cross-entropy on the answer tokens only (prompt positions are -100). The same
script runs on CPU, one GPU, or several under ``torchrun``/``accelerate launch`` (via Accelerate).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hfmodel.adapters import STAGE_META, read_stage_meta, stack_adapters
from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint
from hfmodel.loading import load_model, load_tokenizer, pick_device_dtype
from medcore.atomic import atomic_dir, write_json, write_jsonl, write_text
from medcore.models import ModelError
from medcore.prompt import TermPair, end_of_turn_id, load_contract, render_prompt_ids
from medcore.records import PreparedRecord, read_records
from medcore.term_block import glossary_from_records, in_share, training_terms
from trainer.answer_loss import IGNORE, answer_loss, plain_answer_loss
from trainer.config import StageConfig
from trainer.data import read_split
from trainer.plots import plot_loss_curves

log = logging.getLogger(__name__)
# A run whose updates are skipped this many times in a row (non-finite loss or gradient) has diverged.
MAX_BAD_STEPS_IN_ROW = 8
# Config fields that may change between a run and its resumption (they do not change the math).
RESUMABLE_CHANGES = {"max_steps", "epochs", "eval_every", "log_every", "out_dir", "device",
                     # how a step's batch is cut into forward passes (memory), not what the step learns: the
                     # loss is normalised by the whole step's answer tokens, and the position is re-counted
                     "micro_batch_size", "gradient_checkpointing"}
# Config fields added after checkpoints had been written, with the value each was introduced with: a
# checkpoint that does not record one counts as having that value. (Not defaults: those are in the
# stage YAML files.)
ADDED_FIELDS = {"fast_loss": True, "group_by_length": True, "term_block_share": 0.0}


def recount_position(micro_done: int, old_micro: int, new_micro: int, world: int = 1) -> int:
    """The position in the epoch, in micro-batches of ``new_micro``, of a checkpoint counted in ``old_micro``.

    A checkpoint sits at an optimizer-step boundary, so the examples done are a whole number of batches
    and any micro-batch size that divides the batch finds the same next example: a run that ran out of
    memory resumes with smaller forward passes and takes exactly the steps it would have taken.
    """
    examples = micro_done * old_micro * world
    if examples % (new_micro * world):
        raise ValueError(f"cannot resume with micro_batch_size {new_micro}: the checkpoint is {examples} examples into "
                         f"the epoch, not a multiple of {new_micro * world}")
    return examples // (new_micro * world)


class StopRequest:
    """SIGINT/SIGTERM during training: finish the current optimizer step, checkpoint it, then stop.

    A second Ctrl-C stops at once (the last periodic checkpoint is kept). Outside the main thread
    (where Python cannot install handlers) signals keep their default behaviour.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.forced = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            self.forced = True
            raise KeyboardInterrupt
        self.signum = signum
        print(f"signal {signum}: stopping after this step with a checkpoint (Ctrl-C again to stop now)", flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@dataclass
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]


def tokenize(records: list[PreparedRecord], tokenizer: Any, max_length: int,
             terms_for: Callable[[PreparedRecord], list[TermPair]] | None = None) -> tuple[list[Example], list[dict]]:
    """Prompt contract (+ the term block ``terms_for`` gives) + answer + end-of-turn.

    Returns (kept, over-length records).
    """
    eot = end_of_turn_id(tokenizer)
    kept, too_long = [], []
    for record in records:
        terms = terms_for(record) if terms_for else ()
        prompt = render_prompt_ids(tokenizer, record.source, record.direction, terms)
        answer = tokenizer(record.target, add_special_tokens=False)["input_ids"] + [eot]
        if len(prompt) + len(answer) > max_length:
            too_long.append({"id": record.id, "tokens": len(prompt) + len(answer), "max_length": max_length})
            continue
        kept.append(Example(record.id, prompt + answer, [IGNORE] * len(prompt) + answer))
    return kept, too_long


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def epoch_order(lengths: list[int], seed: int, group_batch: int = 0, window: int = 64) -> list[int]:
    """The examples' order for one epoch: a seeded shuffle; with ``group_batch``, length-grouped.

    Grouping takes windows of ``window`` batches of the shuffled order, sorts each window by length,
    cuts it into batches of ``group_batch`` and shuffles the batches of the whole epoch. Every batch
    is still a random draw of similar-length examples, and the padding a batch carries (all of it
    computed, none of it learnt from) shrinks.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_batch:
        return order
    span = group_batch * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + group_batch] for i in range(0, len(chunk), group_batch))
    # Only the epoch's last window can end in a short batch: it goes last, so every other batch
    # starts on an optimizer-step boundary.
    full = [b for b in batches if len(b) == group_batch]
    rng.shuffle(full)
    return [i for batch in full + [b for b in batches if len(b) < group_batch] for i in batch]


def lr_lambda(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return factor


def trainable_share(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable (LoRA) tensors, detached on CPU: what a checkpoint and the output hold."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(model).items()}


def answer_tokens(example: Example) -> int:
    """How many positions of ``example`` carry a loss (the answer and its end-of-turn token)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE)


@torch.no_grad()
def validation_loss(model, examples: list[Example], micro_batch: int, pad_id: int, accelerator,
                    loss_fn=plain_answer_loss) -> float:
    """Mean cross-entropy over every answer token of the validation set (not a mean of batch means)."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    shard = examples[accelerator.process_index :: accelerator.num_processes]
    for start in range(0, len(shard), micro_batch):
        batch = {k: v.to(accelerator.device) for k, v in collate(shard[start : start + micro_batch], pad_id).items()}
        loss, count = loss_fn(model, batch)
        total += torch.stack([loss.double(), torch.tensor(float(count), dtype=torch.float64, device=loss.device)])
    total = accelerator.reduce(total, "sum")
    model.train()
    return float(total[0] / total[1].clamp(min=1))


class StageRun:
    """One stage: prepares model and data, runs the loop, writes every output."""

    def __init__(self, config: StageConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True):
        from accelerate import Accelerator

        config.validate()
        self.cfg = config
        self.out = Path(config.out_dir)
        self.ckpt_dir = self.out / "checkpoints" / "last"
        self.resume, self.overwrite, self.show_progress = resume, overwrite, show_progress
        self.accelerator = Accelerator(cpu=config.device == "cpu")
        self.is_main = self.accelerator.is_main_process
        self.term_block_stats: dict | None = None

    # ---- set-up -------------------------------------------------------------------------------
    def _check_out_dir(self) -> dict | None:
        state_file = self.ckpt_dir / "state.json"
        if not state_file.exists():
            if self.resume:
                raise FileNotFoundError(f"--resume given but {self.ckpt_dir} holds no checkpoint")
            return None
        if not self.resume and not self.overwrite:
            raise FileExistsError(
                f"{self.out} already holds a run (checkpoint at step "
                f"{json.loads(state_file.read_text())['global_step']}); pass --resume to continue it "
                "or --overwrite to start again"
            )
        if self.overwrite:
            return None
        state = json.loads(state_file.read_text())
        old, new = state["config"], self.cfg.to_dict()
        # A field added after the checkpoint was written counts as the value it was introduced with.
        changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k, ADDED_FIELDS.get(k)) != new[k])
        if changed:
            raise ValueError(f"cannot resume: config changed since the checkpoint ({', '.join(changed)})")
        return state

    def _build_model(self):
        from peft import LoraConfig, get_peft_model

        cfg = self.cfg
        device, dtype = pick_device_dtype(None if cfg.device == "auto" else cfg.device,
                                          None if cfg.precision == "auto" else cfg.precision == "bf16",
                                          cpu_bf16=True)
        self.dtype = dtype
        fingerprint = base_fingerprint(cfg.base)
        model = load_model(cfg.base, dtype=dtype)
        for adapter in cfg.init_adapters:
            meta = read_stage_meta(adapter)
            if meta.get("base_fingerprint") and meta["base_fingerprint"] != fingerprint:
                raise ModelError(f"{adapter} was trained on another base model ({meta.get('base')}), not {cfg.base}")
        if cfg.init_adapters:
            model = stack_adapters(model, cfg.init_adapters, live="none")
        torch.manual_seed(cfg.seed)
        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=list(cfg.lora.target_modules), bias="none", task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            raise ModelError(f"LoRA targets {cfg.lora.target_modules} do not fit this model: {exc}") from None
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model.config.use_cache = False
        self.fingerprint = fingerprint
        self.stack_fingerprints = [adapter_fingerprint(a) for a in cfg.init_adapters]
        return model

    def _load_data(self, tokenizer):
        cfg = self.cfg
        folder = Path(cfg.data) / cfg.kind
        train_records = read_split(folder / "train.jsonl", cfg.train_limit, cfg.seed)
        val_records = read_split(folder / "val.jsonl", cfg.val_limit, cfg.seed)
        terms_for = self._term_prompts()
        train, long_train = tokenize(train_records, tokenizer, cfg.max_length, terms_for)
        val, long_val = tokenize(val_records, tokenizer, cfg.max_length, terms_for)
        if not train or not val:
            raise ValueError(f"no usable examples in {folder} (train {len(train)}, val {len(val)}) after the "
                             f"max_length={cfg.max_length} filter")
        if self.is_main:
            write_jsonl(self.out / "overlength.jsonl", long_train + long_val)
        return train, val, len(long_train) + len(long_val)

    def _term_prompts(self) -> Callable[[PreparedRecord], list[TermPair]] | None:
        """Term blocks for a seeded share of the examples, from the training split's own terms."""
        cfg = self.cfg
        if cfg.term_block_share <= 0:
            return None
        source = Path(cfg.data) / "terms" / "train.jsonl"
        glossary = glossary_from_records(read_records(source), origin=str(source))
        self.term_block_stats = {"share": cfg.term_block_share, "glossary": str(source), "terms": len(glossary),
                                 "examples": 0, "with_block": 0}

        def terms_for(record: PreparedRecord) -> list[TermPair]:
            self.term_block_stats["examples"] += 1
            if not in_share(record.id, cfg.term_block_share, cfg.seed):
                return []
            pairs = training_terms(glossary, record)
            self.term_block_stats["with_block"] += bool(pairs)
            return pairs

        return terms_for

    # ---- checkpoints ----------------------------------------------------------------------------
    def _save_adapter(self, model, target: Path, extra: dict) -> None:
        if not self.is_main:
            return
        unwrapped = self.accelerator.unwrap_model(model)
        meta = {
            "stage": self.cfg.stage,
            "base": self.cfg.base,
            "base_fingerprint": self.fingerprint,
            # Where the earlier stages were (a hint) and what they were (sha256, as hfmodel.fingerprints
            # computes it): the identity that survives copying the adapters to another machine.
            "stack": [str(Path(a).resolve()) for a in self.cfg.init_adapters],
            "stack_sha256": self.stack_fingerprints,
            "lora": self.cfg.to_dict()["lora"],
            "kind": self.cfg.kind,
            "prompt_contract_version": load_contract().version,
            "term_block_share": self.cfg.term_block_share,
            **extra,
        }
        with atomic_dir(target) as tmp:
            unwrapped.save_pretrained(tmp)
            (tmp / STAGE_META).write_text(json.dumps(meta, indent=2))

    def _save_checkpoint(self, model, optimizer, scheduler, state: dict) -> None:
        if not self.is_main:
            return
        with atomic_dir(self.ckpt_dir) as tmp:
            from safetensors.torch import save_file

            save_file(adapter_state(self.accelerator.unwrap_model(model)), tmp / "adapter.safetensors")
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}, tmp / "trainer_state.pt")
            (tmp / "state.json").write_text(json.dumps(state, indent=2))

    def _restore(self, model, optimizer, scheduler) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.accelerator.unwrap_model(model), load_file(self.ckpt_dir / "adapter.safetensors"))
        blob = torch.load(self.ckpt_dir / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["torch_rng"])
        random.setstate(blob["python_rng"])

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, acc = self.cfg, self.accelerator
        resumed = self._check_out_dir()
        tokenizer = load_tokenizer(cfg.base)
        model = self._build_model()
        train, val, n_long = self._load_data(tokenizer)
        pad_id = tokenizer.pad_token_id
        trainable, total = trainable_share(model)

        world = acc.num_processes
        if cfg.batch_size % (cfg.micro_batch_size * world):
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by micro_batch_size x devices "
                             f"({cfg.micro_batch_size} x {world})")
        accum = cfg.batch_size // (cfg.micro_batch_size * world)
        micro_per_epoch = math.ceil(len(train) / (cfg.micro_batch_size * world))
        steps_per_epoch = math.ceil(micro_per_epoch / accum)
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps:
            total_steps = min(total_steps, cfg.max_steps)
        warmup = math.ceil(cfg.warmup_ratio * total_steps)

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.lr_schedule, warmup, total_steps))
        model, optimizer = acc.prepare(model, optimizer)
        model.train()
        # The fast loss calls the decoder and the output layer directly, which a DDP wrapper would not
        # see: several processes use the plain loss (same number, full logits).
        loss_fn = answer_loss if cfg.fast_loss and world == 1 else plain_answer_loss

        state = {"global_step": 0, "epoch": 0, "micro_done": 0, "best_val_loss": None, "best_step": None,
                 "skipped_steps": 0, "history": [], "config": cfg.to_dict()}
        if resumed:
            self._restore(model, optimizer, scheduler)
            state.update({k: resumed[k] for k in ("global_step", "epoch", "micro_done", "best_val_loss",
                                                  "best_step", "history") if k in resumed})
            state["skipped_steps"] = resumed.get("skipped_steps", 0)
            state["micro_done"] = recount_position(state["micro_done"], resumed["config"]["micro_batch_size"],
                                                   cfg.micro_batch_size, world)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "config.json", cfg.to_dict())
            share = 100.0 * trainable / total
            print(f"stage {cfg.stage}: {len(train)} train / {len(val)} val examples ({n_long} over max_length "
                  f"{cfg.max_length} dropped), {trainable:,} trainable of {total:,} parameters ({share:.3f} %), "
                  f"{total_steps} optimizer steps (batch {cfg.batch_size} = {cfg.micro_batch_size} x {accum} accumulation "
                  f"x {world} device(s)), warm-up {warmup}, {acc.device}/{str(self.dtype).replace('torch.', '')}"
                  + (f"; resuming at step {state['global_step']}" if resumed else ""), flush=True)
            if stats := self.term_block_stats:
                print(f"term block (prompt contract v{load_contract().version}): {stats['with_block']} of "
                      f"{stats['examples']} examples carry one (share {stats['share']}, terms from {stats['glossary']})",
                      flush=True)

        def evaluate_and_save(reason: str) -> None:
            val_loss = validation_loss(model, val, cfg.micro_batch_size, pad_id, acc, loss_fn)
            entry = {"step": state["global_step"], "epoch": state["epoch"], "val_loss": val_loss, "event": reason}
            state["history"].append(entry)
            best = state["best_val_loss"]
            if best is None or val_loss < best:
                state["best_val_loss"], state["best_step"] = val_loss, state["global_step"]
                self._save_adapter(model, self.out / "adapter", {"val_loss": val_loss, "step": state["global_step"]})
            self._save_checkpoint(model, optimizer, scheduler, state)
            bar.write(f"step {state['global_step']}: val_loss {val_loss:.4f} (best {state['best_val_loss']:.4f} "
                      f"at step {state['best_step']})")

        bar = tqdm(total=total_steps, initial=state["global_step"], desc=f"stage {cfg.stage}", unit="step",
                   disable=not (self.show_progress and self.is_main), dynamic_ncols=True)
        if state["global_step"] == 0 and not state["history"]:
            evaluate_and_save("start")  # the base's own loss: a stage that only gets worse keeps nothing new
        window_loss, window_tokens, window_examples, window_steps, t0 = 0.0, 0, 0, 0, time.perf_counter()
        bad_in_row = 0
        done = state["global_step"] >= total_steps
        stop = StopRequest()
        try:
            stop.install()
            while not done and state["epoch"] < cfg.epochs:
                epoch = state["epoch"]
                order = epoch_order([len(e.input_ids) for e in train], cfg.seed * 1000 + epoch,
                                    cfg.batch_size if cfg.group_by_length else 0)
                micro_batches = [order[i : i + cfg.micro_batch_size * world]
                                 for i in range(0, len(order), cfg.micro_batch_size * world)]
                position = state["micro_done"]
                while position < len(micro_batches) and not done:
                    shards = [indices[acc.process_index :: world] or indices[:1]
                              for indices in micro_batches[position : position + accum]]
                    # Normalised by the answer tokens of the whole step, so how the batch is cut into
                    # micro-batches does not change the loss (a token mean over the batch).
                    step_tokens = max(1, sum(answer_tokens(train[i]) for mine in shards for i in mine))
                    step_loss = 0.0
                    for index, mine in enumerate(shards):
                        batch = {k: v.to(acc.device) for k, v in collate([train[i] for i in mine], pad_id).items()}
                        sync = index == len(shards) - 1
                        with contextlib.nullcontext() if sync else acc.no_sync(model):
                            loss_sum, _ = loss_fn(model, batch)
                            loss = loss_sum / step_tokens
                            acc.backward(loss)
                        step_loss += float(loss.detach())
                        window_tokens += int(batch["attention_mask"].sum())
                        window_examples += len(mine)
                    grad_norm = acc.clip_grad_norm_(params, cfg.grad_clip or float("inf"))
                    if math.isfinite(step_loss) and math.isfinite(float(grad_norm)):
                        optimizer.step()
                        window_loss, window_steps, bad_in_row = window_loss + step_loss, window_steps + 1, 0
                    else:
                        # One bad batch must not poison the LoRA weights (a NaN gradient makes every
                        # later step NaN); a run that keeps producing them has diverged.
                        state["skipped_steps"] += 1
                        bad_in_row += 1
                        bar.write(f"step {state['global_step'] + 1}: non-finite loss/gradient "
                                  f"(loss {step_loss}, grad norm {float(grad_norm)}); update skipped")
                        if bad_in_row >= MAX_BAD_STEPS_IN_ROW:
                            raise FloatingPointError(
                                f"training diverged: {bad_in_row} optimizer steps in a row had a non-finite loss or "
                                f"gradient (step {state['global_step'] + 1}, {str(self.dtype).replace('torch.', '')}); "
                                f"the last good checkpoint is in {self.ckpt_dir}. Try --precision fp32 or a lower "
                                "learning rate, then --resume")
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    position += len(shards)
                    state["global_step"] += 1
                    state["micro_done"] = position
                    bar.update(1)
                    step = state["global_step"]
                    if step % cfg.log_every == 0 or step == total_steps:
                        elapsed = time.perf_counter() - t0
                        entry = {"step": step, "epoch": epoch,
                                 "train_loss": window_loss / window_steps if window_steps else float("nan"),
                                 "lr": scheduler.get_last_lr()[0], "tokens_per_s": window_tokens * world / elapsed,
                                 "examples_per_s": window_examples * world / elapsed}
                        state["history"].append(entry)
                        bar.set_postfix(loss=f"{entry['train_loss']:.3f}", lr=f"{entry['lr']:.1e}")
                        if self.is_main and not self.show_progress:  # a log file still shows the run moving
                            print(f"step {step}/{total_steps}: train_loss {entry['train_loss']:.4f} lr {entry['lr']:.2e} "
                                  f"{entry['examples_per_s']:.2f} ex/s", flush=True)
                        window_loss, window_tokens, window_examples, window_steps, t0 = 0.0, 0, 0, 0, time.perf_counter()
                    done = step >= total_steps
                    if step % cfg.eval_every == 0 and not done and position < len(micro_batches):
                        evaluate_and_save("periodic")
                    if stop.signum is not None and not done:
                        # A step boundary: model, optimizer and position agree, so this checkpoint resumes exactly.
                        self._save_checkpoint(model, optimizer, scheduler, state)
                        bar.write(f"stopped by signal {stop.signum} at step {step}: checkpoint saved in "
                                  f"{self.ckpt_dir}; rerun with --resume to continue")
                        raise KeyboardInterrupt
                if position >= len(micro_batches):
                    state["epoch"], state["micro_done"] = epoch + 1, 0
                evaluate_and_save("end" if done else f"epoch {epoch + 1}")
        except KeyboardInterrupt:
            if stop.signum is None or stop.forced:
                bar.write(f"interrupted at step {state['global_step']}; the last checkpoint is kept: rerun with --resume")
            raise
        finally:
            stop.uninstall()
            bar.close()
        return self._finish(state, trainable, total, len(train), len(val), n_long)

    def _finish(self, state: dict, trainable: int, total: int, n_train: int, n_val: int, n_long: int) -> dict:
        summary = {
            "stage": self.cfg.stage,
            "adapter": str(self.out / "adapter"),
            "best_val_loss": state["best_val_loss"],
            "best_step": state["best_step"],
            "start_val_loss": next((h["val_loss"] for h in state["history"] if h.get("event") == "start"), None),
            "steps": state["global_step"],
            "skipped_steps": state["skipped_steps"],
            "trainable_params": trainable,
            "total_params": total,
            "trainable_percent": 100.0 * trainable / total,
            "train_examples": n_train,
            "val_examples": n_val,
            "overlength_dropped": n_long,
        }
        if self.is_main:
            write_json(self.out / "metrics.json", {"summary": summary, "history": state["history"]})
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=["step", "epoch", "train_loss", "val_loss", "lr", "tokens_per_s",
                                                     "examples_per_s", "event"])
            writer.writeheader()
            for entry in state["history"]:
                writer.writerow({k: entry.get(k) for k in writer.fieldnames})
            write_text(self.out / "metrics.csv", buf.getvalue())
            plot_loss_curves(state["history"], self.out / "loss_curve.png",
                             f"stage {self.cfg.stage} ({self.cfg.kind}, LoRA r={self.cfg.lora.r})")
            print(json.dumps(summary, indent=2))
        return summary


def run_stage(config: StageConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return StageRun(config, resume=resume, overwrite=overwrite, show_progress=show_progress).run()
