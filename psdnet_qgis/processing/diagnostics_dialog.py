"""The "About / diagnostics" window: the diagnostics text and a Copy button (GUI only)."""

from __future__ import annotations

from qgis.PyQt.QtGui import QFontDatabase, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from .base import tr


class DiagnosticsDialog(QDialog):
    """Shows ``text`` read-only; "Copy to clipboard" puts all of it on the clipboard."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("psdnetDiagnosticsDialog")
        self.setWindowTitle(tr("PSDNet — About / diagnostics"))
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setPlainText(text)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton(tr("Copy to clipboard"), self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(820, 480)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())
