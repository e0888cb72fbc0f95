"""The training loss: token cross-entropy over the answer tokens, computed two ways.

``plain_answer_loss`` is the reference: one forward pass over every position, logits for the whole
vocabulary at every position, cross-entropy where the label is not ``IGNORE``.

``answer_loss`` computes the same number with two savings that matter on a CPU (a term example
is ~62 tokens of which ~48 are the shared prompt, and the vocabulary has 152k entries):

- **shared prefix**: the tokens every row of a micro-batch starts with (the system message and
  the start of the instruction) go through the model once, with gradients; their key/value cache
  is repeated for each row and the rows continue from it. Causal attention makes the rows' hidden
  states identical to a full pass, and autograd sums the rows' gradients into the one prefix pass;
- **answer-only logits**: the output projection and the softmax run only where a label exists,
  instead of on every position of a ``batch x length x 152k`` tensor.

Both return ``(sum of token losses, number of answer tokens)`` so a step can normalise by the
answer tokens of the whole batch, independent of how it is cut into micro-batches. With LoRA
dropout the prefix pass draws one dropout mask for all rows (the same expectation, fewer draws);
``tests/trainer/test_answer_loss.py`` checks loss and LoRA gradients against the reference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100


def _causal_lm(model: Any) -> Any:
    """The transformers causal LM under PEFT/Accelerate wrappers (LoRA layers are inside it)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def plain_answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Reference: full forward, full logits, summed cross-entropy over the answer tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((targets != IGNORE).sum())


def shared_prefix_length(input_ids: torch.Tensor, labels: torch.Tensor) -> int:
    """How many leading tokens all rows share and no row needs a prediction from.

    A position ``p`` needs logits when ``labels[:, p + 1]`` is set, so the prefix stops before the
    first such position of any row (it is all prompt).
    """
    if input_ids.size(0) < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0).int()
    common = int(same.cumprod(dim=0).sum())
    has_label = (labels[:, 1:] != IGNORE).any(dim=0)
    first_needed = int(has_label.int().argmax()) if bool(has_label.any()) else input_ids.size(1)
    return max(0, min(common, first_needed))


def answer_loss(model: Any, batch: dict[str, torch.Tensor], share_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """The reference's number, computed with a shared prefix pass and answer-only logits."""
    lm = _causal_lm(model)
    decoder, head = lm.get_decoder(), lm.get_output_embeddings()
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    rows = ids.size(0)
    prefix = shared_prefix_length(ids, labels) if share_prefix else 0
    if prefix and getattr(lm, "is_gradient_checkpointing", False):
        prefix = 0  # transformers turns the cache off under gradient checkpointing
    if prefix:
        cache = decoder(input_ids=ids[:1, :prefix], use_cache=True).past_key_values
        cache.batch_repeat_interleave(rows)
        hidden = decoder(input_ids=ids[:, prefix:], attention_mask=mask, past_key_values=cache,
                         use_cache=True).last_hidden_state
    else:
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    targets = labels[:, prefix + 1 :]
    where = targets != IGNORE
    logits = head(hidden[:, :-1][where]).float()
    loss = F.cross_entropy(logits, targets[where], reduction="sum")
    return loss, int(where.sum())
