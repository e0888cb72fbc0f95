"""Fixtures for the packaging tests: the modules under packaging/ (not a Python package, because
a top-level ``packaging`` package would shadow the PyPI ``packaging`` library), loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def spec_common():
    return _load("spec_common")


@pytest.fixture(scope="session")
def firstrun():
    return _load("tsx_firstrun")


@pytest.fixture(scope="session")
def screenshot_installed():
    return _load("screenshot_installed")
