"""Shared fixtures: real data, the bundled models, and tiny models built locally per session.

Nothing here downloads anything. Bundled-model fixtures skip with a reason when the models are
not installed, except under CI (CI=true), where `make test` has fetched them and a missing model
is a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TSX_SHARED_DATA", REPO.parent / "shared" / "data"))

# Qt and QtWebEngine run headless in tests; as root WebEngine needs its sandbox off.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox --disable-gpu")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
# The product is offline: make any accidental hub access fail fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        message = f"{what} not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI runs `make test`, which must provide it)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA, "shared data directory")


@pytest.fixture(scope="session")
def small_gguf() -> Path:
    """The bundled Qwen2.5-Coder-0.5B GGUF (real weights)."""
    from medcore.models import BUNDLED, models_dir

    return _require(models_dir() / BUNDLED["qwen2.5-coder-0.5b"].filename, "bundled 0.5B model (tsx-models fetch)")


@pytest.fixture(scope="session")
def app_gguf() -> Path:
    """The bundled Qwen2.5-Coder-1.5B GGUF (the app's default)."""
    from medcore.models import BUNDLED, models_dir

    return _require(models_dir() / BUNDLED["qwen2.5-coder-1.5b"].filename, "bundled 1.5B model (tsx-models fetch)")


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, shared_data) -> Path:
    """A byte-level BPE tokenizer (1k vocab) trained here on the real data, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = []
    for name in ("terms/cedict_medical.tsv", "sentences/wmt18_medline_zh2en.tsv"):
        for row in (shared_data / name).read_text(encoding="utf-8").splitlines()[:400]:
            lines.extend(row.split("\t"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    out = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A randomly initialised 2-layer Qwen2 (hidden 64) with the tiny tokenizer, saved as an HF dir."""
    import shutil

    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny_qwen2")
    model.save_pretrained(out, safe_serialization=True)
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, tiny_qwen2_dir) -> Path:
    """A real qwen2 GGUF (2 layers, 1k-token BPE, ChatML template, eos <|im_end|>), random weights."""
    from tests.runtime.tiny_gguf import write_tiny_gguf

    return write_tiny_gguf(tiny_qwen2_dir, tmp_path_factory.mktemp("tiny_gguf") / "tiny-qwen2.gguf")


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(small_gguf) -> Path:
    """The real Qwen2.5 tokenizer (151,936 tokens, chat template), read out of the bundled GGUF.

    Reading it out takes ~20 s, so it is cached in the models directory like the trainer's caches.
    """
    from hfmodel.cache import tokenizer_dir_for

    return tokenizer_dir_for(small_gguf)


def _make_adapter(base: Path, out: Path, targets: list[str], rank: int, seed: int, meta: dict) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    # init_lora_weights=False: B is random too, so the adapter really changes the outputs.
    config = LoraConfig(r=rank, lora_alpha=4 * rank, target_modules=targets, init_lora_weights=False,
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    (out / "tsx_stage.json").write_text(json.dumps(meta, indent=2))
    return out


@pytest.fixture(scope="session")
def tiny_stages(tmp_path_factory, tiny_qwen2_dir) -> tuple[Path, Path]:
    """Stage-1 (MLP, r=8) and stage-2 (q/v, r=4) LoRA adapters for the tiny Qwen2, with tsx_stage.json."""
    from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

    root = tmp_path_factory.mktemp("tiny_stages")
    fingerprint = base_fingerprint(tiny_qwen2_dir)
    s1 = _make_adapter(tiny_qwen2_dir, root / "stage1", ["gate_proj", "up_proj", "down_proj"], 8, 1,
                       {"stage": 1, "base": str(tiny_qwen2_dir), "base_fingerprint": fingerprint, "stack": []})
    s2 = _make_adapter(tiny_qwen2_dir, root / "stage2", ["q_proj", "v_proj"], 4, 2,
                       {"stage": 2, "base": str(tiny_qwen2_dir), "base_fingerprint": fingerprint,
                        "stack": [str(s1)], "stack_sha256": [adapter_fingerprint(s1)]})
    return s1, s2
