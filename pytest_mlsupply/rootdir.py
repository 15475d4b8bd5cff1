"""Option values that pytest took for test paths when it chose the rootdir.

pytest picks the rootdir and the ini file from the command line before any
plugin has added its options. ``--mlsupply-known-bad /elsewhere/feed`` (a space,
not ``=``) therefore makes ``/elsewhere/feed`` a test path for that first look:
the rootdir moves to a common ancestor, and the ini file (``mlsupply = true``)
and the default lock beside it are looked for in the wrong place. The check
redoes pytest's choice with the options understood and, when the answers
differ, names the option and the ``=`` form that avoids it.

This module is pytest-facing: it calls pytest's own rootdir logic, imported
lazily, so the answer is pytest's, not an approximation of it.
"""

from __future__ import annotations

import inspect
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

OPTION_GROUP = "mlsupply"

ROOTDIR_MISREAD = (
    "{option} {value} was given with a space, so pytest read {value} as a test path when it "
    "chose the rootdir (before the plugin's options are known): the rootdir became {actual} "
    "instead of {expected}, so the ini file and the default lock would be looked for in the "
    "wrong place; write {option}={value}"
)


def value_options(parser: pytest.Parser) -> frozenset[str]:
    """Long names of this plugin's options that take a value (all but the flags)."""
    group = parser.getgroup(OPTION_GROUP)
    names: set[str] = set()
    for option in group.options:
        if option.attrs().get("action") in ("store_true", "store_false", "count"):
            continue
        names.update(name for name in option.names() if name.startswith("--"))
    return frozenset(names)


def spaced_values(args: Sequence[str], names: frozenset[str]) -> list[tuple[str, str]]:
    """``(option, value)`` for each of *names* given as two words rather than ``option=value``."""
    found = []
    for index, word in enumerate(args[:-1]):
        if word == "--":
            break
        if word in names:
            found.append((word, args[index + 1]))
    return found


def _setup(parser: pytest.Parser, args: list[str], invocation_dir: Path) -> tuple[Path, Any]:
    """pytest's own (rootdir, inifile) for *args*, read with every option known."""
    from _pytest.config.findpaths import determine_setup

    ns = parser.parse_known_args(args)
    given: dict[str, Any] = {
        "inifile": ns.inifilename,
        "override_ini": ns.override_ini,
        "args": ns.file_or_dir,
        "rootdir_cmd_arg": ns.rootdir or None,
        "invocation_dir": invocation_dir,
    }
    accepted = inspect.signature(determine_setup).parameters
    result = determine_setup(**{k: v for k, v in given.items() if k in accepted})
    return result[0], result[1]


def _describe(root: Path, ini: Path | None) -> str:
    return f"{root} (ini file {ini})" if ini else f"{root} (no ini file)"


def check_rootdir(config: pytest.Config, parser: pytest.Parser) -> str | None:
    """The error to show when one of our option values moved the rootdir or ini file, else None.

    Only the words pytest read for its first look count: ``PYTEST_ADDOPTS`` and
    the command line (``addopts`` from the ini file is read after the choice).
    """
    words = [
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
        *(str(arg) for arg in config.invocation_params.args),
    ]
    spaced = spaced_values(words, value_options(parser))
    if not spaced:
        return None
    actual = (config.rootpath, config.inipath)
    try:
        expected = _setup(parser, words, config.invocation_params.dir)
    except Exception:  # pytest changed its internals: assume the worst, ask for '='
        expected = None
    if expected is not None and _same(expected, actual):
        return None
    # Blame a value naming an existing path first (pytest 9 only counts those;
    # pytest 8 lets even a missing path move the rootdir).
    spaced.sort(key=lambda pair: not _exists(config.invocation_params.dir / pair[1]))
    option, value = spaced[0]
    return ROOTDIR_MISREAD.format(
        option=option,
        value=value,
        actual=_describe(*actual),
        expected=_describe(*expected) if expected else "the one the other arguments give",
    )


def _same(expected: tuple[Path, Path | None], actual: tuple[Path, Path | None]) -> bool:
    root, ini = expected
    return Path(root) == Path(actual[0]) and (
        (ini is None and actual[1] is None)
        or (ini is not None and actual[1] is not None and Path(ini) == Path(actual[1]))
    )


def _exists(path: Path) -> bool:
    """As pytest's ``safe_exists``: a value too long or odd to be a path is no path."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
