"""Scoring functions for translations: BLEU/chrF (sacreBLEU), term accuracy, COMET, paired bootstrap.

Pure functions over lists of strings; nothing here knows about models or files except COMET, which
loads a checkpoint from a local path (never from a hub). Importing this module imports neither torch
nor sacreBLEU nor COMET: each is imported inside the function that uses it.

- BLEU uses sacreBLEU's ``zh`` tokenizer for Chinese targets (every CJK character is a token) and
  ``13a`` for English; chrF is character-based and needs no tokenizer. Every score carries its
  sacreBLEU signature so a number can be reproduced.
- Term accuracy has two forms (see :func:`term_exact_match` and :func:`sentence_term_accuracy`),
  both built on the one matcher in :mod:`medcore.terms`: English is compared case- and
  width-insensitively on whole words, Chinese character for character.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcore.terms import Glossary, find_phrase
from medcore.textnorm import match_key

log = logging.getLogger(__name__)

LANGS = ("zh", "en")


def bleu_tokenizer(target_lang: str) -> str:
    """sacreBLEU tokenizer for a target language: ``zh`` (per CJK character) or ``13a``."""
    if target_lang not in LANGS:
        raise ValueError(f"unknown target language {target_lang!r} (expected 'zh' or 'en')")
    return "zh" if target_lang == "zh" else "13a"


def _check_lengths(**lists: Sequence[Any]) -> int:
    sizes = {name: len(values) for name, values in lists.items() if values is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs differ in length: {sizes}")
    return next(iter(sizes.values()), 0)


def _bleu_metric(target_lang: str):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=bleu_tokenizer(target_lang))


def _chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()


@dataclass
class CorpusScore:
    """A corpus-level score with the sacreBLEU signature that reproduces it."""

    score: float
    signature: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"score": self.score, "signature": self.signature, "detail": self.detail}


def bleu(hypotheses: Sequence[str], references: Sequence[str], target_lang: str) -> CorpusScore:
    """Corpus BLEU (0-100) with one reference per segment."""
    _check_lengths(hypotheses=hypotheses, references=references)
    metric = _bleu_metric(target_lang)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore(float(result.score), str(metric.get_signature()), str(result))


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> CorpusScore:
    """Corpus chrF2 (0-100), sacreBLEU defaults (character 6-grams, beta 2, whitespace ignored)."""
    _check_lengths(hypotheses=hypotheses, references=references)
    metric = _chrf_metric()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return CorpusScore(float(result.score), str(metric.get_signature()), str(result))


# ---------------------------------------------------------------------------------------------
# Term accuracy
# ---------------------------------------------------------------------------------------------

# What a model may wrap around a bare term without getting it wrong: surrounding whitespace,
# quotes, and one closing sentence mark ("Angina." / "心绞痛。" are the term).
_WRAP_QUOTES = "\"'“”‘’「」『』《》"
_TRAILING_MARK = re.compile(r"[.。!！;；]+$")
_SPACES = re.compile(r"\s+")


def term_key(text: str, lang: str) -> str:
    """The form in which a term translation is compared for exact match.

    English: full-width folded to half width, lower-cased, whitespace runs as one space.
    Chinese: character-exact (a different character is a different term), spaces removed.
    Both: surrounding quotes and a trailing sentence mark stripped.
    """
    text = text.strip().strip(_WRAP_QUOTES).strip()
    text = _TRAILING_MARK.sub("", text).strip().strip(_WRAP_QUOTES).strip()
    if lang == "zh":
        return _SPACES.sub("", text)
    return _SPACES.sub(" ", match_key(text, "en")).strip()


def accepted_translations(source: str, target: str, src_lang: str, tgt_lang: str,
                          glossary: Glossary | None = None) -> list[str]:
    """The reference translation of a term plus, with a glossary, every other translation the
    glossary gives for exactly this source term (``angina`` and ``angina pectoris`` for 心绞痛)."""
    accepted = [target]
    if glossary is not None:
        for hit in glossary.find(source, src_lang):
            # Only a hit covering the whole source is the same term (not a term inside it).
            if hit.span.start == 0 and hit.span.end == len(source.rstrip()):
                accepted.extend(e for e in hit.expected(tgt_lang) if e not in accepted)
    return accepted


@dataclass
class TermMatch:
    ok: bool
    hypothesis_key: str
    accepted: list[str]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "hypothesis_key": self.hypothesis_key, "accepted": self.accepted}


def term_exact_match(source: str, hypothesis: str, target: str, src_lang: str, tgt_lang: str,
                     glossary: Glossary | None = None) -> TermMatch:
    """Is the translation of one term record exactly an accepted translation (see :func:`term_key`)?"""
    accepted = accepted_translations(source, target, src_lang, tgt_lang, glossary)
    key = term_key(hypothesis, tgt_lang)
    ok = bool(key) and any(key == term_key(a, tgt_lang) for a in accepted)
    return TermMatch(ok, key, accepted)


@dataclass
class TermTally:
    """Counts behind a term accuracy: ``correct`` of ``total`` (terms or term occurrences)."""

    correct: int = 0
    total: int = 0
    misses: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return None if self.total == 0 else self.correct / self.total

    def add(self, other: TermTally) -> None:
        self.correct += other.correct
        self.total += other.total
        self.misses.extend(other.misses)

    def to_dict(self, max_misses: int = 0) -> dict:
        out = {"accuracy": self.accuracy, "correct": self.correct, "total": self.total}
        if max_misses:
            out["examples_missed"] = self.misses[:max_misses]
        return out


def term_records_accuracy(sources: Sequence[str], hypotheses: Sequence[str], targets: Sequence[str],
                          src_lang: str, tgt_lang: str, glossary: Glossary | None = None) -> TermTally:
    """Exact-match accuracy over term records (one term a segment)."""
    _check_lengths(sources=sources, hypotheses=hypotheses, targets=targets)
    tally = TermTally()
    for src, hyp, tgt in zip(sources, hypotheses, targets, strict=True):
        match = term_exact_match(src, hyp, tgt, src_lang, tgt_lang, glossary)
        tally.total += 1
        tally.correct += int(match.ok)
        if not match.ok:
            tally.misses.append({"source": src, "hypothesis": hyp, "accepted": match.accepted})
    return tally


def sentence_term_checks(glossary: Glossary, source: str, hypothesis: str, src_lang: str,
                         tgt_lang: str, reference: str | None = None) -> list[dict]:
    """Every glossary term found in ``source``, whether an expected translation is in the output,
    and (given a reference) whether the reference itself uses one of them."""
    rows = []
    for check in glossary.check(source, hypothesis, src_lang, tgt_lang):
        row = check.to_dict()
        if reference is not None:
            row["in_reference"] = any(find_phrase(reference, e, tgt_lang) for e in check.expected)
        rows.append(row)
    return rows


def sentence_term_accuracy(sources: Sequence[str], hypotheses: Sequence[str], src_lang: str, tgt_lang: str,
                           glossary: Glossary, references: Sequence[str] | None = None
                           ) -> tuple[TermTally, TermTally]:
    """Share of glossary terms found in the sources whose expected translation appears in the output.

    Returns ``(all_terms, reference_confirmed)``: the second counts only the terms whose expected
    translation the reference also contains, which filters out glossary entries a human translator
    legitimately rendered another way (the first is the plain definition; both are reported).
    """
    _check_lengths(sources=sources, hypotheses=hypotheses, references=references)
    every, confirmed = TermTally(), TermTally()
    refs = references if references is not None else [None] * len(sources)
    for src, hyp, ref in zip(sources, hypotheses, refs, strict=True):
        for row in sentence_term_checks(glossary, src, hyp, src_lang, tgt_lang, ref):
            ok = row["status"] == "ok"
            tallies = [every] + ([confirmed] if row.get("in_reference") else [])
            for tally in tallies:
                tally.total += 1
                tally.correct += int(ok)
            if not ok:
                every.misses.append({"term": row["term"], "expected": row["expected"], "hypothesis": hyp})
    return every, confirmed


# ---------------------------------------------------------------------------------------------
# COMET
# ---------------------------------------------------------------------------------------------


class CometUnavailable(RuntimeError):
    """COMET cannot run: no checkpoint, package missing, or the checkpoint cannot be loaded offline."""


def resolve_comet_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Accept the ``.ckpt`` file or the model directory holding ``checkpoints/model.ckpt``."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "checkpoints" / "model.ckpt"
        if not candidate.is_file():
            raise CometUnavailable(f"{path} is a directory without checkpoints/model.ckpt")
        path = candidate
    if not path.is_file():
        raise CometUnavailable(f"COMET checkpoint not found: {path}")
    if not (path.parents[1] / "hparams.yaml").is_file():
        raise CometUnavailable(f"COMET checkpoint {path} has no hparams.yaml two levels up")
    return path


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Make any hub access fail fast while COMET loads (it would otherwise try to download)."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_comet(checkpoint: str | os.PathLike[str], encoder: str | os.PathLike[str] | None = None):
    """Load a COMET model from a local checkpoint, offline.

    ``encoder`` replaces the ``pretrained_model`` recorded in ``hparams.yaml`` (a local directory
    with the encoder's tokenizer and config; its weights come from the checkpoint), for checkpoints
    such as wmt22-comet-da whose hparams name ``xlm-roberta-large`` on the hub.
    """
    ckpt = resolve_comet_checkpoint(checkpoint)
    try:
        import comet
        from comet.models import str2model
    except ImportError as exc:
        raise CometUnavailable(f"unbabel-comet is not installed ({exc}); pip install 'tsx-medtrans[eval]'") from None
    with _offline():
        try:
            if encoder is not None:
                import torch
                import yaml

                hparams = yaml.safe_load((ckpt.parents[1] / "hparams.yaml").read_text())
                model_class = str2model[hparams["class_identifier"]]
                return model_class.load_from_checkpoint(
                    ckpt, load_pretrained_weights=False, map_location=torch.device("cpu"), strict=False,
                    local_files_only=True, pretrained_model=str(encoder),
                )
            if "local_files_only" in inspect.signature(comet.load_from_checkpoint).parameters:
                return comet.load_from_checkpoint(str(ckpt), local_files_only=True)
            return comet.load_from_checkpoint(str(ckpt))
        except CometUnavailable:
            raise
        except Exception as exc:  # comet raises bare Exceptions and OSErrors from transformers
            raise CometUnavailable(
                f"cannot load COMET checkpoint {ckpt} offline: {exc}. The encoder named in its "
                "hparams.yaml (pretrained_model) must be available locally; pass its directory as the "
                "COMET encoder to override it."
            ) from exc


@dataclass
class CometResult:
    system: float
    segments: list[float]
    checkpoint: str

    def to_dict(self) -> dict:
        return {"score": self.system, "checkpoint": self.checkpoint, "segments": len(self.segments)}


def comet_score(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str],
                checkpoint: str | os.PathLike[str] | None = None, model: Any = None,
                encoder: str | os.PathLike[str] | None = None, batch_size: int = 16,
                progress: bool = False) -> CometResult:
    """Segment and system COMET scores (the system score is the mean of the segments)."""
    n = _check_lengths(sources=sources, hypotheses=hypotheses, references=references)
    if model is None:
        if checkpoint is None:
            raise CometUnavailable("no COMET checkpoint given")
        model = load_comet(checkpoint, encoder)
    if n == 0:
        return CometResult(float("nan"), [], str(checkpoint or ""))
    import torch

    samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hypotheses, references, strict=True)]
    gpus = 1 if torch.cuda.is_available() else 0
    # num_workers=0: forking DataLoader workers on a 2-core machine costs more than it saves.
    output = model.predict(samples, batch_size=batch_size, gpus=gpus, progress_bar=progress, num_workers=0)
    scores = [float(s) for s in output.scores]
    return CometResult(sum(scores) / len(scores), scores, str(checkpoint or getattr(model, "hparams", {})))


@dataclass
class CometSpec:
    """Where COMET comes from; the model is loaded on first use and shared by every system."""

    checkpoint: str | None = None
    encoder: str | None = None
    batch_size: int = 16
    _model: Any = field(default=None, repr=False)

    def model(self) -> Any:
        if self.checkpoint is None:
            return None
        if self._model is None:
            self._model = load_comet(self.checkpoint, self.encoder)
        return self._model


# ---------------------------------------------------------------------------------------------
# Paired bootstrap
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def paired_bootstrap(baseline: tuple[str, Sequence[str]], systems: Sequence[tuple[str, Sequence[str]]],
                     references: Sequence[str], target_lang: str, n_samples: int = 1000,
                     seed: int = 12345) -> dict:
    """sacreBLEU's paired bootstrap resampling (Koehn 2004) of BLEU and chrF, each system vs ``baseline``.

    Returns ``{"signatures": {...}, "systems": [{"system", "bleu": {score, mean, ci, p_value}, "chrf": ...}]}``;
    the baseline comes first with no p-value. A p-value below 0.05 means the difference to the baseline
    is unlikely to be a sampling accident of this test set.

    A system whose outputs are identical to the baseline's gets ``p_value`` 1.0 and ``identical``: sacreBLEU
    deliberately returns its smallest p-value for a zero difference, which reads as "significant" in a table.
    """
    from sacrebleu.significance import PairedTest

    named = [(baseline[0], list(baseline[1]))] + [(name, list(h)) for name, h in systems]
    for name, hyps in named:
        if len(hyps) != len(references):
            raise ValueError(f"system {name!r} has {len(hyps)} hypotheses for {len(references)} references")
    metrics = {"BLEU": _bleu_metric(target_lang), "chrF": _chrf_metric()}
    with _sacrebleu_seed(seed):
        test = PairedTest(named, metrics, [list(references)], test_type="bs", n_samples=n_samples)
        signatures, scores = test()
    out_systems = []
    for index, name in enumerate(scores["System"]):
        identical = index > 0 and named[index][1] == named[0][1]
        row: dict[str, Any] = {"system": name}
        if index > 0:
            row["identical"] = identical
        for metric_name, key in (("BLEU", "bleu"), ("chrF2", "chrf")):
            result = scores[metric_name][index]
            p_value = 1.0 if identical else _nan_to_none(result.p_value)
            row[key] = {"score": float(result.score), "mean": _nan_to_none(result.mean),
                        "ci": _nan_to_none(result.ci), "p_value": p_value}
        out_systems.append(row)
    return {"signatures": {k: str(v) for k, v in signatures.items()}, "n_samples": n_samples, "seed": seed,
            "systems": out_systems}
