"""The model the window translates with: choosing, loading, the base-only switch, the term block.

:class:`ModelController` fills the model list, checks a chosen file's header at once (a clear
message, no wait), loads it on the engine thread and shows it in the status bar; it switches a tuned
model's adapters off and on ("Base model only", no reload) and owns the per-model settings dialog.
It also decides whether the glossary's terms go into the prompt (the contract's term block): the
action is on for models trained with the block only, as the engine's "auto" mode does.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QProgressBar

from desktop.model_dialog import ModelSettingsDialog
from desktop.settings import AppSettings
from desktop.window_part import WindowPart
from desktop.worker import EngineController
from medcore.models import ModelError
from medcore.prompt import split_direction
from medcore.term_block import block_terms, reads_term_block
from medcore.terms import Glossary
from medcore.textnorm import normalize
from runtime.gguf_header import read_gguf_info
from runtime.options import ModelInfo


class ModelController(WindowPart):
    """``path``: the chosen model (a GGUF or a tuned-model spec); ``info``: the loaded one (None until loaded)."""

    def __init__(self, engine: EngineController, settings: AppSettings, combo: QComboBox, label: QLabel,
                 progress: QProgressBar, act_base_only: QAction, act_term_block: QAction, parent=None):
        super().__init__(parent)
        self.engine, self.settings = engine, settings
        self.combo, self.label, self.progress = combo, label, progress
        self.act_base_only, self.act_term_block = act_base_only, act_term_block
        self.path: str | None = None
        self.info: ModelInfo | None = None
        self._glossary: Glossary | None = None
        act_base_only.setEnabled(False)
        act_term_block.setChecked(settings.term_block())
        self.update_term_block_action()
        worker = engine.worker
        worker.loadProgress.connect(self._on_load_progress)
        worker.loaded.connect(self._on_loaded)
        worker.loadFailed.connect(self._on_load_failed)
        worker.adaptersChanged.connect(self._on_adapters_changed)
        engine.hashed.connect(self._on_hashed)
        combo.activated.connect(self._on_combo)
        act_base_only.toggled.connect(self.set_base_only)
        act_term_block.toggled.connect(self.set_term_block)

    # ------------------------------------------------------------------ choosing and loading
    def select_in_combo(self, path: str) -> None:
        """List the known models (and ``path`` if it is none of them) with ``path`` selected."""
        self.combo.blockSignals(True)
        self.combo.clear()
        entries = self.settings.known_models()
        if path and str(Path(path).expanduser().resolve()) not in [p for _, p in entries]:
            entries.append((Path(path).name, str(Path(path).expanduser().resolve())))
        for label, p in entries:
            self.combo.addItem(label, p)
        idx = self.combo.findData(str(Path(path).expanduser().resolve())) if path else -1
        if idx >= 0:
            self.combo.setCurrentIndex(idx)
        self.combo.blockSignals(False)

    def load(self, path: str) -> None:
        """Check the file's header here (instant, clear message), then load on the worker thread."""
        from medcore.modelspec import resolve

        self.info = None
        self.changed.emit()
        try:  # a GGUF, a bundled model name, or a tuned-model spec (its base GGUF is checked here)
            resolved = resolve(os.path.expanduser(str(path)))
            gguf = read_gguf_info(resolved.base)
        except ModelError as exc:
            self.error.emit(self.tr("Cannot use this model: %1").replace("%1", str(exc)))
            self.label.setText(self.tr("No model"))
            return
        self.errorCleared.emit()
        self.path = str(resolved.source.resolve())
        self.label.setText(self.tr("Loading %1…").replace("%1", resolved.spec.name if resolved.spec else gguf.name))
        self.progress.setRange(0, 100)
        self.engine.load(self.path, self.settings.load_options(self.path))

    @Slot(int, str)
    def _on_load_progress(self, percent: int, stage: str) -> None:
        self.progress.setValue(percent)
        self.progress.setFormat(f"{stage} %p%")

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        source = info.source or info.path
        if self.path != str(source):
            return  # a newer load replaced this one
        self.info = info
        self.settings.set_current_model(source)
        self.select_in_combo(str(source))
        self.act_base_only.blockSignals(True)
        self.act_base_only.setChecked(False)  # a freshly loaded tuned model translates with its adapters
        self.act_base_only.blockSignals(False)
        self.act_base_only.setEnabled(bool(info.adapters))
        self._show_label()
        self.progress.setFormat("%p%")
        self.message.emit(self.tr("Model loaded in %1 s").replace("%1", f"{info.load_seconds:.1f}"), 5000)
        self.changed.emit()

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.info = None
        self.label.setText(self.tr("No model"))
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.error.emit(self.tr("Cannot use this model: %1").replace("%1", message))
        self.changed.emit()

    def _show_label(self) -> None:
        info = self.info
        if info is None:
            return
        name = info.spec or info.name
        if info.adapters and not info.adapters_active:
            name = self.tr("%1 (base model only)").replace("%1", name)
        self.label.setText(f"{name} · ctx {info.n_ctx}")
        tip = [str(info.source or info.path)]
        if info.adapters:
            tip.append(f"base {info.path}")
            tip += [f"adapter {a['file']} (stage {a['stage']}) sha256 {a['sha256'][:16]}" for a in info.adapters]
        self.label.setToolTip("\n".join(tip))

    @Slot(str, str)
    def _on_hashed(self, path: str, digest: str) -> None:
        if self.info is not None and str(self.info.path) == path:
            self.label.setToolTip(f"{self.label.toolTip()}\nsha256 {digest}")

    def _on_combo(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path and path != self.path:
            self.load(path)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent(), self.tr("Choose a GGUF model"), "",
                                              self.tr("GGUF models (*.gguf);;All files (*)"))
        if path:
            self.load(path)

    def edit_settings(self) -> None:
        """The per-model settings dialog; accepted, the model reloads with them."""
        if not self.path:
            return
        dialog = ModelSettingsDialog(Path(self.path).name, self.settings.load_options(self.path),
                                     self.settings.log_source_text(), self.dialog_parent())
        if dialog.exec():
            self.settings.set_load_options(self.path, dialog.options())
            self.settings.set_log_source_text(dialog.log_text.isChecked())
            self.engine.set_log_source_text(dialog.log_text.isChecked())
            self.load(self.path)

    # ------------------------------------------------------------------ base model only
    @Slot(bool)
    def set_base_only(self, enabled: bool) -> None:
        """Translate with the base model alone (True) or with the tuned model's adapters (False)."""
        if self.info is None or not self.info.adapters:
            return
        if self.act_base_only.isChecked() != enabled:
            self.act_base_only.setChecked(enabled)  # re-enters through toggled
            return
        self.engine.set_adapters_active(not enabled)

    @Slot(bool)
    def _on_adapters_changed(self, active: bool) -> None:
        if self.info is not None:
            self.info.adapters_active = active
            self._show_label()
            self.changed.emit()
            self.message.emit(self.tr("Translating with the tuned model") if active
                              else self.tr("Translating with the base model only"), 5000)

    # ------------------------------------------------------------------ the term block
    def reads_term_block(self) -> bool:
        """Whether the translating model was trained with the term block (a tuned model's active adapters)."""
        info = self.info
        return info is not None and info.adapters_active and reads_term_block(info.adapters)

    def term_block_in_use(self) -> bool:
        """What the engine does in its "auto" mode: the term block only for a model trained with it."""
        return self.act_term_block.isChecked() and self.reads_term_block()

    def prompt_terms(self, source: str, direction: str) -> list[tuple[str, str]]:
        """The term block the prompt of ``source`` carries (empty when the block is not in use)."""
        glossary = self._glossary if self.term_block_in_use() else None
        return block_terms(glossary, normalize(source, split_direction(direction)[0]), direction)

    def update_term_block_action(self) -> None:
        """"Require glossary terms" is off limits for a model not trained with the block."""
        readable = self.reads_term_block()
        self.act_term_block.setEnabled(readable)
        self.act_term_block.setToolTip(self._term_block_tip(readable))

    def _term_block_tip(self, readable: bool) -> str:
        if readable or self.info is None:
            return self.tr("Give the model the loaded glossary's translations of the terms in each sentence as "
                           "required translations (models trained with them only)")
        return self.tr("This model was not trained with required glossary terms in its prompt: base models "
                       "copy the list instead of translating, so the terms are only checked")

    @Slot(object)
    def set_term_glossary(self, glossary: Glossary | None) -> None:
        """The loaded glossary, whose terms the prompts require while the action is checked."""
        self._glossary = glossary
        self._send_term_glossary()

    @Slot(bool)
    def set_term_block(self, enabled: bool) -> None:
        """Glossary terms in the prompt on or off; applies from the next translation."""
        self.settings.set_term_block(enabled)
        self._send_term_glossary()

    def _send_term_glossary(self) -> None:
        self.engine.set_term_glossary(self._glossary if self.act_term_block.isChecked() else None)
