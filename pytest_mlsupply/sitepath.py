"""An interpreter's import path as ``site`` would build it, computed without running any of it.

``site`` executes the ``import`` lines of ``.pth`` files and imports
``sitecustomize``/``usercustomize`` at every start; code in the checked
environment can therefore blind a check that lets ``site`` run. This module
redoes what ``site.main()`` does to ``sys.path`` (``Lib/site.py``: ``venv``,
``addusersitepackages``, ``addsitepackages``, ``addsitedir``, ``addpackage``)
as plain data: the path lines of ``.pth`` files are followed, the import lines
are not run.

Standard library only and self-contained on purpose: ``python -I -S`` runs
this file as a script on another interpreter (``--python``), where nothing
else of pytest-mlsupply is importable, and prints what it found as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import sysconfig
from typing import Any

#: Keys of the JSON document the script prints (and ``describe`` returns).
KEYS = ("path", "site_dirs", "implementation", "python_version", "platform", "markers")


def _venv() -> tuple[str, bool] | None:
    """The venv prefix and its ``include-system-site-packages``, as ``site.venv`` finds them.

    ``pyvenv.cfg`` beside the executable or one level up; the key defaults to true.
    """
    executable = sys.executable
    if sys.platform == "darwin" and "__PYVENV_LAUNCHER__" in os.environ:
        executable = os.environ["__PYVENV_LAUNCHER__"]
    exe_dir = os.path.dirname(os.path.abspath(executable))
    site_prefix = os.path.dirname(exe_dir)
    for folder in (exe_dir, site_prefix):
        conf = os.path.join(folder, "pyvenv.cfg")
        if not os.path.isfile(conf):
            continue
        system_site = "true"
        with open(conf, encoding="utf-8") as stream:
            for line in stream:
                key, sep, value = line.partition("=")
                if sep and key.strip().lower() == "include-system-site-packages":
                    system_site = value.strip().lower()
        return site_prefix, system_site == "true"
    return None


def _locale_encoding() -> str:
    """What ``encoding="locale"`` means to ``site``: ``locale.getencoding()`` from 3.11 on."""
    import locale

    getencoding = getattr(locale, "getencoding", None)
    return str(getencoding()) if getencoding else locale.getpreferredencoding(False)


def _universal_lines(text: str) -> list[str]:
    """Lines as iterating a text file gives them before 3.13 (``\n``, ``\r``, ``\r\n`` only)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _pth_readings(path: str) -> tuple[list[str], list[str]]:
    """The lines of a ``.pth`` file as this Python's ``site`` reads them, and other readings.

    3.13 decodes UTF-8 (a BOM stripped), else the locale encoding, and splits with
    ``str.splitlines``; older versions read in the locale encoding with universal
    newlines. ``-I`` ignores ``PYTHONUTF8``, so the locale may differ from a normal
    start: the other readings (UTF-8, Latin-1, both splittings) catch what that hides.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return [], []
    if sys.version_info >= (3, 13):
        try:
            first = data.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError:
            first = _decode(data, _locale_encoding()).splitlines()
    else:
        first = _universal_lines(_decode(data, _locale_encoding()))
    others: list[str] = []
    for text in (data.decode("utf-8-sig", "replace"), data.decode("latin-1")):
        others += text.splitlines() + _universal_lines(text)
    return first, others


def _hidden(path: str) -> bool:
    """The hidden-file flags 3.13's ``addpackage`` checks (macOS ``UF_HIDDEN``, Windows)."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    return bool(
        getattr(st, "st_flags", 0) & getattr(stat, "UF_HIDDEN", 0)
        or getattr(st, "st_file_attributes", 0) & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0)
    )


def _path_lines(site_dir: str, lines: list[str]) -> list[str]:
    """``site.addpackage`` without ``exec``: the existing directories its path lines name."""
    found: list[str] = []
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith(("import ", "import\t")):
            continue  # code, not a path: never run here
        entry = os.path.abspath(os.path.join(site_dir, line.rstrip()))
        if os.path.exists(entry):
            found.append(entry)
    return found


def _add_site_dir(site_dir: str, path: list[str], known: set[str], extra: list[str]) -> None:
    """``site.addsitedir`` without executing: the directory, then its ``.pth`` path lines.

    Directories only another reading of a ``.pth`` file names go to *extra*: the caller
    appends them after everything ``site`` adds, so they are read without hiding anything.
    """
    case = os.path.normcase(os.path.abspath(site_dir))
    if case not in known:
        path.append(site_dir)
        known.add(case)
    try:
        names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth"))
    except OSError:
        return
    for name in names:
        full = os.path.join(site_dir, name)
        first, others = _pth_readings(full)
        if sys.version_info >= (3, 13) and (name.startswith(".") or _hidden(full)):
            first, others = [], first + others  # 3.13's site skips hidden .pth files
        for entry in _path_lines(site_dir, first):
            entry_case = os.path.normcase(entry)
            if entry_case not in known:
                path.append(entry)
                known.add(entry_case)
        extra += _path_lines(site_dir, others)


def _markers() -> dict[str, str]:
    """PEP 508 marker values of this interpreter (``packaging.markers.default_environment``)."""
    impl = sys.implementation
    version = f"{impl.version.major}.{impl.version.minor}.{impl.version.micro}"
    if impl.version.releaselevel != "final":
        version += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def describe(base_path: list[str] | None = None) -> dict[str, Any]:
    """This interpreter's import path as ``site`` would build it, and what it is.

    Meant to run under ``-I -S``: ``sys.path`` then holds the standard library
    only, and ``import site`` defines functions without running ``site.main()``.
    ``-I`` drops ``PYTHONPATH``; its entries are put back in front, as a normal start
    would (they are data too). *base_path* replaces ``sys.path`` as the starting point.
    """
    import site

    # CPython ignores an empty variable, but an empty segment of a non-empty
    # PYTHONPATH is the current directory (``PYTHONPATH=:x`` puts the cwd first).
    raw_python_path = os.environ.get("PYTHONPATH", "")
    python_path = raw_python_path.split(os.pathsep) if raw_python_path else []
    path = [os.path.abspath(entry) for entry in python_path]
    path += [entry for entry in (sys.path if base_path is None else base_path) if entry]
    known = {os.path.normcase(os.path.abspath(entry)) for entry in path}
    prefixes = [sys.prefix, sys.exec_prefix]
    user_site = not os.environ.get("PYTHONNOUSERSITE")  # set but empty counts as unset
    site_dirs: list[str] = []
    venv = _venv()
    if venv is not None:
        # site.venv adds the venv's own site-packages first, ahead of the user site.
        site_dirs += site.getsitepackages([venv[0]])
        prefixes = [venv[0], *prefixes] if venv[1] else [venv[0]]
        user_site = user_site and venv[1]
    if user_site:
        site_dirs.append(site.getusersitepackages())
    site_dirs += site.getsitepackages(prefixes)
    site_dirs = [d for d in dict.fromkeys(site_dirs) if os.path.isdir(d)]
    extra: list[str] = []
    for site_dir in site_dirs:
        _add_site_dir(site_dir, path, known, extra)
    for entry in extra:
        if os.path.normcase(entry) not in known:
            path.append(entry)
            known.add(os.path.normcase(entry))
    return {
        "path": path,
        "site_dirs": site_dirs,
        "implementation": sys.implementation.name,
        "python_version": platform.python_version(),
        "platform": sysconfig.get_platform(),
        "markers": _markers(),
    }


if __name__ == "__main__":
    json.dump(describe(), sys.stdout)
