"""Lockfile formats: each module reads (and, for our own format, writes) one of them.

The format names and the detection by file name live here, in a module that
imports nothing beyond the standard library: every gated run asks which
format its lock is, and only a foreign lock needs the readers (and packaging).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_mlsupply.errors import SettingsError

FORMAT_MLSUPPLY = "mlsupply"
FORMAT_PYLOCK = "pylock"
FORMAT_REQUIREMENTS = "requirements"
FORMAT_UV = "uv"
FORMAT_POETRY = "poetry"
FORMAT_PIPFILE = "pipfile"
FORMAT_AUTO = "auto"

#: Choices of ``--mlsupply-lock-format`` (``auto``: decide by the file name).
LOCK_FORMATS = (
    FORMAT_AUTO,
    FORMAT_MLSUPPLY,
    FORMAT_PYLOCK,
    FORMAT_REQUIREMENTS,
    FORMAT_UV,
    FORMAT_POETRY,
    FORMAT_PIPFILE,
)

#: How each format is named in messages.
FORMAT_TITLES: Mapping[str, str] = {
    FORMAT_MLSUPPLY: "mlsupply.lock",
    FORMAT_PYLOCK: "pylock.toml (PEP 751)",
    FORMAT_REQUIREMENTS: "requirements file",
    FORMAT_UV: "uv.lock",
    FORMAT_POETRY: "poetry.lock",
    FORMAT_PIPFILE: "Pipfile.lock",
}


def detect_format(path: Path, requested: str | None = None) -> str:
    """The format of *path*: *requested* unless it is None or ``auto``, else by file name.

    ``pylock.toml``/``pylock.NAME.toml`` (PEP 751's names), ``uv.lock``,
    ``poetry.lock``, ``Pipfile.lock``, ``*.txt`` (pip-compile and
    ``uv pip compile`` output); anything else is read as ``mlsupply.lock``, so
    existing setups with a custom lock name keep working.
    """
    if requested and requested != FORMAT_AUTO:
        if requested not in LOCK_FORMATS:
            raise SettingsError(
                f"unknown lock format {requested!r}; choose one of {', '.join(LOCK_FORMATS)}"
            )
        return requested
    name = path.name
    lowered = name.lower()
    if name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml")):
        return FORMAT_PYLOCK
    if lowered == "uv.lock":
        return FORMAT_UV
    if lowered == "poetry.lock":
        return FORMAT_POETRY
    if lowered == "pipfile.lock":
        return FORMAT_PIPFILE
    if lowered.endswith(".txt"):
        return FORMAT_REQUIREMENTS
    return FORMAT_MLSUPPLY
