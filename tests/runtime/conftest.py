"""Fixtures for the runtime: engines on the tiny GGUF (tests/conftest.py) and on the bundled 0.5B."""

from __future__ import annotations

import pytest


def _loaded(path):
    """An engine with ``path`` loaded (context 1024) until the session ends."""
    from runtime.engine import TranslationEngine
    from runtime.options import LoadOptions

    engine = TranslationEngine()
    engine.load(path, LoadOptions(n_ctx=1024))
    yield engine
    engine.unload()


@pytest.fixture(scope="session")
def tiny_engine(tiny_gguf):
    yield from _loaded(tiny_gguf)


@pytest.fixture(scope="session")
def small_engine(small_gguf):
    """The bundled 0.5B, loaded once for the session (~1 s)."""
    yield from _loaded(small_gguf)


@pytest.fixture(autouse=True)
def _isolated_hash_cache(tmp_path, monkeypatch):
    """The model-hash cache (runtime.model_hash) goes to the test's tmp dir, not the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
