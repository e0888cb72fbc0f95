"""The fast loss (shared prefix pass + answer-only logits) equals the plain full-logits loss, and so
do the LoRA gradients, on a tiny Qwen2 with real prompts from the real data."""

from __future__ import annotations

import pytest
import torch

from trainer.answer_loss import IGNORE, answer_loss, plain_answer_loss, shared_prefix_length
from trainer.data import read_split
from trainer.stages import collate, tokenize

# fp32: both paths sum the same float32 terms in a different order.
LOSS_RTOL_FP32, GRAD_RTOL_FP32 = 1e-5, 1e-4
# bf16 weights (the CPU fast setting): each path rounds its own intermediate tensors.
LOSS_RTOL_BF16, GRAD_COS_BF16 = 2e-2, 0.99


def _lora_model(base_dir, targets, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets,
                                             task_type="CAUSAL_LM"))
    with torch.no_grad():  # a non-zero B, so the LoRA changes the output and its gradients are not trivial
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return model


def _batch(tiny_qwen2_dir, prepared, kind, n=8):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    records = read_split(prepared / kind / "train.jsonl", n, 7)
    examples, _ = tokenize(records, tokenizer, 512)
    return collate(examples, tokenizer.pad_token_id)


def _loss_and_grads(model, batch, fn):
    model.zero_grad(set_to_none=True)
    loss, count = fn(model, batch)
    (loss / count).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()) / count, count, grads


@pytest.mark.parametrize("kind,targets", [("terms", ["gate_proj", "up_proj", "down_proj"]),
                                          ("sentences", ["q_proj", "v_proj"])])
def test_fast_loss_and_grads_equal_plain_fp32(tiny_qwen2_dir, small_prepared, kind, targets):
    batch = _batch(tiny_qwen2_dir, small_prepared, kind)
    model = _lora_model(tiny_qwen2_dir, targets, torch.float32)
    prefix = shared_prefix_length(batch["input_ids"], batch["labels"])
    assert prefix >= 10, "the system message and instruction are shared by every row"
    plain, n_plain, g_plain = _loss_and_grads(model, batch, plain_answer_loss)
    fast, n_fast, g_fast = _loss_and_grads(model, batch, answer_loss)
    assert n_fast == n_plain == int((batch["labels"][:, 1:] != IGNORE).sum())
    assert fast == pytest.approx(plain, rel=LOSS_RTOL_FP32)
    assert g_fast.keys() == g_plain.keys() and len(g_fast) > 0
    for name in g_plain:
        scale = float(g_plain[name].abs().max())
        assert scale > 0, name
        assert float((g_fast[name] - g_plain[name]).abs().max()) <= GRAD_RTOL_FP32 * scale, name


def test_fast_loss_without_prefix_sharing_is_the_same(tiny_qwen2_dir, small_prepared):
    batch = _batch(tiny_qwen2_dir, small_prepared, "terms", n=4)
    model = _lora_model(tiny_qwen2_dir, ["gate_proj", "up_proj", "down_proj"], torch.float32)
    with torch.no_grad():
        a, _ = answer_loss(model, batch, share_prefix=False)
        b, _ = answer_loss(model, batch, share_prefix=True)
        c, _ = plain_answer_loss(model, batch)
    assert float(a) == pytest.approx(float(c), rel=LOSS_RTOL_FP32)
    assert float(b) == pytest.approx(float(c), rel=LOSS_RTOL_FP32)


def test_fast_loss_bf16_stays_close_to_plain_bf16(tiny_qwen2_dir, small_prepared):
    batch = _batch(tiny_qwen2_dir, small_prepared, "terms")
    model = _lora_model(tiny_qwen2_dir, ["gate_proj", "up_proj", "down_proj"], torch.bfloat16)
    plain, _, g_plain = _loss_and_grads(model, batch, plain_answer_loss)
    fast, _, g_fast = _loss_and_grads(model, batch, answer_loss)
    assert fast == pytest.approx(plain, rel=LOSS_RTOL_BF16)
    flat = lambda g: torch.cat([v.float().flatten() for v in g.values()])  # noqa: E731
    cos = torch.nn.functional.cosine_similarity(flat(g_fast), flat(g_plain), dim=0)
    assert float(cos) >= GRAD_COS_BF16


def test_shared_prefix_stops_before_the_first_prediction():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 9, 9]])
    labels = torch.full_like(ids, IGNORE)
    labels[0, 5] = 6  # row 0 is predicted from position 4 on
    labels[1, 3] = 4  # row 1 from position 2 on: the prefix may hold positions 0..1 only
    assert shared_prefix_length(ids, labels) == 2
    assert shared_prefix_length(ids[:1], labels[:1]) == 0  # one row: nothing to share
    labels[1, 3] = IGNORE
    labels[1, 5] = 9
    assert shared_prefix_length(ids, labels) == 4  # the rows differ from position 4 on
