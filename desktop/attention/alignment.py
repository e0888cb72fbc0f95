"""Term -> source alignment from attention: the best-aligned source span and how sure we are.

For a target term (a character span in the translation), take the attention of the positions that
*produced* the term's units (``AttentionResult.generation``; optionally the term's own tokens as
queries instead) to the **source** units only, renormalised over the source (while translating,
much attention goes to the translation written so far; that is not alignment evidence), then:

* ``per_head`` [layers, heads, n_src]: mean over the term's units;
* ``per_layer`` [layers, n_src]: mean over heads (the term view's heatmap);
* ``profile`` [n_src]: mean over the layers in ``layers``; sums to 1. The default band is the
  middle-to-late layers (from a third of the depth to ~92 %): on the bundled Qwen2.5 0.5B the
  early layers put their source attention on punctuation and position, whatever the term, and
  the last layers mostly on the sentence end; in between, per-layer peaks land on the source term
  (e.g. "acute myocardial infarction" -> 急性心肌梗死, "COVID-19 pneumonia" -> 新型冠状病毒肺炎).

Best span: the source unit with the highest profile value, grown left/right over neighbours whose
value is at least ``grow`` x the peak (at most ``max_units`` units). Two numbers describe it:

* ``mass``: share of the term's source-directed attention that lands on the span (0..1);
* ``agreement``: share of layers (in ``layers``) whose own peak source unit lies inside the span.

Both are compared with chance: a span of ``w`` of the ``n`` content units gets ``w/n`` of uniform
attention and is hit by ``w/n`` of random peaks, so each is rescaled as ``(x - w/n) / (1 - w/n)``
(like Cohen's kappa; 0 = no better than spreading attention evenly). ``confidence`` is the
geometric mean of the two rescaled numbers: high only when the attention is concentrated on the
span *and* consistent across depth, and ~0 for diffuse attention however wide the span grows. A term is flagged **weak** when the confidence is below
``weak_below``, or when the app said which source term it expected (``expected_span``) and the
span does not overlap it. Attention is evidence of what the model looked at, not a proof of
alignment: the flag is a prompt to look, the per-layer heatmap is what to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from desktop.attention.engine import AttentionResult

WEAK_BELOW = 0.3


def default_band(n_layers: int) -> list[int]:
    """Layers used for the profile by default (see the module docstring)."""
    lo, hi = round(n_layers / 3), round(n_layers * 0.92)
    if hi <= lo:
        lo, hi = 0, n_layers
    return list(range(lo, hi))


@dataclass
class TermAlignment:
    term: str
    tgt_span: tuple[int, int]
    tgt_units: list[int]
    src_units: list[int]  # best-aligned span, unit indices (contiguous)
    src_span: tuple[int, int]  # ... as characters of the source
    src_text: str
    confidence: float
    mass: float
    agreement: float
    weak: bool
    reason: str
    expected_units: list[int] = field(default_factory=list)
    expected_mass: float | None = None  # profile mass on the expected source span, when given
    profile: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_layer: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    per_head: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    source_share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [layers] share on source
    peak_layer: int = 0  # layer with the most attention on the span
    peak_head: int = 0  # in ``peak_layer``, the head with the most attention on the span
    query: str = "generation"
    band: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready summary (arrays as rounded lists)."""
        return {
            "term": self.term, "tgt_span": list(self.tgt_span), "tgt_units": self.tgt_units,
            "src_units": self.src_units, "src_span": list(self.src_span), "src_text": self.src_text,
            "confidence": round(self.confidence, 4), "mass": round(self.mass, 4),
            "agreement": round(self.agreement, 4), "weak": self.weak, "reason": self.reason,
            "expected_units": self.expected_units,
            "expected_mass": None if self.expected_mass is None else round(self.expected_mass, 4),
            "peak_layer": self.peak_layer, "peak_head": self.peak_head, "query": self.query, "band": self.band,
        }


def term_source_attention(result: AttentionResult, tgt_units: Sequence[int], query: str = "generation") -> tuple[np.ndarray, np.ndarray]:
    """[layers, heads, n_src] attention of the term to the source (renormalised), and [layers] share."""
    if not tgt_units:
        raise ValueError("the term covers no translation token")
    if query == "generation":
        rows = result.generation[:, :, list(tgt_units), : result.n_src]
    elif query == "term":
        rows = result.attentions[:, :, [result.n_src + u for u in tgt_units], : result.n_src]
    else:
        raise ValueError(f"unknown query kind {query!r} (generation or term)")
    share = rows.sum(axis=-1)  # [L, H, t]
    norm = rows / np.maximum(share, 1e-12)[..., None]
    return norm.mean(axis=2), share.mean(axis=(1, 2))


