"""Lockfile formats: each module reads (and, for our own format, writes) one of them.

The format names and the detection by file name live here, in a module that
imports nothing beyond the standard library: every gated run asks which
format its lock is, and only a foreign lock needs the readers (and packaging).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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


#: ``--mlsupply-lock-extras all`` / ``--mlsupply-lock-groups all``: every one the lock names.
CHOICE_ALL = "all"
#: ``--mlsupply-lock-groups none``: the main dependencies only (uv's ``--no-default-groups``).
CHOICE_NONE = "none"
_CHOICE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)


@dataclass(frozen=True)
class Choice:
    """Extras or dependency groups asked for, and where the choice was made (for the note).

    The names replace the installer's default (``--mlsupply-lock-groups docs`` takes
    ``docs`` and not ``dev``), as ``uv sync --only-group`` and ``poetry install --only``
    do; ``none`` takes no group, ``all`` every one the lock names.
    """

    names: tuple[str, ...] = ()
    #: Every extra (group) the lock names.
    every: bool = False
    #: ``--mlsupply-lock-groups``, ``ini option 'mlsupply_lock_groups'``, ...
    origin: str = ""


def parse_choice(value: str, where: str) -> Choice:
    """``NAME[,NAME]``, ``all`` or ``none`` as a Choice; SettingsError names *where*."""
    items = [item.strip() for item in value.split(",")]
    if items == [""]:
        raise SettingsError(f"{where}: expected NAME[,NAME], {CHOICE_ALL} or {CHOICE_NONE}")
    if CHOICE_ALL in items or CHOICE_NONE in items:
        if len(items) > 1:
            raise SettingsError(
                f"{where}: {CHOICE_ALL!r} and {CHOICE_NONE!r} stand alone, got {value!r}"
            )
        return Choice((), every=items[0] == CHOICE_ALL, origin=where)
    bad = [item for item in items if not _CHOICE_NAME.fullmatch(item)]
    if bad:
        raise SettingsError(
            f"{where}: not a valid extra or group name: {', '.join(repr(b) for b in bad)}"
        )
    # Extras and group names compare normalised (PEP 685, PEP 735).
    names = sorted({re.sub(r"[-_.]+", "-", item).lower() for item in items})
    return Choice(tuple(names), origin=where)
