"""Stage configuration: the YAML files in resources/configs/ as typed dataclasses, plus overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medcore.resources import resource_path


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["gate_proj", "up_proj", "down_proj"])


@dataclass
class StageConfig:
    stage: int = 1
    base: str = "qwen2.5-coder-0.5b"
    data: str = "prepared"
    kind: str = "terms"
    out_dir: str = "runs/stage1"
    init_adapters: list[str] = field(default_factory=list)
    lora: LoraConfig = field(default_factory=LoraConfig)
    batch_size: int = 16
    micro_batch_size: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_schedule: str = "cosine"
    epochs: int = 5
    max_length: int = 1024
    max_steps: int | None = None
    train_limit: int | None = None
    val_limit: int | None = None
    eval_every: int = 200
    log_every: int = 10
    grad_clip: float = 1.0
    gradient_checkpointing: bool = False
    fast_loss: bool = True
    group_by_length: bool = True
    precision: str = "auto"
    device: str = "auto"
    seed: int = 42
    term_block_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        problems = []
        if self.kind not in ("terms", "sentences"):
            problems.append(f"kind must be 'terms' or 'sentences', not {self.kind!r}")
        if self.batch_size % self.micro_batch_size:
            problems.append(f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if self.lr_schedule not in ("cosine", "linear", "constant"):
            problems.append(f"lr_schedule must be cosine, linear or constant, not {self.lr_schedule!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if not 0 <= self.term_block_share <= 1:
            problems.append(f"term_block_share must be in [0, 1], not {self.term_block_share}")
        if self.term_block_share and self.kind != "sentences":
            problems.append("term_block_share applies to sentence stages only (kind: sentences)")
        if self.lora.r < 1 or not self.lora.target_modules:
            problems.append("lora.r must be >= 1 and lora.target_modules non-empty")
        if problems:
            raise ValueError("invalid stage config: " + "; ".join(problems))


def _build(cls, data: dict[str, Any], where: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {where}; known: {sorted(names)}")
    kwargs = dict(data)
    if cls is StageConfig and isinstance(kwargs.get("lora"), dict):
        kwargs["lora"] = _build(LoraConfig, kwargs["lora"], f"{where}.lora")
    return cls(**kwargs)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b=value`` to a nested dict; the value is parsed as YAML (``[q_proj, v_proj]``, ``1e-4``, ``null``)."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key=value (e.g. lora.r=8)")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if isinstance(value, str) and parts[-1] in ("learning_rate", "weight_decay", "warmup_ratio", "grad_clip"):
        value = float(value)  # YAML 1.1 reads "2e-4" as a string
    node[parts[-1]] = value


def load_stage_config(stage: str, path: str | Path | None = None, overrides: list[str] | None = None) -> StageConfig:
    """The resolved config: the shipped YAML for ``stage`` (or ``path``), then each override in order."""
    source = Path(path) if path else resource_path("configs", f"{stage}.yaml")
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    for item in overrides or []:
        apply_override(data, item)
    for key in ("learning_rate", "weight_decay", "warmup_ratio", "grad_clip"):
        if isinstance(data.get(key), str):
            data[key] = float(data[key])
    config = _build(StageConfig, data, str(source))
    config.validate()
    return config
