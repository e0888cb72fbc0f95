"""Stage configs: the shipped YAML is the only source of defaults, every field documented there once."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest
import yaml

from trainer.config import LoraConfig, StageConfig, load_stage_config, shipped_config_path

STAGES = ("stage1", "stage2")
DOC = re.compile(r"^(?P<indent> *)# (?P<name>\w+) \((?P<type>[^)]+)\): \S")
VALUE = re.compile(r"^(?P<indent> *)(?P<name>\w+):")


def _field_types(cls, prefix: str = "") -> dict[str, str]:
    """Dotted field name -> its annotation as the YAML writes it (``int | null``, ``list[str]``)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if hints[f.name] is LoraConfig:
            out.update(_field_types(LoraConfig, f"{f.name}."))
        else:
            out[prefix + f.name] = str(f.type).replace("None", "null")
    return out


def _documented(text: str) -> dict[str, str]:
    """Dotted field name -> documented type, for each ``# name (type): ...`` comment directly (after its
    continuation lines) followed by that field's ``name:`` line at the same indentation."""
    lines = text.splitlines()
    out: dict[str, str] = {}
    section = ""
    for i, line in enumerate(lines):
        value = VALUE.match(line)
        if value and not value["indent"]:
            section = value["name"] + "." if line.rstrip().endswith(":") else ""
        doc = DOC.match(line)
        if not doc:
            continue
        j = i + 1
        while j < len(lines) and lines[j].startswith(doc["indent"] + "#   "):
            j += 1
        follows = VALUE.match(lines[j]) if j < len(lines) else None
        assert follows and follows["name"] == doc["name"] and follows["indent"] == doc["indent"], \
            f"the comment on line {i + 1} documents {doc['name']!r}, but line {j + 1} is {lines[j]!r}"
        name = (section if doc["indent"] else "") + doc["name"]
        assert name not in out, f"{name} is documented twice"
        out[name] = doc["type"]
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_every_field_is_documented_once_with_its_type(stage):
    documented = _documented(shipped_config_path(stage).read_text(encoding="utf-8"))
    assert documented == _field_types(StageConfig)


@pytest.mark.parametrize("stage", STAGES)
def test_the_loader_yields_exactly_the_yaml_values(stage):
    """Nothing but the YAML supplies a value: the resolved config is the file, key for key."""
    assert load_stage_config(stage).to_dict() == yaml.safe_load(shipped_config_path(stage).read_text(encoding="utf-8"))


def test_the_dataclasses_hold_no_defaults():
    for cls in (StageConfig, LoraConfig):
        with_default = [f.name for f in dataclasses.fields(cls)
                        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
        assert with_default == [], f"{cls.__name__} defaults {with_default}: defaults belong in the stage YAML"


def test_lora_settings_the_real_runs_used():
    """runs/stage1 (alpha 32) and the stage-2 runs (alpha 16) were trained with these; they must not move."""
    assert dataclasses.asdict(load_stage_config("stage1").lora) == {
        "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["gate_proj", "up_proj", "down_proj"]}
    assert dataclasses.asdict(load_stage_config("stage2").lora) == {
        "r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def test_a_config_file_changes_only_the_keys_it_names(tmp_path):
    custom = tmp_path / "mine.yaml"
    custom.write_text("lora:\n  r: 4\nepochs: 2\n", encoding="utf-8")
    config = load_stage_config("stage2", custom, ["learning_rate=3e-4"])
    shipped = load_stage_config("stage2")
    assert (config.lora.r, config.lora.alpha, config.epochs, config.learning_rate) == (4, 16, 2, 3e-4)
    assert config.kind == shipped.kind and config.init_adapters == shipped.init_adapters
    custom.write_text("lora:\n  rank: 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['rank'\] in .*mine\.yaml\.lora"):
        load_stage_config("stage2", custom)
