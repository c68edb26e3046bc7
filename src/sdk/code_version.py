"""The code version `evaluate()` records: the git commit of the caller's code, when it
lives in a git repository (`<commit>-dirty` when tracked files have uncommitted changes)."""

from __future__ import annotations

import inspect
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIT_TIMEOUT = 5.0  # seconds; a hung git must not hold up an evaluation


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def where_the_code_is(task: Callable[..., Any]) -> Path:
    """The directory of the file that defines `task` (else the working directory: a notebook)."""
    try:
        source = inspect.getsourcefile(inspect.unwrap(task))
    except TypeError:
        source = None
    if source and os.path.isfile(source):
        return Path(source).resolve().parent
    return Path.cwd()


def git_commit(directory: Path) -> str | None:
    """HEAD's commit of the repository `directory` is in, `-dirty` when tracked files have
    changes not committed; None outside a repository (or without git)."""
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    changes = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return commit + ("-dirty" if changes else "")
