"""One small exception tree for input we cannot use.

A mismatch between the environment and the lock is never an exception: it is a
finding. Exceptions are for input that cannot be read at all (a malformed
lockfile, a bad option value), and every message says where the problem is.
"""

from __future__ import annotations

from collections.abc import Sequence


class MlsupplyError(Exception):
    """Input that pytest-mlsupply cannot use; the message locates the problem."""


class SettingsError(MlsupplyError):
    """An option or ini value is invalid; the message names where it came from."""


class FileProblemsError(MlsupplyError):
    """Every problem found in one input file, reported together.

    A user fixes a hand-edited file in one pass instead of one error per run.
    """

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"{path}: {self.problems[0]}"
        else:
            listed = "\n".join(f"  {problem}" for problem in self.problems)
            text = f"{path}: {len(self.problems)} problems:\n{listed}"
        super().__init__(text)


class LockfileError(FileProblemsError):
    """A lockfile is missing, malformed, or from a newer version of the format."""


class LockfileNotFoundError(LockfileError):
    """The lockfile does not exist; the message says how to create one."""


class RecordError(MlsupplyError):
    """A RECORD file cannot be parsed as CSV rows of (path, hash, size)."""