def content_mask(tokens: Sequence[str]) -> np.ndarray:
    """True for units with a letter, digit or CJK character; punctuation-only units are False.

    Sentence punctuation (``。``, ``，``, ``.``) works as an attention sink in this model family:
    in early layers it takes most of the source-directed attention whatever the term. A term is
    never the translation of a comma, so such units are left out of the profile.
    """
    mask = np.array([any(ch.isalnum() for ch in t) for t in tokens], dtype=bool)
    return mask if mask.any() else np.ones(len(tokens), dtype=bool)


def best_span(profile: np.ndarray, grow: float = 0.5, max_units: int = 8) -> tuple[int, int]:
    """[start, end) unit range around the peak, grown over neighbours >= grow * peak."""
    peak = int(np.argmax(profile))
    threshold = grow * float(profile[peak])
    lo, hi = peak, peak + 1
    while hi - lo < max_units:
        left = profile[lo - 1] if lo > 0 else -1.0
        right = profile[hi] if hi < len(profile) else -1.0
        if max(left, right) < threshold:
            break
        if left >= right:
            lo -= 1
        else:
            hi += 1
    return lo, hi


def align_term(result: AttentionResult, tgt_span: tuple[int, int], expected_span: tuple[int, int] | None = None,
               layers: Sequence[int] | None = None, query: str = "generation", grow: float = 0.5,
               weak_below: float = WEAK_BELOW) -> TermAlignment:
    """Align the translation term at ``tgt_span`` to the source (see the module docstring)."""
    tgt_units = result.units_in(tgt_span, "tgt")
    if result.n_src == 0:
        raise ValueError("the result has no source tokens")
    per_head, share = term_source_attention(result, tgt_units, query)
    mask = content_mask(result.src_tokens)
    per_head = per_head * mask
    per_head = per_head / np.maximum(per_head.sum(axis=-1, keepdims=True), 1e-12)
    per_layer = per_head.mean(axis=1)
    band = list(layers) if layers is not None else default_band(result.n_layers)
    profile = per_layer[band].mean(axis=0)
    profile = profile / max(float(profile.sum()), 1e-12)
    n_term = len(tgt_units)
    lo, hi = best_span(profile, grow=grow, max_units=max(2, 2 * n_term + 2))
    span_units = list(range(lo, hi))
    mass = float(profile[lo:hi].sum())
    peaks = per_layer[band].argmax(axis=1)
    agreement = float(np.mean((peaks >= lo) & (peaks < hi)))
    chance = len(span_units) / max(int(mask.sum()), 1)
    if chance >= 1.0:
        confidence = 0.0  # the span is the whole source: nothing was singled out
    else:
        kappa = [max(0.0, (x - chance) / (1.0 - chance)) for x in (mass, agreement)]
        confidence = float(np.sqrt(kappa[0] * kappa[1]))
    in_span = per_layer[band, lo:hi].sum(axis=1)
    peak_layer = int(band[int(np.argmax(in_span))])
    peak_head = int(np.argmax(per_head[peak_layer, :, lo:hi].sum(axis=-1)))
    s0, s1 = int(result.src_spans[lo][0]), int(result.src_spans[hi - 1][1])
    expected_units = result.units_in(expected_span, "src") if expected_span else []
    expected_mass = float(profile[expected_units].sum()) if expected_units else None
    reasons = []
    if confidence < weak_below:
        reasons.append(f"confidence {confidence:.2f} < {weak_below:.2f}")
    if expected_units and not set(expected_units) & set(span_units):
        reasons.append("best-aligned span misses the expected source term")
    return TermAlignment(
        term=result.translation[tgt_span[0]:tgt_span[1]], tgt_span=(int(tgt_span[0]), int(tgt_span[1])),
        tgt_units=tgt_units, src_units=span_units, src_span=(s0, s1), src_text=result.source[s0:s1],
        confidence=confidence, mass=mass, agreement=agreement, weak=bool(reasons),
        reason="; ".join(reasons) if reasons else "ok", expected_units=expected_units,
        expected_mass=expected_mass, profile=profile.astype(np.float32), per_layer=per_layer.astype(np.float32),
        per_head=per_head.astype(np.float32), source_share=share.astype(np.float32), peak_layer=peak_layer,
        peak_head=peak_head, query=query, band=band,
    )
