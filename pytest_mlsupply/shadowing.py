"""Modules that hide an installed distribution from outside the environment.

A ``tests/numpy.py`` next to the test files, a ``PYTHONPATH`` entry, the
current directory under ``python -m pytest`` or a user site directory can hold
a module named like an installed distribution's import name; found on the
search path before the site directory, it runs instead of the verified code.
Every file the gate verified can match its RECORD while none of it is
imported. This module resolves each installed import name exactly as the
import system would (``importlib._bootstrap_external.PathFinder`` with
``FileFinder`` and ``zipimport.zipimporter``), with the directories pytest's
``prepend`` import mode will insert during collection put first, and names
every module found ahead of the installed one. After collection,
``check_loaded_modules`` compares what ``sys.modules`` actually holds with
where it is installed (the backstop for what a static view cannot see: a
meta-path finder, an import hook, ``sys.path`` changed at run time).

The project's own code under test is not shadowing: an editable or local
directory install, the directories its ``.pth`` files add, or the project
named in the rootdir's ``pyproject.toml`` may provide that project's own
names from its working tree (a ``src/`` layout), but never a name another
installed distribution owns.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import sysconfig
import zipfile
import zipimport
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from importlib.machinery import BYTECODE_SUFFIXES, EXTENSION_SUFFIXES, SOURCE_SUFFIXES
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from pytest_mlsupply.findings import Finding, Kind
from pytest_mlsupply.snapshot import InstalledDistribution, Snapshot
from pytest_mlsupply.sources import LOCAL_KINDS

#: The order in which ``FileFinder`` tries suffixes: its loaders are extension
#: modules, then source, then bytecode (``_get_supported_file_loaders``).
LOADER_SUFFIXES: tuple[str, ...] = (*EXTENSION_SUFFIXES, *SOURCE_SUFFIXES, *BYTECODE_SUFFIXES)

#: zipimport's search order for one name (``zipimport._zip_searchorder``).
_ZIP_SEARCH_ORDER = (
    ("/__init__.pyc", True),
    ("/__init__.py", True),
    (".pyc", False),
    (".py", False),
)

_NOT_CODE_SUFFIXES = (".dist-info", ".egg-info", ".data", ".pth", ".egg-link")

MESSAGE_SHADOWED = (
    "{module!r} (installed by {dist} in {installed}) is shadowed by {found}, which comes "
    "first on the import path (from {entry})"
)
HINT_SHADOWED = (
    "rename or remove {found}, or take {entry} off the import path; code found there runs "
    "instead of the verified {dist}"
)
MESSAGE_LOADED_ELSEWHERE = (
    "module {module!r} of {dist} (installed in {installed}) was imported from {found}, "
    "not from where it is installed"
)
HINT_LOADED_ELSEWHERE = (
    "find what put {found} on the import path (a conftest, a plugin, a .pth file or an import "
    "hook) and remove it; the tests were not run with the verified {dist}"
)


@dataclass(frozen=True)
class Provider:
    """One installed distribution that provides an import name, and where it may come from.

    ``homes`` are directories the distribution's own code may also be imported
    from: its working tree (editable or local directory installs, the rootdir
    project) and the directories its own ``.pth`` files add.
    """

    dist: str
    location: str
    homes: tuple[str, ...] = ()

    def to_list(self) -> list[Any]:
        return [self.dist, self.location, list(self.homes)]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> Provider:
        return cls(str(data[0]), str(data[1]), tuple(str(h) for h in data[2]))


#: Import name (top level) -> the distributions providing it.
ImportIndex = Mapping[str, tuple[Provider, ...]]


def index_to_dict(index: ImportIndex) -> dict[str, list[list[Any]]]:
    """Plain data (for xdist's ``workerinput``)."""
    return {name: [p.to_list() for p in providers] for name, providers in index.items()}


def index_from_dict(data: Mapping[str, Any]) -> dict[str, tuple[Provider, ...]]:
    return {str(k): tuple(Provider.from_list(p) for p in v) for k, v in data.items()}


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def import_name(location: str, entry: str) -> str | None:
    """The top-level import name a site-directory entry provides, or None."""
    if entry == "__pycache__" or entry.endswith(_NOT_CODE_SUFFIXES):
        return None
    if os.path.isdir(os.path.join(location, entry)):
        return entry if entry.isidentifier() else None
    for suffix in LOADER_SUFFIXES:
        if entry.endswith(suffix):
            stem = entry[: -len(suffix)]
            return stem if stem.isidentifier() else None
    return None


def _pth_directories(site_dir: str, entries: Iterable[str]) -> list[str]:
    """Directories that a distribution's own ``.pth`` files add, as ``site.addpackage`` does."""
    found: list[str] = []
    for entry in entries:
        if not entry.endswith(".pth") or "/" in entry:
            continue
        try:
            text = Path(site_dir, entry).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.strip() or line.startswith("#") or line.startswith(("import ", "import\t")):
                continue
            folder = os.path.join(site_dir, line.rstrip())
            if os.path.isdir(folder):
                found.append(_real(folder))
    return found


def _local_tree(dist: InstalledDistribution) -> str | None:
    """The working tree of an editable or local-directory install (PEP 610 ``url``)."""
    if dist.source.kind not in LOCAL_KINDS or not dist.source.url:
        return None
    parts = urlsplit(dist.source.url)
    if parts.scheme != "file":
        return None
    return _real(unquote(parts.path))


def _top_level_txt(dist: InstalledDistribution) -> list[str]:
    try:
        text = Path(dist.metadata_path, "top_level.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def project_name(rootdir: Path | None) -> str | None:
    """The ``[project] name`` of the rootdir's ``pyproject.toml`` (canonical), if readable.

    An unreadable file only means no exemption: the check then flags more, not less.
    """
    if rootdir is None:
        return None
    from pytest_mlsupply.tomlfile import parse_toml

    try:
        text = (rootdir / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    data, _problem = parse_toml(text)
    if data is None:
        return None
    project = data.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    return canonicalize_name(name) if isinstance(name, str) else None


#: Top-level names wheels ship by mistake (``find_packages()`` without ``exclude``;
#: mktestdocs ships ``tests``): the project's own test folder has the same name and wins
#: by design. Nobody imports another distribution's test suite, so a project folder in
#: front of one is not shadowing; a distribution named so is still checked.
STRAY_TEST_PACKAGES = frozenset({"tests", "test"})


def build_index(
    snapshot: Snapshot,
    tops: Mapping[str, Sequence[str]],
    *,
    rootdir: Path | None = None,
) -> dict[str, tuple[Provider, ...]]:
    """Which installed distribution provides which top-level import name.

    *tops* maps a distribution's metadata path to the top-level entries its
    RECORD lists (``verify.Ownership.dist_tops``); a distribution without one
    (no RECORD) is read from ``top_level.txt``. The distribution named in
    *rootdir*'s ``pyproject.toml`` may also come from *rootdir*.
    """
    own_project = project_name(rootdir)
    result: dict[str, list[Provider]] = {}
    for dist in snapshot.distributions:
        location = os.path.normpath(dist.location)
        entries = list(tops.get(dist.metadata_path, ()))
        names = {n for n in (import_name(location, e) for e in entries) if n}
        names.update(n for n in _top_level_txt(dist) if n.isidentifier())
        names -= STRAY_TEST_PACKAGES - {dist.name}
        homes = _pth_directories(location, entries)
        tree = _local_tree(dist)
        if tree is not None:
            homes.append(tree)
        if own_project is not None and dist.name == own_project and rootdir is not None:
            homes.append(_real(str(rootdir)))
        provider = Provider(dist.name, _real(location), tuple(dict.fromkeys(homes)))
        for name in sorted(names):
            result.setdefault(name, []).append(provider)
    return {name: tuple(providers) for name, providers in sorted(result.items())}


# ------------------------------------------------------------------ the import system


@dataclass(frozen=True)
class Hit:
    """Where one name resolves on one path entry: a module, a package, or a namespace portion."""

    entry: str
    origin: str
    namespace: bool


class _PathView:
    """The finders ``sys.path_hooks`` would give each entry, read from disk once.

    Only the default hooks are emulated: ``zipimporter`` first, then
    ``FileFinder`` (Lib/importlib/_bootstrap_external.py, ``FileFinder.find_spec``;
    Lib/zipimport.py, ``zipimporter.find_spec``).
    """

    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self._listings: dict[str, frozenset[str]] = {}
        self._zips: dict[str, _Zipped | None] = {}

    def find(self, entry: str, tail: str) -> Hit | None:
        path = entry or self.cwd  # '' is the current directory (PathFinder._path_importer_cache)
        zipped = self._zip(path)
        if zipped is not None:
            return self._find_in_zip(entry, zipped, tail)
        return self._find_in_dir(entry, path, tail)

    def _listing(self, path: str) -> frozenset[str] | None:
        if path not in self._listings:
            if not _isdir(path):
                return None  # FileFinder's path hook refuses anything but a directory
            try:
                self._listings[path] = frozenset(os.listdir(path))
            except OSError:
                self._listings[path] = frozenset()  # FileFinder._fill_cache: an empty cache
        return self._listings[path]

    def _find_in_dir(self, entry: str, path: str, tail: str) -> Hit | None:
        cache = self._listing(path)
        if cache is None:
            return None
        is_namespace = False
        base = os.path.join(path, tail)
        if tail in cache:
            for suffix in LOADER_SUFFIXES:
                init = os.path.join(base, "__init__" + suffix)
                if _isfile(init):
                    return Hit(entry, init, namespace=False)
            is_namespace = _isdir(base)
        for suffix in LOADER_SUFFIXES:
            if tail + suffix in cache:
                full = os.path.join(path, tail + suffix)
                if _isfile(full):
                    return Hit(entry, full, namespace=False)
        return Hit(entry, base, namespace=True) if is_namespace else None

    def _zip(self, path: str) -> _Zipped | None:
        """(archive, prefix, member names, importer) when zipimporter accepts *path*, else None.

        zipimport, not zipfile, decides: it accepts archives zipfile rejects (a
        member with a corrupt extra field, which zipimport never parses). The
        member names then come from the importer itself (``_find_in_zip``).
        """
        if path in self._zips:
            return self._zips[path]
        archive, prefix = path, list[str]()
        result: _Zipped | None = None
        while True:
            try:
                mode = os.stat(archive).st_mode
            except (OSError, ValueError):
                head, tail = os.path.split(archive)
                if head == archive:
                    break
                archive, prefix = head, [tail, *prefix]
                continue
            if stat.S_ISREG(mode):
                try:
                    importer = zipimport.zipimporter(path)
                except (zipimport.ZipImportError, OSError, ValueError):
                    break  # the import system skips this entry too
                members: frozenset[str] | None
                try:
                    with zipfile.ZipFile(archive) as zf:
                        members = frozenset(zf.namelist())
                except (OSError, zipfile.BadZipFile, ValueError, EOFError):
                    members = None
                joined = "/".join(prefix)
                result = (archive, joined + "/" if joined else "", members, importer)
            break
        self._zips[path] = result
        return result

    def _find_in_zip(self, entry: str, zipped: _Zipped, tail: str) -> Hit | None:
        archive, prefix, members, importer = zipped
        modpath = prefix + tail
        if members is None:
            return _ask_zipimporter(entry, archive, modpath, importer, tail)
        for suffix, _package in _ZIP_SEARCH_ORDER:
            if modpath + suffix in members:
                return Hit(entry, f"{archive}{os.sep}{modpath}{suffix}", namespace=False)
        if modpath + "/" in members:
            return Hit(entry, f"{archive}{os.sep}{modpath}", namespace=True)
        return None


#: (archive, prefix inside it, member names or None when zipfile cannot read it, importer).
_Zipped = tuple[str, str, "frozenset[str] | None", zipimport.zipimporter]


def _ask_zipimporter(
    entry: str, archive: str, modpath: str, importer: zipimport.zipimporter, tail: str
) -> Hit | None:
    """Resolve *tail* with zipimport itself, for an archive zipfile cannot read.

    Anything the importer raises means we cannot tell what it would import:
    the archive itself counts as the hit (fail closed).
    """
    try:
        spec = importer.find_spec(tail)
    except Exception:  # any failure is "cannot tell": reported as a hit
        return Hit(entry, archive, namespace=False)
    if spec is None:
        return None
    if spec.loader is None:
        return Hit(entry, f"{archive}{os.sep}{modpath}", namespace=True)
    try:
        origin = importer.get_filename(tail)
    except Exception:  # as above
        origin = archive
    return Hit(entry, str(origin), namespace=False)


def _isfile(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _isdir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def resolve(name: str, search_path: Sequence[str], view: _PathView) -> tuple[Hit | None, list[str]]:
    """The first module or regular package for *name* on *search_path*, as PathFinder finds it.

    A namespace portion does not stop the search (``PathFinder._get_spec``
    collects portions and keeps looking); when nothing else is found the
    portions found are returned instead, as the namespace package's path.
    """
    portions: list[str] = []
    for entry in search_path:
        if not isinstance(entry, str):
            continue
        hit = view.find(entry, name)
        if hit is None:
            continue
        if not hit.namespace:
            return hit, portions
        portions.append(hit.origin)
    return None, portions


# ------------------------------------------------------------------ pytest's insertions


def prepend_roots(
    paths: Iterable[Path],
    *,
    python_files: Sequence[str],
    norecursedirs: Sequence[str],
    already_on_path: Iterable[str] = (),
    consider_namespace_packages: bool = False,
    confcutdir: Path | None = None,
    doctest_modules: bool = False,
) -> list[str]:
    """The directories pytest's ``prepend`` import mode will put at ``sys.path[0]``.

    For every test module and ``conftest.py`` under *paths*, the directory
    above its top package (``_pytest.pathlib.resolve_pkg_root_and_module_name``:
    the first directory going up without an ``__init__.py``). Directories are
    walked as pytest's collection does: *norecursedirs* patterns and virtual
    environments (a ``pyvenv.cfg``) are skipped. The ``conftest.py`` files
    pytest loads from the folders above each path, up to *confcutdir*, count
    too (``PytestPluginManager._try_load_conftest``). With
    *consider_namespace_packages*, pytest may also pick an ancestor already
    importable: every ancestor that is on the path is included (over-including
    only checks more). With *doctest_modules* (``--doctest-modules``) every
    ``*.py`` but ``__main__.py`` is imported (``_pytest.doctest.pytest_collect_file``;
    a ``setup.py`` counts too: over-including only checks more).
    """
    on_path = {_real(p) for p in already_on_path if p}
    roots: dict[str, None] = {}
    for test_file in imported_files(
        paths,
        python_files=python_files,
        norecursedirs=norecursedirs,
        confcutdir=confcutdir,
        doctest_modules=doctest_modules,
    ):
        root = _package_root(test_file)
        roots[str(root)] = None
        if consider_namespace_packages:
            for parent in root.parents:
                if _real(str(parent)) in on_path:
                    roots[str(parent)] = None
    return list(roots)


def imported_files(
    paths: Iterable[Path],
    *,
    python_files: Sequence[str],
    norecursedirs: Sequence[str],
    confcutdir: Path | None = None,
    doctest_modules: bool = False,
) -> list[Path]:
    """The test modules and ``conftest.py`` files pytest will import (see ``prepend_roots``)."""
    found: dict[Path, None] = {}

    def add(test_file: Path) -> None:
        found[test_file] = None

    cut = _real(str(confcutdir)) if confcutdir is not None else None

    def conftests_above(start: Path) -> None:
        for folder in (start, *start.parents):
            if (folder / "conftest.py").is_file():
                add(folder / "conftest.py")
            if cut is not None and _real(str(folder)) == cut:
                break

    for path in paths:
        start = path if path.is_dir() else path.parent
        conftests_above(start)
        if path.is_dir():
            # pytest also loads the conftest.py of every ``test*`` folder of each
            # directory argument, norecursedirs and virtual environments notwithstanding
            # (``PytestPluginManager._set_initial_conftests``), so ``test.egg/`` counts.
            for anchor in _test_anchors(path):
                conftests_above(anchor)
        if path.is_file():
            add(path)
            continue
        for test_file in _test_files(path, python_files, norecursedirs, doctest_modules):
            add(test_file)
    return list(found)


def importlib_tops(files: Iterable[Path], rootdir: Path) -> list[tuple[str, str]]:
    """(top-level name, folder) that pytest's ``importlib`` mode imports each file's top under.

    It leaves ``sys.path`` alone but imports a test file under the name
    ``resolve_pkg_root_and_module_name`` gives it, parents first, and a parent
    not in ``sys.modules`` yet is imported from beside the test file
    (``_pytest.pathlib.import_path`` and ``_import_module_using_spec``, pytest
    8.4+). A file outside any package falls back to a name relative to the
    rootdir (``module_name_from_path``), whose first part is imported from the
    rootdir the same way.
    """
    result: dict[tuple[str, str], None] = {}
    for path in files:
        root = _package_root(path)
        if root != path.parent or path.name == "__init__.py":
            parts: tuple[str, ...] = path.relative_to(root).with_suffix("").parts
        else:
            stem = path.with_suffix("")
            try:
                parts = stem.relative_to(rootdir).parts
                root = rootdir
            except ValueError:
                parts, root = stem.parts[1:], Path(stem.anchor)
            parts = tuple(part.replace(".", "_") for part in parts)
        if parts:
            result[(parts[0], str(root))] = None
    return list(result)


def _test_anchors(folder: Path) -> list[Path]:
    """``anchor.glob("test*")`` folders, as ``_set_initial_conftests`` adds them."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [
        folder / name
        for name in names
        if fnmatch.fnmatch(name, "test*") and _isdir(str(folder / name))  # Path.glob
    ]


def _package_root(path: Path) -> Path:
    result: Path | None = None
    for parent in (path, *path.parents):
        if parent.is_dir():
            if not (parent / "__init__.py").is_file() or not parent.name.isidentifier():
                break
            result = parent
    return result.parent if result is not None else path.parent


def _test_files(
    top: Path,
    python_files: Sequence[str],
    norecursedirs: Sequence[str],
    doctest_modules: bool = False,
) -> Iterator[Path]:
    # pytest follows symlinked folders (``_pytest.pathlib.visit``); so do we, once each.
    # An explicit stack, not ``os.walk``: a folder tree deeper than the recursion
    # limit must not crash the gate (os.walk recurses on Python < 3.12).
    seen: set[str] = set()
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        real = _real(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as listing:
                entries = sorted((e.name, e.is_dir()) for e in listing)
        except OSError:
            continue  # as os.walk without onerror: an unreadable folder is skipped
        dirs = [
            name
            for name, is_dir in entries
            if is_dir
            and not any(_fnmatch_ex(pat, os.path.join(folder, name)) for pat in norecursedirs)
            and not os.path.isfile(os.path.join(folder, name, "pyvenv.cfg"))
        ]
        for name, is_dir in entries:
            if is_dir or not name.endswith(".py"):
                continue
            full = os.path.join(folder, name)
            doctest = doctest_modules and name != "__main__.py"
            if doctest or name == "conftest.py" or any(_fnmatch_ex(p, full) for p in python_files):
                yield Path(full)
        stack.extend(os.path.join(folder, name) for name in reversed(dirs))


def _fnmatch_ex(pattern: str, path: str) -> bool:
    """``_pytest.pathlib.fnmatch_ex``: a pattern with a separator matches the path's end."""
    if os.sep != "/" and os.sep not in pattern and "/" in pattern:
        pattern = pattern.replace("/", os.sep)
    if os.sep not in pattern:
        return fnmatch.fnmatch(os.path.basename(path), pattern)
    if os.path.isabs(path) and not os.path.isabs(pattern):
        pattern = f"*{os.sep}{pattern}"
    return fnmatch.fnmatch(path, pattern)


# ------------------------------------------------------------------ the checks


def _homes(providers: Sequence[Provider]) -> list[str]:
    """Working trees that may provide a name: none when another distribution owns it too."""
    if len({p.dist for p in providers}) != 1:
        return []
    return [home for p in providers for home in p.homes]


def _allowed_entry(entry_real: str, providers: Sequence[Provider]) -> bool:
    return any(entry_real == p.location for p in providers) or any(
        _within(entry_real, h) for h in _homes(providers)
    )


def find_shadowing(
    index: ImportIndex,
    search_path: Sequence[str],
    *,
    cwd: str | None = None,
    pinned: Iterable[tuple[str, str]] = (),
) -> list[Finding]:
    """Every installed import name that resolves first to a module outside its distribution.

    *search_path* is the path as imports will see it (pytest's insertions
    first, then ``sys.path``, current-directory entry included). A namespace
    package's submodules are resolved too, over its portions in path order.
    *pinned* names a folder a top-level name will be imported from whatever the
    path says (``importlib_tops``): one outside the distribution is shadowing,
    a namespace folder included.
    """
    view = _PathView(cwd or os.getcwd())
    findings: list[Finding] = []
    pinned_names: set[str] = set()
    for name, folder in pinned:
        providers = index.get(name)
        if not providers or name in pinned_names:
            continue
        hit = view.find(folder, name)
        if hit is None or _allowed_entry(_real(folder), providers):
            continue
        pinned_names.add(name)
        findings.append(_shadow_finding(name, providers, hit))
    for name, providers in index.items():
        if name in pinned_names:
            continue
        hit, portions = resolve(name, search_path, view)
        if hit is not None:
            entry_real = _real(os.path.abspath(hit.entry or view.cwd))
            if not _allowed_entry(entry_real, providers):
                findings.append(_shadow_finding(name, providers, hit))
            continue
        findings.extend(_namespace_shadowing(name, providers, portions, view))
    return findings


def _namespace_shadowing(
    name: str, providers: Sequence[Provider], portions: Sequence[str], view: _PathView
) -> Iterator[Finding]:
    """Submodules of a namespace package found in a portion ahead of the installed one."""
    installed = {_real(os.path.join(p.location, name)): p for p in providers}
    subnames: set[str] = set()
    for folder in installed:
        listing = view._listing(folder) or frozenset()
        subnames.update(n for n in (import_name(folder, e) for e in listing) if n)
    for sub in sorted(subnames):
        hit, _ = resolve(sub, list(portions), view)
        if hit is None:
            continue
        entry_real = _real(hit.entry)
        if entry_real in installed:
            continue
        if not any(_within(entry_real, h) for h in _homes(providers)):
            yield _shadow_finding(f"{name}.{sub}", providers, hit)


def _shadow_finding(module: str, providers: Sequence[Provider], hit: Hit) -> Finding:
    dist = ", ".join(sorted({p.dist for p in providers}))
    installed = ", ".join(sorted({p.location for p in providers}))
    entry = hit.entry or "the current directory"
    return Finding.of(
        Kind.IMPORT_SHADOWED,
        providers[0].dist,
        MESSAGE_SHADOWED.format(
            module=module, dist=dist, installed=installed, found=hit.origin, entry=entry
        ),
        expected=installed,
        actual=hit.origin,
        hint=HINT_SHADOWED.format(found=hit.origin, entry=entry, dist=dist),
        location=hit.origin,
    )


def _module_files(module: object) -> list[str]:
    """Every file a module says it came from: spec origin, ``__file__`` and its loaders' paths.

    A module can overwrite its own ``__spec__.origin`` and ``__file__``, so
    the paths its loaders recorded (``FileLoader.path``, ``get_filename``,
    ``ExtensionFileLoader.path``) count too; each one is checked, and they
    disagreeing only means more than one file to check.
    """
    found: list[str] = []
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else None
    if isinstance(origin, str) and getattr(spec, "has_location", False):
        found.append(origin)
    filename = getattr(module, "__file__", None)
    if isinstance(filename, str):
        found.append(filename)
    name = getattr(spec, "name", None) or getattr(module, "__name__", None)
    for loader in (getattr(spec, "loader", None), getattr(module, "__loader__", None)):
        found.extend(_loader_files(loader, name))
    # The import system records absolute paths; a relative one names no file (torch puts
    # module objects with ``__file__ = "_ops.py"`` into sys.modules as torch.ops).
    return [path for path in dict.fromkeys(found) if os.path.isabs(path)]


def _loader_files(loader: object, name: object) -> list[str]:
    """The file a standard loader loads from; a custom loader may say nothing (or raise)."""
    if loader is None:
        return []
    found: list[str] = []
    try:
        path = getattr(loader, "path", None)
        if isinstance(path, str):
            found.append(path)
        get_filename = getattr(loader, "get_filename", None)
        if (
            callable(get_filename)
            and isinstance(name, str)
            and not isinstance(loader, zipimport.zipimporter)
        ):  # zipimporter.get_filename reads and compiles the member: its spec origin will do
            filename = get_filename(name)
            if isinstance(filename, str):
                found.append(filename)
    except Exception:  # a loader's own code may fail: what it recorded above still counts
        pass
    return found


def _stdlib_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return [_real(paths[key]) for key in ("stdlib", "platstdlib") if key in paths]


def check_loaded_modules(modules: Mapping[str, object], index: ImportIndex) -> list[Finding]:
    """Modules of installed distributions that ``sys.modules`` holds from somewhere else.

    A module passes when its file lies in its distribution's own top-level
    entry (``site-packages/numpy/...``, ``site-packages/six.py``) or working
    tree, or in any installed distribution's or the standard library's code (a
    package may alias another's module under its own name, as ``six.moves``
    does). Modules without a file (namespace packages, built-ins) are skipped:
    their submodules are checked one by one.
    """
    owned: dict[str, set[str]] = {}
    for name, providers in index.items():
        for p in providers:
            owned.setdefault(p.location, set()).add(name)
    # Deepest first: a path entry with distributions inside another one decides for its files.
    sites = sorted(owned.items(), key=lambda item: -len(item[0]))
    stdlib = _stdlib_dirs()

    def installed_code(real: str) -> bool:
        for location, names in sites:
            if _within(real, location):
                first, sep, _ = real[len(location) + 1 :].partition(os.sep)
                return (first if sep else import_name(location, first)) in names
        # The standard library holds site-packages outside a venv: checked above first.
        return any(_within(real, folder) for folder in stdlib)

    findings: dict[str, Finding] = {}
    folders: dict[str, str] = {}  # realpath per folder: thousands of modules share a few
    for module_name, module in list(modules.items()):
        top = module_name.partition(".")[0]
        found = index.get(top)
        if not found:
            continue
        providers = found
        filename = None
        for candidate in _module_files(module):
            folder, base = os.path.split(os.path.abspath(candidate))
            if folder not in folders:
                folders[folder] = _real(folder)
            real = os.path.join(folders[folder], os.path.normcase(base))
            if not (_is_own(real, top, providers) or installed_code(real)):
                filename = candidate
                break
        if filename is None:
            continue
        dist = ", ".join(sorted({p.dist for p in providers}))
        installed = ", ".join(sorted({p.location for p in providers}))
        findings[module_name] = Finding.of(
            Kind.IMPORT_SHADOWED,
            providers[0].dist,
            MESSAGE_LOADED_ELSEWHERE.format(
                module=module_name, dist=dist, installed=installed, found=filename
            ),
            expected=installed,
            actual=filename,
            hint=HINT_LOADED_ELSEWHERE.format(found=filename, dist=dist),
            location=filename,
        )
    return [findings[name] for name in sorted(findings)]


def _is_own(real: str, top: str, providers: Sequence[Provider]) -> bool:
    if any(_within(real, h) for h in _homes(providers)):
        return True
    for p in providers:
        relative = real[len(p.location) + 1 :] if _within(real, p.location) else None
        if relative is None:
            continue
        first = relative.split(os.sep, 1)[0]
        if first == top or (os.sep not in relative and import_name(p.location, first) == top):
            return True
    return False


# ------------------------------------------------------------------ start-up modules

#: The modules ``site`` imports at every interpreter start (Lib/site.py, ``execsitecustomize``
#: and ``execusercustomize``), from wherever the import system finds them first.
STARTUP_MODULE_NAMES = ("sitecustomize", "usercustomize")

MESSAGE_STARTUP_OFF_SITE = (
    "{origin} is imported as `{name}` at every interpreter start (it is the first `{name}` on "
    "the search path, in {entry}, a folder a .pth path line or PYTHONPATH adds) and no "
    "installed package owns it"
)
HINT_STARTUP_OFF_SITE = (
    "remove it, and the .pth line or PYTHONPATH entry that puts its folder on the path, unless "
    "you put them there on purpose"
)


def find_startup_modules(
    search_path: Sequence[str],
    owned_files: Iterable[str],
    checked_dirs: Iterable[str],
    *,
    cwd: str | None = None,
) -> list[Finding]:
    """``sitecustomize``/``usercustomize`` found, as ``site`` imports them, outside the checks.

    ``site`` appends every ``.pth`` path line to ``sys.path`` before it imports
    these modules, so a path-only ``.pth`` can point them at any folder. A hit in
    one of *checked_dirs* (the site directories, whose top level the file
    verification already judges) or in the standard library is left alone; any
    other hit must be a file a RECORD row with a hash vouches for.
    """
    view = _PathView(cwd or os.getcwd())
    owned = owned_files if isinstance(owned_files, Set) else frozenset(owned_files)
    skipped = {_real(path) for path in (*checked_dirs, *_stdlib_dirs())}
    findings: list[Finding] = []
    for name in STARTUP_MODULE_NAMES:
        hit, _portions = resolve(name, search_path, view)
        if hit is None:
            continue
        entry_real = _real(os.path.abspath(hit.entry or view.cwd))
        # Only the hit is resolved: the owned paths are absolute and normalised already.
        candidates = (hit.origin, os.path.normpath(hit.origin), _real(hit.origin))
        if entry_real in skipped or any(path in owned for path in candidates):
            continue
        findings.append(
            Finding.of(
                Kind.UNOWNED_STARTUP_CODE,
                name,
                MESSAGE_STARTUP_OFF_SITE.format(origin=hit.origin, name=name, entry=hit.entry),
                expected="no unowned start-up code",
                actual=hit.origin,
                hint=HINT_STARTUP_OFF_SITE,
                location=hit.origin,
            )
        )
    return findings
