"""Per-model settings dialog: threads, context size, GPU layers, parallel segments (stored per model in
QSettings), and the app-wide switches: weight repacking and source text in logs."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QWidget

from runtime.llamacpp import repack_disabled_by_env
from runtime.machine import default_threads
from runtime.options import LoadOptions
from runtime.side_by_side import AUTO_PARALLEL


class ModelSettingsDialog(QDialog):
    def __init__(self, model_name: str, options: LoadOptions, log_source_text: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(self.tr("Model settings"))
        form = QFormLayout(self)
        form.addRow(QLabel(model_name, self))
        self.threads = QSpinBox(self)
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText(self.tr("automatic (%1)").replace("%1", str(default_threads())))
        self.threads.setValue(options.n_threads or 0)
        self.ctx = QSpinBox(self)
        self.ctx.setRange(256, 131072)
        self.ctx.setSingleStep(512)
        self.ctx.setValue(options.n_ctx)
        self.gpu = QSpinBox(self)
        self.gpu.setRange(0, 999)
        self.gpu.setValue(options.n_gpu_layers)
        # Segments of a document decoded side by side in one llama.cpp context (faster documents).
        self.parallel = QSpinBox(self)
        self.parallel.setRange(0, 64)
        self.parallel.setSpecialValueText(self.tr("automatic (up to %1)").replace("%1", str(AUTO_PARALLEL)))
        self.parallel.setValue(options.parallel)
        self.parallel.setToolTip(self.tr("Sentences translated at the same time; 1 = one after another"))
        self.repack = QCheckBox(self.tr("Weight repacking (faster; turn off if llama.cpp crashes on this CPU)"), self)
        self._repack_saved = options.repack  # kept as it was when the env var greys the box out
        self.repack.setChecked(options.repack)
        if repack_disabled_by_env():
            self.repack.setChecked(False)
            self.repack.setEnabled(False)
            self.repack.setToolTip(self.tr("Turned off by the environment variable TSX_NO_REPACK"))
        self.log_text = QCheckBox(self.tr("Allow source text in debug logs (off keeps patient text out of logs)"), self)
        self.log_text.setChecked(log_source_text)
        form.addRow(self.tr("CPU threads"), self.threads)
        form.addRow(self.tr("Context size (tokens)"), self.ctx)
        form.addRow(self.tr("GPU layers"), self.gpu)
        form.addRow(self.tr("Parallel segments"), self.parallel)
        form.addRow(self.repack)
        form.addRow(self.log_text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def options(self) -> LoadOptions:
        return LoadOptions(n_ctx=self.ctx.value(), n_threads=self.threads.value() or None, n_gpu_layers=self.gpu.value(),
                           parallel=self.parallel.value(),
                           repack=self._repack_saved if repack_disabled_by_env() else self.repack.isChecked())
