"""The model controller without a window: loading (a bad file, a real tiny GGUF) and the term block action,
which is on for models trained with the block only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QAction  # noqa: E402
from PySide6.QtWidgets import QComboBox, QLabel, QProgressBar  # noqa: E402

from desktop.model_controller import ModelController  # noqa: E402
from desktop.worker import EngineController  # noqa: E402
from medcore.terms import Glossary, Term  # noqa: E402


@pytest.fixture
def models(qtbot, app_settings):
    engine = EngineController()
    combo, label, progress = QComboBox(), QLabel(), QProgressBar()
    for widget in (combo, label, progress):
        qtbot.addWidget(widget)
    base_only, term_block = QAction("Base model only", checkable=True), QAction("Require", checkable=True)
    controller = ModelController(engine, app_settings, combo, label, progress, base_only, term_block)
    controller._actions = (base_only, term_block)  # keep them alive with the controller
    yield controller
    engine.shutdown()


def test_a_file_that_is_not_a_model_is_refused_at_once(models, tmp_path):
    errors, changes = [], []
    models.error.connect(errors.append)
    models.changed.connect(lambda: changes.append(1))
    bad = tmp_path / "report.gguf"
    bad.write_text("%PDF-1.4 not a model")
    models.load(str(bad))
    assert models.info is None and changes and models.label.text() == "No model"
    assert errors and errors[0].startswith("Cannot use this model: ") and "is not a GGUF file" in errors[0]


def test_a_tiny_model_loads_on_the_engine_thread(qtbot, models, tiny_gguf):
    models.load(str(tiny_gguf))
    # The worker's `loaded` reaches the controller's slot through the event loop: wait for the slot's work.
    qtbot.waitUntil(lambda: models.info is not None, timeout=60000)
    assert models.path == str(tiny_gguf.resolve())
    assert models.label.text().startswith("tiny-qwen2-test") and models.combo.currentData() == str(tiny_gguf.resolve())
    assert not models.act_base_only.isEnabled()  # no adapters: nothing to switch off
    assert models.settings.current_model() == str(tiny_gguf.resolve())


def test_the_term_block_only_for_a_model_trained_with_it(models, app_settings):
    glossary = Glossary([Term("高血压", "hypertension")])
    models.set_term_glossary(glossary)
    action = models.act_term_block
    assert action.isChecked() and not action.isEnabled()  # no model yet
    assert "trained with them only" in action.toolTip()
    models.info = SimpleNamespace(adapters=[], adapters_active=False)  # a base model
    models.update_term_block_action()
    assert not action.isEnabled() and "copy the list" in action.toolTip()
    assert not models.term_block_in_use() and models.prompt_terms("既往有高血压病史。", "zh-en") == []
    models.info = SimpleNamespace(adapters=[{"stage": 2, "term_block_share": 0.5}], adapters_active=True)
    models.update_term_block_action()
    assert action.isEnabled() and models.term_block_in_use()
    assert models.prompt_terms("既往有高血压病史。", "zh-en") == [("高血压", "hypertension")]
    models.info.adapters_active = False  # "Base model only": the base reads no block
    assert not models.reads_term_block()
    models.info.adapters_active = True
    action.setChecked(False)  # the user turns it off: saved, no block
    assert not app_settings.term_block() and not models.term_block_in_use()
