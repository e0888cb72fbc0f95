"""The term panel: every glossary term found in the source, its expected translation, its status;
the per-term review buttons; and the clinical red flags of the translation, sentence by sentence."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop import highlight
from medcore.redflags import RedFlag
from medcore.terms import Inconsistency, TermCheck

# The panes' highlight colours (desktop/highlight.py), so a status reads the same in both.
OK_COLOR = QColor(highlight.OK)
MISSING_COLOR = QColor(highlight.MISSING)
PENDING_COLOR = QColor(highlight.PENDING)
ADVISORY_COLOR = QColor(highlight.ADVISORY)
ACCEPTED_COLOR = QColor(highlight.ACCEPTED)
FLAG_COLOR = QColor(highlight.FLAG)


class GlossaryPanel(QWidget):
    """Lists term checks; selecting a row emits ``termActivated(row)``."""

    termActivated = Signal(int)
    acceptRequested = Signal(int)      # accept the model's wording for term ``row``
    addRequested = Signal(int)         # add the model's wording of term ``row`` to the user's glossary
    flagActivated = Signal(int)        # row of the red-flag table

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
        self.accept_button = QPushButton(self.tr("Accept the model's wording"), self)
        self.accept_button.setToolTip(self.tr("Mark the selected term as reviewed for this translation"))
        self.add_button = QPushButton(self.tr("Add to my glossary…"), self)
        self.add_button.setToolTip(self.tr("Save the wording selected in the translation (or typed) as this "
                                           "term's translation in your own glossary file"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.add_button)
        self.flags_label = QLabel(self)
        self.flags_label.setWordWrap(True)
        self.flags_table = QTableWidget(0, 3, self)
        self.flags_table.setHorizontalHeaderLabels([self.tr("Sentence"), self.tr("Check"), self.tr("Finding")])
        self.flags_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.flags_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.flags_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.flags_table.verticalHeader().setVisible(False)
        self.flags_table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 3)
        layout.addLayout(buttons)
        layout.addWidget(self.flags_label)
        layout.addWidget(self.flags_table, 2)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.flags_table.itemSelectionChanged.connect(self._on_flag_selection)
        self.accept_button.clicked.connect(lambda: self._request(self.acceptRequested))
        self.add_button.clicked.connect(lambda: self._request(self.addRequested))
        self._glossary_files: list[str] = []
        self.checks: list[TermCheck] = []
        self.flags: list[RedFlag] = []
        self.inconsistencies: list[Inconsistency] = []
        self.translated = False
        self._refresh_summary()
        self.set_flags([], [], translated=False)

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
                flagged = sum(1 for c in self.checks if c.flagged)
                text += "\n" + self.tr("%1 of %2 terms as expected, %3 to review").replace("%1", str(ok)).replace(
                    "%2", str(len(self.checks))).replace("%3", str(flagged))
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
            elif check.accepted:
                status, color, found = self.tr("accepted"), ACCEPTED_COLOR, ""
            elif not check.flagged:  # advisory (an advisory term left untranslated is flagged)
                status, color, found = self.tr("advisory (not required)"), ADVISORY_COLOR, ""
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
        """'pending', 'ok', 'missing', 'accepted' or 'advisory' (what the colours show), for tests and exports."""
        return "pending" if not self.translated else self.checks[row].status

    def set_flags(self, flags: list[RedFlag], inconsistencies: list[Inconsistency], translated: bool) -> None:
        """Show the clinical red flags (with their sentence number) and the inconsistent terms."""
        self.flags, self.inconsistencies = list(flags), list(inconsistencies)
        rows = [(str(f.segment + 1) if f.segment is not None else "", f.kind, f.message) for f in flags]
        rows += [("", "consistency", self.tr("%1 translated in different ways: %2").replace("%1", c.term).replace(
            "%2", " / ".join(dict.fromkeys(v.text for v in c.variants)))) for c in inconsistencies]
        self.flags_table.blockSignals(True)
        self.flags_table.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)  # plain text: no markup is interpreted
                item.setBackground(QBrush(FLAG_COLOR))
                item.setToolTip(value)
                self.flags_table.setItem(row, col, item)
        self.flags_table.blockSignals(False)
        self.flags_table.resizeColumnToContents(0)
        self.flags_table.resizeColumnToContents(1)
        if not translated:
            self.flags_label.setText(self.tr("Clinical checks: after the translation"))
        elif rows:
            self.flags_label.setText(self.tr("Clinical checks: %1 finding(s) to review").replace("%1", str(len(rows))))
        else:
            self.flags_label.setText(self.tr("Clinical checks: numbers, negations, sides and completeness carried over"))

    def selected_row(self) -> int:
        rows = {i.row() for i in self.table.selectedItems()}
        return rows.pop() if len(rows) == 1 else -1

    def _request(self, signal) -> None:
        row = self.selected_row()
        if row >= 0:
            signal.emit(row)

    def _on_flag_selection(self) -> None:
        rows = {i.row() for i in self.flags_table.selectedItems()}
        if len(rows) == 1:
            self.flagActivated.emit(rows.pop())

    def select_row(self, row: int) -> None:
        self.table.blockSignals(True)
        self.table.selectRow(row)
        self.table.blockSignals(False)

    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) == 1:
            self.termActivated.emit(rows.pop())
