"""What a translation gives back: per segment, per text, and the plan announced before the first token."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.segment import Segment


@dataclass
class SegmentResult:
    index: int
    start: int
    end: int
    source: str
    translation: str
    prompt_tokens: int
    generated_tokens: int
    max_tokens: int
    first_token_s: float | None
    seconds: float
    finish_reason: str  # "stop" | "length" | "cancelled"
    separator: str = ""  # what follows this segment's translation in the output (line breaks, a space)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TranslationResult:
    source: str
    translation: str
    direction: str
    segments: list[SegmentResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # the weights that translated (runtime_provenance)
    parallel: int = 1  # sequences decoded side by side (1: the sequential path)
    total_segments: int = 0  # segments planned (``segments`` lacks those a Stop never started)

    @property
    def generated_tokens(self) -> int:
        return sum(s.generated_tokens for s in self.segments)

    @property
    def first_token_s(self) -> float | None:
        return self.segments[0].first_token_s if self.segments else None

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: tokens after the first one over the time after the first one.

        Side by side (``parallel > 1``) segments overlap in time: then it is the document's output
        tokens over its wall time after the first token.
        """
        if self.parallel > 1:
            tail = self.seconds - (self.first_token_s or 0.0)
            return max(0, self.generated_tokens - 1) / tail if tail > 0 else 0.0
        decode_s = sum(s.seconds - (s.first_token_s or 0.0) for s in self.segments)
        tokens = sum(max(0, s.generated_tokens - 1) for s in self.segments)
        return tokens / decode_s if decode_s > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "segments": len(self.segments),
            "generated_tokens": self.generated_tokens,
            "seconds": round(self.seconds, 3),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "parallel": self.parallel,
        }


@dataclass
class TranslationPlan:
    """What :meth:`runtime.engine.TranslationEngine.translate` is about to do (``on_plan``): the segments, the
    separator after each one's translation, and how many run side by side."""

    segments: list[Segment]
    separators: list[str]
    parallel: int
