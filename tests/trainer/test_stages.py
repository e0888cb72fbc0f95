"""The two LoRA stages on a tiny local Qwen2: real peft training on CPU, real data."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import load_stage_config
from trainer.stages import run_stage

TINY = ["train_limit=48", "val_limit=16", "batch_size=8", "micro_batch_size=4", "max_length=256",
        "learning_rate=3e-3", "log_every=1", "eval_every=2", "lora.dropout=0.0"]


def stage_config(stage, base, data, out, *extra):
    return load_stage_config(stage, overrides=[f"base={base}", f"data={data}", f"out_dir={out}", *TINY, *extra])


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, tiny_qwen2_dir, small_prepared):
    out = tmp_path_factory.mktemp("runs") / "stage1"
    config = stage_config("stage1", tiny_qwen2_dir, small_prepared, out, "epochs=2")
    summary = run_stage(config, show_progress=False)
    return out, summary


def test_stage1_trains_only_mlp_lora_and_keeps_lowest_val_loss(stage1_run):
    out, summary = stage1_run
    metrics = json.loads((out / "metrics.json").read_text())
    vals = [h for h in metrics["history"] if h.get("val_loss") is not None]
    # Learning happened: the kept loss is below the untrained (start) loss.
    assert summary["best_val_loss"] < summary["start_val_loss"]
    best = min(vals, key=lambda h: h["val_loss"])
    assert summary["best_step"] == best["step"] and summary["best_val_loss"] == pytest.approx(best["val_loss"])
    meta = json.loads((out / "adapter" / "tsx_stage.json").read_text())
    assert meta["step"] == best["step"] and meta["stage"] == 1
    # Only LoRA tensors of the configured MLP modules are saved, and they are not the zero init.
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert {k.split(".")[-3] for k in weights} == {"gate_proj", "up_proj", "down_proj"}
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16 and sorted(config["target_modules"]) == ["down_proj", "gate_proj", "up_proj"]
    assert 0 < summary["trainable_percent"] < 100
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert (out / "metrics.csv").read_text().startswith("step,epoch,train_loss,val_loss")


def test_trained_outputs_are_readable_by_other_users(stage1_run):
    """The adapter (peft + safetensors write 0600 files), checkpoint and metrics follow the umask."""
    import os
    import stat

    out, _ = stage1_run
    mask = os.umask(0)
    os.umask(mask)
    paths = [out / "adapter", *(out / "adapter").rglob("*"), out / "checkpoints" / "last",
             *(out / "checkpoints" / "last").rglob("*"), out / "metrics.json", out / "loss_curve.png"]
    assert (out / "adapter" / "adapter_model.safetensors") in paths
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}
    want = {k: oct((0o777 if (out / k).is_dir() else 0o666) & ~mask) for k in modes}
    assert modes == want


def test_base_weights_unchanged_by_stage1(stage1_run, tiny_qwen2_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = stage1_run
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    reference = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, str(out / "adapter"))
    for name, tensor in peft_model.base_model.model.state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(tensor, reference[key]), name


def test_stage2_trains_new_qv_lora_on_top_of_stage1(stage1_run, tiny_qwen2_dir, small_prepared, tmp_path):
    from hfmodel.fingerprints import adapter_fingerprint

    stage1_out, _ = stage1_run
    out = tmp_path / "stage2"
    config = stage_config("stage2", tiny_qwen2_dir, small_prepared, out, "max_steps=3",
                          f"init_adapters=[{stage1_out / 'adapter'}]")
    summary = run_stage(config, show_progress=False)
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    assert {k.split(".")[-3] for k in weights} == {"q_proj", "v_proj"}
    meta = json.loads((out / "adapter" / "tsx_stage.json").read_text())
    assert meta["stack"] == [str((stage1_out / "adapter").resolve())]
    assert meta["stack_sha256"] == [adapter_fingerprint(stage1_out / "adapter")]  # identity beyond this machine
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 8
    assert summary["steps"] == 3
    assert meta["prompt_contract_version"] == 2 and meta["term_block_share"] == 0.5


def test_stage2_term_block_prompts_for_a_share_of_examples(tiny_qwen2_dir, small_prepared, tmp_path):
    """Stage 2's term block: the training split's terms that the reference uses, in the contract's form."""
    from transformers import AutoTokenizer

    from medcore.prompt import render_prompt_ids
    from medcore.records import read_records
    from trainer.stages import StageRun, tokenize

    run = StageRun(stage_config("stage2", tiny_qwen2_dir, small_prepared, tmp_path / "s2"))
    terms_for = run._term_prompts()
    records = read_records(small_prepared / "sentences" / "train.jsonl")
    blocks = {r.id: terms_for(r) for r in records}
    assert run.term_block_stats["examples"] == len(records)
    with_block = [r for r in records if blocks[r.id]]
    assert 0 < run.term_block_stats["with_block"] == len(with_block) < len(records) / 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    record = with_block[0]
    example = tokenize([record], tokenizer, 1024, lambda r: blocks[r.id])[0][0]
    plain = tokenize([record], tokenizer, 1024)[0][0]
    prompt = render_prompt_ids(tokenizer, record.source, record.direction, blocks[record.id])
    assert example.input_ids[: len(prompt)] == prompt
    assert example.labels.count(-100) == len(prompt) > plain.labels.count(-100)
    answer = [t for t in example.labels if t != -100]
    assert answer == [t for t in plain.labels if t != -100]  # the block changes the prompt, never what is learnt
    with pytest.raises(ValueError, match="sentence stages"):
        stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "s1", "term_block_share=0.5").validate()


