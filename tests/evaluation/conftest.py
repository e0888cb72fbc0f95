"""Fixtures for the evaluation tests: a tiny real COMET checkpoint and a translator on the tiny Qwen2,
built locally (the tiny stage adapters are in tests/conftest.py)."""

from __future__ import annotations

import io
import os

import pytest

COMET_SAMPLES = [
    {"src": "患者发热三天。", "mt": "The patient has had a fever for three days.", "ref": "The patient had fever for 3 days."},
    {"src": "头痛", "mt": "headache", "ref": "headache"},
    {"src": "Acute myocardial infarction", "mt": "急性心肌梗死", "ref": "急性心肌梗死"},
]


@pytest.fixture(scope="session")
def tiny_comet(tmp_path_factory, shared_data) -> dict:
    """A real COMET RegressionMetric checkpoint (random 2-layer XLM-R encoder, <1 MB), built offline.

    SentencePiece model trained here -> XLM-R tokenizer + tiny config saved locally -> RegressionMetric
    with load_pretrained_weights=False -> hparams.yaml + checkpoints/model.ckpt via a Lightning trainer.
    Also returns the in-memory model's scores on COMET_SAMPLES, to check the checkpoint round trip.
    """
    pytest.importorskip("comet")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import pytorch_lightning as pl
    import sentencepiece as spm
    import torch
    import yaml
    from comet.models import RegressionMetric
    from transformers import XLMRobertaConfig, XLMRobertaTokenizer, XLMRobertaTokenizerFast

    lines = []
    for name in ("terms/cedict_medical.tsv", "sentences/wmt18_medline_zh2en.tsv"):
        for row in (shared_data / name).read_text(encoding="utf-8").splitlines()[:300]:
            lines.extend(row.split("\t"))
    out = tmp_path_factory.mktemp("tiny_comet")
    encoder = out / "encoder"
    encoder.mkdir()
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buffer, vocab_size=1200,
                                   model_type="unigram", character_coverage=0.98, hard_vocab_limit=False,
                                   num_threads=1, minloglevel=2)
    (encoder / "sp.model").write_bytes(buffer.getvalue())
    XLMRobertaTokenizer(vocab_file=str(encoder / "sp.model"), model_max_length=512).save_pretrained(encoder)
    XLMRobertaTokenizerFast.from_pretrained(encoder).save_pretrained(encoder)
    (encoder / "sp.model").unlink()
    vocab = len(XLMRobertaTokenizerFast.from_pretrained(encoder))
    XLMRobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=514).save_pretrained(encoder)
    torch.manual_seed(0)
    model = RegressionMetric(pretrained_model=str(encoder), load_pretrained_weights=False, local_files_only=True,
                             hidden_sizes=[16], batch_size=4, layer="mix")
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", devices=1,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    (out / "checkpoints").mkdir()
    trainer.save_checkpoint(out / "checkpoints" / "model.ckpt")
    (out / "hparams.yaml").write_text(yaml.safe_dump(dict(model.hparams)), encoding="utf-8")
    scores = model.predict(COMET_SAMPLES, batch_size=2, gpus=0, progress_bar=False, num_workers=0).scores
    return {"dir": out, "ckpt": out / "checkpoints" / "model.ckpt", "encoder": encoder,
            "samples": COMET_SAMPLES, "scores": [float(s) for s in scores]}


@pytest.fixture(scope="session")
def tiny_translator(tiny_qwen2_dir):
    """The transformers backend on the tiny random Qwen2, output capped at ``samples.CAP`` tokens."""
    from evaluation.translators import TransformersTranslator
    from tests.evaluation.samples import CAP

    return TransformersTranslator(tiny_qwen2_dir, batch_size=3, device="cpu", max_new_cap=CAP)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tiny models here are all overhead: one thread beats two, by far on a busy machine
    (OpenMP threads spin-waiting for a core). The setting is restored for other test areas."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
