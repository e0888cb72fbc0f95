"""The term panel: every glossary term found in the source, its expected translation, its status."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medcore.terms import TermCheck

OK_COLOR = QColor("#c8f0c8")
MISSING_COLOR = QColor("#ffc9c0")
PENDING_COLOR = QColor("#fff3b0")


class GlossaryPanel(QWidget):
    """Lists term checks; selecting a row emits ``termActivated(row)``."""

    termActivated = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels([self.tr("Term"), self.tr("Expected"), self.tr("Found"), self.tr("Status")])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self._glossary_files: list[str] = []
        self.checks: list[TermCheck] = []
        self.translated = False
        self._refresh_summary()

    def set_glossary_files(self, names: list[str], n_terms: int) -> None:
        self._glossary_files = list(names)
        self._n_terms = n_terms
        self._refresh_summary()

    def _refresh_summary(self) -> None:
        if not self._glossary_files:
            text = self.tr("No glossary loaded.")
        else:
            text = self.tr("Glossary: %1 (%2 terms)").replace("%1", ", ".join(self._glossary_files)).replace(
                "%2", str(getattr(self, "_n_terms", 0)))
        if self.checks:
            ok = sum(1 for c in self.checks if c.ok)
            if self.translated:
                text += "\n" + self.tr("%1 of %2 terms as expected, %3 to review").replace("%1", str(ok)).replace(
                    "%2", str(len(self.checks))).replace("%3", str(len(self.checks) - ok))
            else:
                text += "\n" + self.tr("%1 terms found in the source").replace("%1", str(len(self.checks)))
        self.summary.setText(text)

    def set_checks(self, checks: list[TermCheck], translated: bool) -> None:
        """Show ``checks``; before a translation exists every status is 'pending'."""
        self.checks, self.translated = list(checks), translated
        self.table.blockSignals(True)
        self.table.setRowCount(len(checks))
        for row, check in enumerate(checks):
            if not translated:
                status, color, found = self.tr("pending"), PENDING_COLOR, ""
            elif check.ok:
                status, color, found = self.tr("OK"), OK_COLOR, check.found.text
            else:
                status, color, found = self.tr("review: missing"), MISSING_COLOR, ""
            values = [check.hit.span.text, " | ".join(check.expected), found, status]
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setBackground(QBrush(color))
                item.setData(Qt.ItemDataRole.UserRole, row)
                item.setToolTip(value)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        # Long expected lists ("myocardial infarction | Myocardial infarction") must not push the
        # status column out of sight: cap the text columns, the full text is in the tooltip.
        for col in (1, 2):
            if self.table.columnWidth(col) > 170:
                self.table.setColumnWidth(col, 170)
        self._refresh_summary()

    def status_of(self, row: int) -> str:
        """'pending', 'ok' or 'missing' (what the colours show), for tests and exports."""
        check = self.checks[row]
        return "pending" if not self.translated else "ok" if check.ok else "missing"

    def select_row(self, row: int) -> None:
        self.table.blockSignals(True)
        self.table.selectRow(row)
        self.table.blockSignals(False)

    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) == 1:
            self.termActivated.emit(rows.pop())
