"""Stage configuration: the YAML files in resources/configs/ as typed dataclasses, plus overrides.

The shipped YAML of a stage (``resources/configs/stage1.yaml``, ``stage2.yaml``) is the only place its
defaults live: every field is there, documented with its type. The dataclasses below declare the
fields and their types, with no defaults of their own. A ``--config`` file is layered over the
shipped YAML of its stage, so it needs only the keys it changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medcore.resources import resource_path


@dataclass
class LoraConfig:
    r: int
    alpha: int
    dropout: float
    target_modules: list[str]


@dataclass
class StageConfig:
    stage: int
    base: str
    data: str
    kind: str
    out_dir: str
    init_adapters: list[str]
    lora: LoraConfig
    batch_size: int
    micro_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    lr_schedule: str
    epochs: int
    max_length: int
    max_steps: int | None
    train_limit: int | None
    val_limit: int | None
    eval_every: int
    log_every: int
    grad_clip: float
    gradient_checkpointing: bool
    fast_loss: bool
    group_by_length: bool
    precision: str
    device: str
    seed: int
    term_block_share: float

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
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"config key(s) {missing} missing in {where}; the shipped stage YAML sets every key")
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


def shipped_config_path(stage: str) -> Path:
    """The shipped YAML of ``stage`` (``stage1`` or ``stage2``): every field with its default."""
    return resource_path("configs", f"{stage}.yaml")


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, not {type(data).__name__}")
    return data


def _layer(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top``'s keys over ``base``'s, nested mappings (``lora``) key by key."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _layer(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_stage_config(stage: str, path: str | Path | None = None, overrides: list[str] | None = None) -> StageConfig:
    """The resolved config: the shipped YAML for ``stage``, ``path``'s keys over it, then each override in order."""
    shipped = shipped_config_path(stage)
    data = _read_yaml(shipped)
    source = shipped
    if path:
        source = Path(path)
        data = _layer(data, _read_yaml(source))
    for item in overrides or []:
        apply_override(data, item)
    for key in ("learning_rate", "weight_decay", "warmup_ratio", "grad_clip"):
        if isinstance(data.get(key), str):
            data[key] = float(data[key])
    config = _build(StageConfig, data, str(source))
    config.validate()
    return config
