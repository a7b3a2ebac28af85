"""Classifier failures. Each message says what is wrong and where, so it alone is enough to fix the input."""

from __future__ import annotations


class TrainingDataError(ValueError):
    """Training examples (or the file holding them) cannot be used.

    ``param`` locates the fault the way the API reports it: ``"examples"``, ``"examples[3].text"``,
    ``"labels"``, ``"path"``, or a place in the file such as ``"line 4"`` or ``"intents.sql[2]"``.
    """

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r})"


class ArtifactError(Exception):
    """A saved classifier folder is refused: unsafe, incomplete, tampered with or inconsistent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArtifactFormatError(ArtifactError):
    """A classifier folder written in another format version: sound, but not readable by this code."""
