"""The window's QUndoStack over the model's commands (``hand_studio.model.commands``).

Model commands validate when they are made, so a refused edit raises before anything is pushed;
``QtUndoStack.push_command`` is the one call widgets use.
"""
from __future__ import annotations

from PySide6.QtGui import QUndoCommand, QUndoStack

from hand_studio.model.commands import Command


class QtUndoCommand(QUndoCommand):
    """A QUndoCommand that runs one model command; merges follow the model's ``merge_with``."""

    def __init__(self, command: Command):
        super().__init__(command.text)
        self.command = command

    def redo(self) -> None:
        self.command.do()

    def undo(self) -> None:
        self.command.undo()

    def id(self) -> int:
        return self.command.merge_id

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, QtUndoCommand) or type(other.command) is not type(self.command):
            return False
        if self.command.merge_with(other.command):
            self.setText(self.command.text)
            return True
        return False


class QtUndoStack(QUndoStack):
    """QUndoStack with ``push_command(model_command)``."""

    def push_command(self, command: Command) -> None:
        self.push(QtUndoCommand(command))
