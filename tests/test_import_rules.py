"""Which package may import which: the layers stay layers.

medcore (contracts, no torch) <- runtime (llama.cpp, no Qt, no torch) <- desktop, evaluation, converter;
medcore <- hfmodel (the torch model layer) <- trainer, evaluation, converter, and the reference
attention engine in desktop. Only the trainer imports the trainer; no package imports desktop.
Checked on the source (every import statement, lazy ones inside functions included), so
nothing needs importing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"medcore", "runtime", "hfmodel", "trainer", "evaluation", "converter", "desktop"}
# package -> the first-party packages it may import (itself included)
ALLOWED = {
    "medcore": {"medcore"},
    # the one runtime of the app, `tsx-medtrans translate`, tsx-eval's llama.cpp backend and the self-test
    "runtime": {"runtime", "medcore"},
    "hfmodel": {"hfmodel", "medcore"},
    "trainer": {"trainer", "hfmodel", "medcore"},
    # runtime: the llama.cpp backend scores what users get, through the app's own engine
    "evaluation": {"evaluation", "runtime", "hfmodel", "medcore"},
    # runtime: the GGUF header reader, and verify runs the runtime LoRA stack in llama.cpp
    "converter": {"converter", "runtime", "hfmodel", "medcore"},
    "desktop": FIRST_PARTY - {"trainer", "evaluation", "converter"},
}
# Third-party packages the layers below the app never import (not even lazily).
HEAVY = {"torch", "transformers", "peft", "accelerate", "PySide6", "gguf"}


def imported_names(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported_packages(path: Path) -> set[str]:
    return imported_names(path) & FIRST_PARTY


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = imported_packages(path) - ALLOWED[package]
        if extra:
            offenders[str(path.relative_to(ROOT))] = sorted(extra)
    assert not offenders, f"{package} may import only {sorted(ALLOWED[package])}: {offenders}"


def test_only_the_trainer_imports_the_trainer():
    folders = [ROOT / name for name in FIRST_PARTY - {"trainer"}] + [ROOT / "benchmarks", ROOT / "packaging"]
    users = [str(p.relative_to(ROOT)) for folder in folders for p in sorted(folder.rglob("*.py"))
             if "trainer" in imported_packages(p)]
    # The CPU training benchmark times the trainer's own loop.
    assert users == ["benchmarks/bench_train_cpu.py"]


@pytest.mark.parametrize("package", ["medcore", "runtime"])
def test_contracts_and_runtime_need_no_qt_and_no_torch(package):
    offenders = {str(p.relative_to(ROOT)): sorted(imported_names(p) & HEAVY)
                 for p in sorted((ROOT / package).rglob("*.py")) if imported_names(p) & HEAVY}
    assert not offenders, f"{package} may not import {sorted(HEAVY)}: {offenders}"