def test_resume_continues_instead_of_restarting(tiny_qwen2_dir, small_prepared, tmp_path, monkeypatch):
    """Killed right after the step-2 checkpoint, resumed: the same adapter as an uninterrupted run. Resumed
    with smaller forward passes instead (what a run killed for memory does): the same steps, so the same
    adapter up to the order of float sums."""
    from trainer.stages import StageRun

    whole = run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "whole",
                                   "max_steps=4", "eval_every=1"), show_progress=False)
    config = stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "cut", "max_steps=4", "eval_every=1")
    real_save = StageRun._save_checkpoint

    def save_then_die(self, model, optimizer, scheduler, state):
        real_save(self, model, optimizer, scheduler, state)
        if state["global_step"] == 2:
            raise KeyboardInterrupt  # what Ctrl-C (or a kill between two writes) does to the run

    monkeypatch.setattr(StageRun, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_stage(config, show_progress=False)
    monkeypatch.undo()
    state = json.loads((tmp_path / "cut" / "checkpoints" / "last" / "state.json").read_text())
    assert state["global_step"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        run_stage(config, show_progress=False)
    shutil.copytree(tmp_path / "cut", tmp_path / "cut-smaller")  # the same step-2 checkpoint, resumed twice
    resumed = run_stage(config, resume=True, show_progress=False)
    assert resumed["steps"] == 4
    history = json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"]
    train_steps = [h["step"] for h in history if h.get("train_loss") is not None]
    assert train_steps == [1, 2, 3, 4]
    a = load_file(tmp_path / "whole" / "checkpoints" / "last" / "adapter.safetensors")
    b = load_file(tmp_path / "cut" / "checkpoints" / "last" / "adapter.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert resumed["best_val_loss"] == pytest.approx(whole["best_val_loss"], rel=1e-4)

    smaller = stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "cut-smaller", "max_steps=4",
                           "eval_every=1", "micro_batch_size=2")
    resumed = run_stage(smaller, resume=True, show_progress=False)
    assert resumed["steps"] == 4
    assert json.loads((tmp_path / "cut-smaller" / "config.json").read_text())["micro_batch_size"] == 2
    c = load_file(tmp_path / "cut-smaller" / "checkpoints" / "last" / "adapter.safetensors")
    assert a.keys() == c.keys()
    # Other forward-pass sizes only change the order of float sums (bf16 on AMX CPUs), which Adam's
    # per-element normalisation lifts to ~3e-4 of a weight's norm; the wrong position in the epoch, 3e-2.
    for key in a:
        drift = float((a[key].float() - c[key].float()).norm() / a[key].float().norm().clamp(min=1e-12))
        assert drift < 2e-3, (key, drift)
    assert resumed["best_val_loss"] == pytest.approx(whole["best_val_loss"], rel=1e-3)


def test_sigterm_checkpoints_the_current_step_and_resume_matches(tiny_qwen2_dir, small_prepared, tmp_path,
                                                                  monkeypatch):
    """A job killed with SIGTERM (session end, `kill`) keeps its last whole step, not its last evaluation."""
    import os
    import signal

    from accelerate import Accelerator

    run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "whole", "max_steps=4",
                           "eval_every=100"), show_progress=False)
    config = stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "cut", "max_steps=4", "eval_every=100")
    before = signal.getsignal(signal.SIGTERM)
    real_clip, calls = Accelerator.clip_grad_norm_, []

    def clip_then_signal(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of step 3
        return real_clip(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", clip_then_signal)
    with pytest.raises(KeyboardInterrupt):
        run_stage(config, show_progress=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) is before  # handlers are given back
    state = json.loads((tmp_path / "cut" / "checkpoints" / "last" / "state.json").read_text())
    assert state["global_step"] == 3  # not 0: the step in flight was finished and saved
    resumed = run_stage(config, resume=True, show_progress=False)
    assert resumed["steps"] == 4
    a = load_file(tmp_path / "whole" / "checkpoints" / "last" / "adapter.safetensors")
    b = load_file(tmp_path / "cut" / "checkpoints" / "last" / "adapter.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_position_is_recounted_in_the_new_micro_batches():
    from trainer.stages import recount_position

    assert recount_position(200, 8, 4) == 400 and recount_position(200, 8, 16) == 100
    assert recount_position(6, 4, 2, world=2) == 12
    with pytest.raises(ValueError, match="not a multiple of 16"):
        recount_position(3, 8, 16)


def test_resume_refuses_changed_config(tiny_qwen2_dir, small_prepared, tmp_path):
    run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "r", "max_steps=1"), show_progress=False)
    with pytest.raises(ValueError, match="lora"):
        run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "r", "max_steps=2", "lora.r=4"),
                  resume=True, show_progress=False)
    # A checkpoint written before a config field existed resumes: the missing field counts as its default.
    state_file = tmp_path / "r" / "checkpoints" / "last" / "state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["term_block_share"]
    state_file.write_text(json.dumps(state))
    resumed = run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "r", "max_steps=2"),
                        resume=True, show_progress=False)
    assert resumed["steps"] == 2


