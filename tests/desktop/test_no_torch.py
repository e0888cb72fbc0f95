"""The app's path never imports torch: every module the bundle lists as the app's, and every module of
``runtime``, is imported in a fresh interpreter, and torch, transformers, IPython and the bertviz package
must not be among ``sys.modules``.

The bundle ships without them (packaging/spec_common.py excludes them); the app computes attention with
llama.cpp (``desktop.attention.llama_engine``). A module that started importing torch at import time would
crash the installed app, or, with torch installed, silently cost ~1 GB of RAM and seconds of start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "IPython", "bertviz", "peft", "trainer", "hfmodel", "evaluation")


def test_app_modules_import_without_torch():
    pytest_skip_if_no_qt()
    code = f"""
import importlib, json, sys
sys.path.insert(0, {str(ROOT / "packaging")!r})
import spec_common
mods = [m for m in spec_common.HIDDEN_IMPORTS if m.split(".")[0] in ("desktop", "runtime", "medcore", "tsx_firstrun")]
mods += ["desktop.app", "desktop.main_window", "desktop.attention.dock", "desktop.attention.page"]
mods += {sorted("runtime." + p.stem for p in (ROOT / "runtime").glob("*.py") if p.stem != "__init__")!r}
for m in mods:
    importlib.import_module(m)
print(json.dumps({{"imported": len(mods), "heavy": sorted(h for h in {HEAVY!r} if h in sys.modules)}}))
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["imported"] >= 20
    assert got["heavy"] == [], f"the app's modules imported {got['heavy']}"


def pytest_skip_if_no_qt() -> None:
    import importlib.util

    import pytest

    if importlib.util.find_spec("PySide6") is None:
        pytest.skip("PySide6 is not installed")
