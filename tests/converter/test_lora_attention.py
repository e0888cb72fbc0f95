"""Attention with runtime LoRA adapters from llama.cpp (the app's engine) on a tiny Qwen2 with the real
Qwen tokenizer: the tuned model's attention agrees with transformers + PEFT, and "compare with base model"
(the adapter stack switched off on the same context) is exactly the base GGUF's attention."""

from __future__ import annotations

import numpy as np
import pytest

from tests.converter.test_lora import tuned  # noqa: F401  (the session fixture: GGUF base + PEFT + GGUF LoRAs + spec)

pytest.importorskip("llama_cpp")

ZH = "患者确诊为急性心肌梗死。"
EN = "The patient was diagnosed with acute myocardial infarction."


def test_adapters_on_match_peft_and_off_is_the_base_model(tuned):  # noqa: F811
    from desktop.attention.engine import TransformersAttentionEngine
    from desktop.attention.llama_engine import LlamaAttentionEngine

    engine = LlamaAttentionEngine(tuned.spec, threads=1)
    plain = LlamaAttentionEngine(tuned.gguf, threads=1)
    reference = TransformersAttentionEngine(tuned.hf, adapters=tuned.peft, threads=1)
    try:
        assert engine.has_base and not plain.has_base
        ours, base = engine.compute(ZH, EN, "zh-en"), engine.compute(ZH, EN, "zh-en", base=True)
        assert ours.variant == "fine-tuned" and base.variant == "base"
        assert engine.capture.has_adapters and len(engine.capture.adapters) == 2
        # Off: bit for bit what the base GGUF alone gives (same weights, the stack removed, not reloaded).
        np.testing.assert_array_equal(base.attentions, plain.compute(ZH, EN, "zh-en").attentions)
        # On: the adapters really change the attention ...
        changed = float(np.abs(ours.attentions - base.attentions).mean())
        # ... and it is transformers + PEFT's attention of the same stack (f16 GGUF vs fp32 here).
        # Measured: mean |difference| 1.9e-5 (adapters on) and 1.3e-5 (off), while the adapters move the
        # attention by 0.0151 on average: the engines agree ~800x more closely than the stack changes it.
        ref = reference.compute(ZH, EN, "zh-en")
        ref_base = reference.compute(ZH, EN, "zh-en", base=True)
        assert ours.tokens == ref.tokens
        err, err_base = (float(np.abs(ours.attentions - ref.attentions).mean()),
                         float(np.abs(base.attentions - ref_base.attentions).mean()))
        assert err < changed / 100 and err_base < changed / 100, (err, err_base, changed)
        # Switching back on gives the tuned attention again (the cache is per variant, so recompute).
        engine._cache.clear()
        np.testing.assert_array_equal(engine.compute(ZH, EN, "zh-en").attentions, ours.attentions)
    finally:
        engine.close()
        plain.close()
        reference.close()


def test_peft_directories_are_refused_with_the_conversion_hint(tuned):  # noqa: F811
    from desktop.attention.llama_engine import LlamaAttentionEngine

    with pytest.raises(ValueError, match="tsx-convert lora"):
        LlamaAttentionEngine(tuned.gguf, adapters=[str(p) for p in tuned.peft])