def test_adapter_from_another_base_is_refused(stage1_run, tiny_qwen2_dir, small_prepared, tmp_path):
    from medcore.models import ModelError

    other = tmp_path / "other_base"
    shutil.copytree(tiny_qwen2_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5  # a different model as far as the fingerprint can tell
    (other / "config.json").write_text(json.dumps(cfg))
    stage1_out, _ = stage1_run
    config = stage_config("stage2", other, small_prepared, tmp_path / "s2", "max_steps=1",
                          f"init_adapters=[{stage1_out / 'adapter'}]")
    with pytest.raises(ModelError, match="another base"):
        run_stage(config, show_progress=False)


def _nan_on_calls(monkeypatch, bad_calls):
    """Make the training loss NaN on the given (1-based) training calls of the loss function."""
    import trainer.stages as stages

    real, calls = stages.answer_loss, {"n": 0}

    def loss_fn(model, batch, **kwargs):
        loss, count = real(model, batch, **kwargs)
        if model.training:  # validation passes run in eval mode and are not counted
            calls["n"] += 1
            if calls["n"] in bad_calls:
                loss = loss * float("nan")
        return loss, count

    monkeypatch.setattr(stages, "answer_loss", loss_fn)
    return calls


def test_a_non_finite_step_is_skipped_not_applied(tiny_qwen2_dir, small_prepared, tmp_path, monkeypatch):
    # batch 8 = 2 micro-batches of 4: training call 3 is step 2's first micro-batch.
    _nan_on_calls(monkeypatch, {3})
    summary = run_stage(stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "s1", "max_steps=4"),
                        show_progress=False)
    assert summary["skipped_steps"] == 1 and summary["steps"] == 4
    weights = load_file(tmp_path / "s1" / "checkpoints" / "last" / "adapter.safetensors")
    assert all(bool(torch.isfinite(v).all()) for v in weights.values())
    assert summary["best_val_loss"] < summary["start_val_loss"]  # the other steps still learnt


def test_a_run_that_keeps_producing_nan_stops_with_a_clear_error(tiny_qwen2_dir, small_prepared, tmp_path,
                                                                 monkeypatch):
    from trainer.cli import main

    _nan_on_calls(monkeypatch, set(range(1, 1000)))
    config = stage_config("stage1", tiny_qwen2_dir, small_prepared, tmp_path / "s1", "max_steps=12")
    with pytest.raises(FloatingPointError, match="8 optimizer steps in a row.*--resume"):
        run_stage(config, show_progress=False)
    args = ["stage1", "--base", str(tiny_qwen2_dir), "--data", str(small_prepared), "--out-dir",
            str(tmp_path / "cli"), *(f"--set={o}" for o in TINY), "--max-steps", "12", "--no-progress"]
    assert main(args) == 2


def test_length_grouped_order_is_a_seeded_permutation_with_less_padding():
    from trainer.stages import epoch_order

    rng = __import__("random").Random(3)
    lengths = [rng.randint(40, 120) for _ in range(16 * 70 + 5)]
    plain, grouped = epoch_order(lengths, 11), epoch_order(lengths, 11, group_batch=16, window=8)
    assert sorted(grouped) == sorted(plain) == list(range(len(lengths)))
    assert grouped == epoch_order(lengths, 11, group_batch=16, window=8)  # resumable: same seed, same order
    assert grouped != epoch_order(lengths, 12, group_batch=16, window=8)

    def padding(order):
        batches = [order[i : i + 16] for i in range(0, len(order), 16)]
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < 0.3 * padding(plain)
    # The epoch's last window (101 examples) ends in a short batch of its 5 longest: it must come last,
    # so every other batch starts on an optimizer-step boundary.
    last_window = sorted(plain[16 * 64 :], key=lambda i: lengths[i])
    assert grouped[-5:] == last_window[-5:]
