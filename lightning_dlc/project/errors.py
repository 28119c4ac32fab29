"""Errors for bad project files: each names the file and what was wrong with it."""
from __future__ import annotations

from pathlib import Path


class ProjectError(ValueError):
    """A project, label or dataset file cannot be used as it is.

    The message always starts with the offending path so a user can open it.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
