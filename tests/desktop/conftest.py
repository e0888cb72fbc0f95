"""Fixtures for the desktop app: isolated caches and settings, glossary files (the tiny GGUF: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Model-hash cache and any XDG writes go to the test's tmp dir, not the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # The user's own glossary ("Add to my glossary") goes to the test's tmp dir as well.
    monkeypatch.setenv("TSX_USER_GLOSSARY", str(tmp_path / "my_glossary.tsv"))


@pytest.fixture
def app_settings(tmp_path):
    from PySide6.QtCore import QSettings

    from desktop.settings import AppSettings

    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture(scope="session")
def term_files(tmp_path_factory, shared_data) -> list[Path]:
    """Two term lists loaded together: a real one (CC-CEDICT medical) and a small clinic list."""
    clinic = tmp_path_factory.mktemp("glossary") / "clinic_terms.csv"
    # CSV with a header, as the trainer reads it; "患者 -> subject" is a house style the base model
    # does not follow (it writes "patient"), so that term must be flagged for review.
    clinic.write_text("zh,en\n急性心肌梗死,acute myocardial infarction\n患者,subject\n", encoding="utf-8")
    return [shared_data / "terms" / "cedict_medical.tsv", clinic]
