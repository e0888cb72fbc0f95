"""Prove a GGUF is the merged model: same tokens, same distributions, same greedy answers, fine-tune intact.

Probe prompts (medical, both directions, rendered through the prompt contract) go through the merged
HF model in transformers and through the GGUF in llama-cpp-python:

* teacher-forced on the merged model's own greedy answer, every answer position gives a KL divergence
  KL(P_merged || P_gguf) and a top-1 agreement;
* greedy decoding in both gives ``greedy_match`` (share of probes answered token for token alike);
* the GGUF must carry the same chat template, tokenize the rendered prompt to the same ids, and treat
  the template's end-of-turn token as end of generation (else the app never stops generating).

Agreement with the merged model is not enough: a short fine-tune moves the model only a little, and
quantisation noise of the same size erases it while top-1 agreement still looks high. With the base
model as a third reference, ``finetune`` reports how far the fine-tune moved the model (KL merged vs
base) and how much of that the GGUF kept: ``kept = 1 - sum KL(merged||gguf) / sum KL(merged||base)``,
plus, at the positions where the fine-tune changed the top-1 token, how often the GGUF follows the
fine-tune rather than the base. An export that lost the fine-tune fails.

**Runtime adapters** (:func:`verify_runtime`): the reference is the HF base with the PEFT stage
adapters applied exactly as training saw them (earlier stages merged, the last one live), and the
GGUF side is the bundled base GGUF with the GGUF LoRA stack llama.cpp applies at run time
(:mod:`runtime.adapters`). The same report, plus ``without_adapters``: the same GGUF with the stack
switched off, against the tuned reference (how much the adapters matter) and against the HF base
(the quantisation noise floor).
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converter import ConvertError
from runtime.gguf_header import Key

log = logging.getLogger(__name__)

# Per file type: minimum top-1 agreement, maximum mean / max KL (nats), minimum greedy match.
# Calibrated on the bundled Qwen2.5-0.5B (fp32 merged) with headroom; see docs/converter.md.
THRESHOLDS: dict[str, dict[str, float]] = {
    "f32": {"top1": 0.99, "kl_mean": 0.002, "kl_max": 0.1, "greedy": 0.8},
    "f16": {"top1": 0.97, "kl_mean": 0.01, "kl_max": 0.5, "greedy": 0.5},
    "bf16": {"top1": 0.95, "kl_mean": 0.03, "kl_max": 1.0, "greedy": 0.3},
    "q8_0": {"top1": 0.95, "kl_mean": 0.03, "kl_max": 1.0, "greedy": 0.3},
    "q6_k": {"top1": 0.92, "kl_mean": 0.06, "kl_max": 2.0, "greedy": 0.0},
    "q5_k_m": {"top1": 0.90, "kl_mean": 0.10, "kl_max": 3.0, "greedy": 0.0},
    "q4_k_m": {"top1": 0.85, "kl_mean": 0.20, "kl_max": 5.0, "greedy": 0.0},
    "q4_0": {"top1": 0.80, "kl_mean": 0.30, "kl_max": 6.0, "greedy": 0.0},
}
# The fine-tune must survive the export, whatever the file type.
FT_KEPT_MIN = 0.5        # share of the merged-vs-base divergence the GGUF must not lose
FT_TOP1_KEPT_MIN = 0.5   # at positions where the fine-tune changed the top-1 token
FT_MIN_KL = 0.005        # below this mean KL the fine-tune is too small to measure
FT_MIN_CHANGED = 5       # fewer changed positions than this: top-1 survival is not judged


@dataclass
class Probe:
    source: str
    direction: str
    text: str = ""                                    # the rendered prompt
    prompt_ids: list[int] = field(default_factory=list)
    gen_ids: list[int] = field(default_factory=list)  # the merged model's greedy answer
    base_gen_ids: list[int] | None = None


@dataclass
class Reference:
    """What the merged (and base) model do on the probes; computed once, compared with many GGUFs."""

    hf_dir: str
    base: str | None
    probes: list[Probe]
    logp_merged: list[np.ndarray]                     # per probe: (answer positions, vocab) log-probs
    logp_base: list[np.ndarray] | None
    chat_template: str
    eot_id: int
    eog_ids: list[int]
    vocab_size: int
    max_new_tokens: int
    adapters: list[str] = field(default_factory=list)  # PEFT stage adapters on hf_dir (runtime mode)


def load_probes(path: str | os.PathLike[str] | None = None) -> list[Probe]:
    import yaml

    from medcore.prompt import split_direction
    from medcore.resources import resource_path

    data = yaml.safe_load(Path(path or resource_path("converter", "probes.yaml")).read_text(encoding="utf-8"))
    probes = []
    for item in data["probes"]:
        split_direction(item["direction"])
        probes.append(Probe(source=str(item["source"]), direction=item["direction"]))
    return probes


def _teacher_logp(model, ids: list[int], start: int, count: int) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, start:start + count].float()
    return torch.log_softmax(logits, dim=-1).numpy()


def _hf_greedy(model, prompt_ids: list[int], max_new: int, eog: list[int], pad: int) -> list[int]:
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=eog, pad_token_id=pad)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                             generation_config=config)
    return out[0, len(prompt_ids):].tolist()


def _run_hf(directory: Path, probes: list[Probe], max_new: int, eog: list[int], pad: int,
            sequences: list[list[int]] | None = None,
            adapters: list[str] | None = None) -> tuple[list[np.ndarray], list[list[int]]]:
    """Greedy answers and teacher-forced log-probs (on ``sequences`` or the model's own answers)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    if adapters:
        from hfmodel.adapters import stack_adapters

        model = stack_adapters(model, adapters, live="last")  # as training saw them
    model.eval()
    gens, logps = [], []
    for i, probe in enumerate(probes):
        gen = _hf_greedy(model, probe.prompt_ids, max_new, eog, pad)
        answer = sequences[i] if sequences is not None else gen
        gens.append(gen)
        logps.append(_teacher_logp(model, probe.prompt_ids + answer[:-1], len(probe.prompt_ids) - 1, len(answer)))
    del model
    gc.collect()
    return logps, gens


def build_reference(hf_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
                    probes: list[Probe] | None = None, max_new_tokens: int = 32,
                    adapters: list[str | os.PathLike[str]] | None = None) -> Reference:
    """Run the merged model (and the base, when given) over the probes.

    ``adapters``: PEFT stage adapters applied on ``hf_dir`` for the reference (runtime-adapter mode).
    """
    from transformers import AutoTokenizer, GenerationConfig

    from medcore.prompt import end_of_turn_id, load_contract, render_prompt_ids

    hf_dir = Path(hf_dir)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not tokenizer.chat_template:
        raise ConvertError(f"{hf_dir} has no chat template")
    probes = probes or load_probes()
    for probe in probes:
        messages = load_contract().messages(probe.source, probe.direction)
        probe.text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        probe.prompt_ids = render_prompt_ids(tokenizer, probe.source, probe.direction)
    eot = end_of_turn_id(tokenizer)
    eog = [eot]
    if (hf_dir / "generation_config.json").exists():
        extra = GenerationConfig.from_pretrained(hf_dir).eos_token_id
        eog += [t for t in ([extra] if isinstance(extra, int) else extra or []) if t not in eog]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eog[-1]

    adapters = [str(a) for a in adapters or []]
    logp_merged, gens = _run_hf(hf_dir, probes, max_new_tokens, eog, pad, adapters=adapters)
    for probe, gen in zip(probes, gens, strict=False):
        probe.gen_ids = gen
    logp_base = None
    base_dir = None
    if base is not None:
        from hfmodel.cache import hf_dir_for

        base_dir = hf_dir_for(base)
        logp_base, base_gens = _run_hf(base_dir, probes, max_new_tokens, eog, pad, sequences=gens)
        for probe, gen in zip(probes, base_gens, strict=False):
            probe.base_gen_ids = gen
    return Reference(hf_dir=str(hf_dir), base=str(base_dir) if base_dir else None, probes=probes,
                     logp_merged=logp_merged, logp_base=logp_base, chat_template=tokenizer.chat_template,
                     eot_id=eot, eog_ids=eog, vocab_size=logp_merged[0].shape[1], max_new_tokens=max_new_tokens,
                     adapters=adapters)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _kl(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """KL(P || Q) per row, nats."""
    logp = logp.astype(np.float64)
    return np.maximum((np.exp(logp) * (logp - logq.astype(np.float64))).sum(axis=-1), 0.0)


def _prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _gguf_runs(reference: Reference, gguf: Path, n_gpu_layers: int = 0, loras: list | None = None) -> dict[str, Any]:
    import llama_cpp

    from runtime.adapters import open_llama_with_adapters, set_active

    longest = max(len(p.prompt_ids) + max(len(p.gen_ids), reference.max_new_tokens) for p in reference.probes)
    llm = open_llama_with_adapters(gguf, loras or [], n_ctx=longest + 16, n_batch=512, logits_all=True, verbose=False,
                                   n_threads=os.cpu_count() or 1, n_gpu_layers=n_gpu_layers, seed=0)

    def teacher_forced(probe: Probe) -> np.ndarray:
        llm.reset()
        llm.eval(probe.prompt_ids + probe.gen_ids[:-1])
        start = len(probe.prompt_ids) - 1
        return _log_softmax(np.array(llm.scores[start:start + len(probe.gen_ids)]))

    try:
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        if n_vocab != reference.vocab_size:
            raise ConvertError(f"{gguf.name} has {n_vocab} tokens, the merged model {reference.vocab_size}")
        tokens_ok, logps, gens = [], [], []
        for probe in reference.probes:
            tokens_ok.append(llm.tokenize(probe.text.encode("utf-8"), add_bos=False, special=True) == probe.prompt_ids)
            logps.append(teacher_forced(probe))
            llm.reset()
            llm.eval(probe.prompt_ids)
            gen: list[int] = []
            for _ in range(reference.max_new_tokens):
                tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                gen.append(tok)
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    break
                llm.eval([tok])
            gens.append(gen)
        logps_off = None
        if loras:  # the same model with the adapter stack switched off: the base GGUF alone
            set_active(llm, False)
            logps_off = [teacher_forced(probe) for probe in reference.probes]
        return {
            "tokens_ok": tokens_ok, "logps": logps, "gens": gens, "logps_without_adapters": logps_off,
            "adapters": [a.provenance() for a in llm.tsx_adapters],
            "eot_is_eog": bool(llama_cpp.llama_vocab_is_eog(vocab, reference.eot_id)),
            "chat_template": llm.metadata.get(Key.CHAT_TEMPLATE),
        }
    finally:
        llm.close()


def compare(reference: Reference, gguf: str | os.PathLike[str], ftype: str | None = None,
            n_gpu_layers: int = 0, thresholds: dict[str, float] | None = None,
            loras: list | None = None) -> dict[str, Any]:
    """Measure one GGUF against the reference; returns the report (``report['passed']``).

    ``thresholds`` overrides the file type's limits (keys as in :data:`THRESHOLDS`), for models
    whose noise floor differs from the pretrained LMs they were calibrated on. ``loras``: GGUF LoRA
    files (or :class:`medcore.lora.LoraAdapter`) llama.cpp applies on ``gguf`` at run time.
    """
    from runtime.gguf_header import read_gguf_info

    gguf = Path(gguf)
    info = read_gguf_info(gguf)
    ftype = ftype or info.file_type
    limits = {**THRESHOLDS.get(ftype, THRESHOLDS["q4_0"]), **(thresholds or {})}
    runs = _gguf_runs(reference, gguf, n_gpu_layers, loras)

    lp_m = np.concatenate(reference.logp_merged).astype(np.float64)
    lp_g = np.concatenate(runs["logps"])
    kl = _kl(lp_m, lp_g)
    top_m, top_g = lp_m.argmax(-1), lp_g.argmax(-1)
    top1 = float((top_m == top_g).mean())
    greedy = [g == p.gen_ids for g, p in zip(runs["gens"], reference.probes, strict=False)]
    prefix = [_prefix(g, p.gen_ids) / max(len(g), len(p.gen_ids), 1) for g, p in zip(runs["gens"], reference.probes, strict=False)]

    report: dict[str, Any] = {
        "gguf": str(gguf), "hf": reference.hf_dir, "ftype": ftype, "size_bytes": gguf.stat().st_size,
        "tensor_types": dict(info.tensor_types),
        "positions": int(kl.size), "probes": len(reference.probes),
        "top1_agreement": round(top1, 4), "kl_mean": round(float(kl.mean()), 5), "kl_max": round(float(kl.max()), 4),
        "greedy_match": round(float(np.mean(greedy)), 4), "greedy_prefix": round(float(np.mean(prefix)), 4),
        "tokenization_match": all(runs["tokens_ok"]),
        "chat_template_match": runs["chat_template"] == reference.chat_template,
        "end_of_turn_id": reference.eot_id, "end_of_turn_stops": runs["eot_is_eog"],
        "thresholds": limits, "finetune": None, "warnings": [], "failures": [],
        "adapters": runs["adapters"], "peft_adapters": reference.adapters, "without_adapters": None,
    }
    if runs["logps_without_adapters"] is not None:
        lp_off = np.concatenate(runs["logps_without_adapters"])
        off = {"kl_mean": round(float(_kl(lp_m, lp_off).mean()), 5),
               "top1_agreement": round(float((top_m == lp_off.argmax(-1)).mean()), 4)}
        if reference.logp_base is not None:
            lp_b0 = np.concatenate(reference.logp_base).astype(np.float64)
            off["vs_hf_base_kl_mean"] = round(float(_kl(lp_b0, lp_off).mean()), 5)
            off["vs_hf_base_top1_agreement"] = round(float((lp_b0.argmax(-1) == lp_off.argmax(-1)).mean()), 4)
        report["without_adapters"] = off
    fails, warns = report["failures"], report["warnings"]
    if top1 < limits["top1"]:
        fails.append(f"top-1 agreement {top1:.3f} < {limits['top1']} for {ftype}")
    if kl.mean() > limits["kl_mean"]:
        fails.append(f"mean KL {kl.mean():.4f} > {limits['kl_mean']} for {ftype}")
    if kl.max() > limits["kl_max"]:
        fails.append(f"max KL {kl.max():.3f} > {limits['kl_max']} for {ftype}")
    if np.mean(greedy) < limits["greedy"]:
        fails.append(f"greedy match {np.mean(greedy):.2f} < {limits['greedy']} for {ftype}")
    if not report["tokenization_match"]:
        fails.append("llama.cpp tokenizes the rendered prompts differently from the merged model's tokenizer")
    if not report["chat_template_match"]:
        fails.append("the GGUF's chat template differs from the merged model's (or is missing)")
    if not report["end_of_turn_stops"]:
        fails.append(f"llama.cpp does not stop at the end-of-turn token {reference.eot_id}: generation would run on")

    if reference.logp_base is not None:
        lp_b = np.concatenate(reference.logp_base).astype(np.float64)
        ft_kl = _kl(lp_m, lp_b)
        top_b = lp_b.argmax(-1)
        changed = top_m != top_b
        kept = 1.0 - float(kl.sum() / ft_kl.sum()) if ft_kl.sum() > 0 else None
        ft_top1 = float((top_g[changed] == top_m[changed]).mean()) if changed.any() else None
        reverted = float((top_g[changed] == top_b[changed]).mean()) if changed.any() else None
        diff = [(g, p) for g, p in zip(runs["gens"], reference.probes, strict=False) if p.base_gen_ids != p.gen_ids]
        greedy_kept = (float(np.mean([_prefix(g, p.gen_ids) > _prefix(g, p.base_gen_ids) or g == p.gen_ids
                                      for g, p in diff])) if diff else None)
        ft = {
            "base": reference.base, "ft_kl_mean": round(float(ft_kl.mean()), 5),
            "kept": None if kept is None else round(kept, 4),
            "changed_positions": int(changed.sum()),
            "top1_kept": None if ft_top1 is None else round(ft_top1, 4),
            "top1_reverted_to_base": None if reverted is None else round(reverted, 4),
            "probes_changed_by_finetune": len(diff),
            "greedy_kept": None if greedy_kept is None else round(greedy_kept, 4),
            "gguf_vs_base_kl_mean": round(float(_kl(lp_g, lp_b).mean()), 5),
        }
        report["finetune"] = ft
        if ft_kl.mean() < FT_MIN_KL:
            warns.append(f"the fine-tune barely moves the model on the probes (mean KL {ft_kl.mean():.4f}); "
                         "its survival cannot be judged")
        else:
            if kept is not None and kept < FT_KEPT_MIN:
                fails.append(f"the export lost the fine-tune: it keeps {kept:.2f} of the merged model's divergence "
                             f"from the base (< {FT_KEPT_MIN}); use a larger quantisation")
            if ft_top1 is not None and changed.sum() >= FT_MIN_CHANGED and ft_top1 < FT_TOP1_KEPT_MIN:
                fails.append(f"at the {int(changed.sum())} positions the fine-tune changed, the GGUF follows it only "
                             f"{ft_top1:.2f} of the time (base: {reverted:.2f})")
    else:
        warns.append("no base model given: cannot tell whether the fine-tune survived the export")
    report["passed"] = not fails
    return report


def verify(hf_dir: str | os.PathLike[str], gguf: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
           ftype: str | None = None, max_new_tokens: int = 32, probes_file: str | None = None,
           thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    reference = build_reference(hf_dir, base, load_probes(probes_file), max_new_tokens)
    return compare(reference, gguf, ftype, thresholds=thresholds)


def find_peft_source(lora) -> Path:
    """The PEFT adapter a GGUF LoRA was made from: where its sidecar says (``peft_source``, the training
    run on the machine that exported it), else the copy committed beside it (``peft/stage<N>/``, as
    ``resources/models/adapters/<name>/`` holds them), whichever has the sha256 the sidecar records.
    So a fresh checkout can verify the shipped adapters without the original ``runs/`` folder."""
    from hfmodel.fingerprints import adapter_fingerprint

    want = lora.meta.get("peft_sha256")
    candidates = [Path(p) for p in (lora.meta.get("peft_source"),) if p]
    if lora.stage is not None:
        candidates.append(lora.path.parent / "peft" / f"stage{lora.stage}")
    present = [c for c in candidates if (c / "adapter_config.json").is_file()]
    for candidate in present:
        if not want or adapter_fingerprint(candidate) == want:
            return candidate
    where = ", ".join(map(str, candidates)) or "nowhere (its sidecar names no source)"
    problem = "have other weights" if present else "are not there"
    raise ConvertError(f"the PEFT adapter {lora.path.name} was made from (sha256 {str(want)[:12]}…) is not found: "
                       f"looked in {where}, which {problem}; give it with --adapter")


def verify_runtime(gguf: str | os.PathLike[str], loras: list[str | os.PathLike[str]],
                   peft: list[str | os.PathLike[str]] | None = None, hf: str | os.PathLike[str] | None = None,
                   ftype: str | None = None, max_new_tokens: int = 32, probes_file: str | None = None,
                   thresholds: dict[str, float] | None = None, use_base: bool = True) -> dict[str, Any]:
    """Base GGUF + runtime GGUF LoRAs against the HF base + the same PEFT adapters.

    ``peft`` defaults to the PEFT directories the LoRAs were made from (:func:`find_peft_source`), ``hf``
    to the dequantised HF form of ``gguf`` (the model the adapters were trained on). Each PEFT
    adapter must be the one its GGUF LoRA was made from (sha256).
    """
    from hfmodel.cache import hf_dir_for
    from hfmodel.fingerprints import adapter_fingerprint
    from medcore.lora import as_adapters

    stack = as_adapters(loras)
    if not stack:
        raise ConvertError("no runtime adapters given (--lora)")
    if peft is None:  # found by their recorded sha256: checked already
        peft = [find_peft_source(a) for a in stack]
    else:
        if len(peft) != len(stack):
            raise ConvertError(f"{len(stack)} GGUF LoRA(s) but {len(peft)} PEFT adapter(s): give one per stage, "
                               "same order")
        for lora, directory in zip(stack, peft, strict=True):
            want = lora.meta.get("peft_sha256")
            if want and adapter_fingerprint(directory) != want:
                raise ConvertError(f"{lora.path.name} was not made from {directory} (PEFT sha256 differs)")
    hf_dir = Path(hf) if hf else hf_dir_for(gguf)
    reference = build_reference(hf_dir, hf_dir if use_base else None, load_probes(probes_file), max_new_tokens,
                                adapters=[str(p) for p in peft])
    return compare(reference, gguf, ftype, thresholds=thresholds, loras=stack)


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{Path(report['gguf']).name} ({report['ftype']}, {report['size_bytes'] / 1e6:.1f} MB) vs {report['hf']}",
             f"  top-1 agreement {report['top1_agreement']:.4f}   KL mean {report['kl_mean']:.5f}   KL max "
             f"{report['kl_max']:.4f}   greedy match {report['greedy_match']:.2f} (prefix {report['greedy_prefix']:.2f})"
             f"   over {report['positions']} positions / {report['probes']} probes",
             f"  tokenization {'ok' if report['tokenization_match'] else 'DIFFERS'}, chat template "
             f"{'ok' if report['chat_template_match'] else 'DIFFERS'}, end-of-turn {report['end_of_turn_id']} "
             f"{'stops generation' if report['end_of_turn_stops'] else 'DOES NOT STOP generation'}"]
    if report.get("adapters"):
        names = ", ".join(f"{Path(a['file']).name} (stage {a['stage']})" for a in report["adapters"])
        lines.insert(1, f"  runtime adapters: {names}")
    if off := report.get("without_adapters"):
        lines.append(f"  without the adapters: KL mean {off['kl_mean']:.5f}, top-1 {off['top1_agreement']:.4f} vs the "
                     "tuned reference" + (f"; vs the HF base: KL mean {off['vs_hf_base_kl_mean']:.5f}, top-1 "
                                          f"{off['vs_hf_base_top1_agreement']:.4f}" if "vs_hf_base_kl_mean" in off else ""))
    if ft := report.get("finetune"):
        lines.append(f"  fine-tune: moved KL {ft['ft_kl_mean']:.4f} from the base; export keeps {ft['kept']}; "
                     f"top-1 kept {ft['top1_kept']} (reverted {ft['top1_reverted_to_base']}) at "
                     f"{ft['changed_positions']} changed positions; greedy kept {ft['greedy_kept']} "
                     f"on {ft['probes_changed_by_finetune']} probes")
    lines += [f"  warning: {w}" for w in report["warnings"]]
    lines += [f"  FAIL: {f}" for f in report["failures"]]
    lines.append("  PASSED" if report["passed"] else "  FAILED")
    return "\n".join(lines)


__all__ = ["THRESHOLDS", "Probe", "Reference", "build_reference", "compare", "format_report", "load_probes",
           "verify", "verify_runtime"]
