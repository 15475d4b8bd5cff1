"""What the RECORD of a local working-tree install may vouch for.

The lock never pins the files of an editable or directory install (they are
the project's own and change with every commit), so that RECORD proves
nothing: anyone who can write to site-packages can add a row to it. It may
vouch only for the distribution's own top-level names and ``.dist-info``, and
for the ``.pth`` an installer or build backend writes for an editable install,
recognised precisely (issue 11, red-team finding). Everything else it lists
that runs without being imported, or lands in another distribution's folder,
is reported here as an error.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Iterator, Set
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.record import iter_record_rows
from pytest_mlsupply.snapshot import RECORD_OK, InstalledDistribution, Snapshot
from pytest_mlsupply.verify import (
    STARTUP_MODULES,
    Ownership,
    _executable_pth_lines,
    _is_code,
    site_python_version,
)

LOCAL_PTH_CODE = (
    "{path} runs code at every interpreter start and only the RECORD of {owner}, a local "
    "working tree the lock does not pin, lists it: {line}"
)
LOCAL_PTH_PATH = (
    "{path} adds {folder} to the import path and only the RECORD of {owner}, a local working "
    "tree the lock does not pin, lists it (an editable install's .pth points into its own tree)"
)
LOCAL_STARTUP_MODULE = (
    "{path} is imported at every interpreter start and only the RECORD of {owner}, a local "
    "working tree the lock does not pin, lists it"
)
LOCAL_INTRUDER = (
    "{path} lies in the folder of {other} and only the RECORD of {owner}, a local working "
    "tree the lock does not pin, lists it"
)
LOCAL_PLUGIN = (
    "{owner} declares the pytest11 plugin `{entry}`, whose module is not one of its own "
    "names ({names}); its RECORD and entry points are not pinned by the lock"
)
LOCAL_BAD_ENTRY_POINTS = (
    "the entry points of {owner}, a local working tree, cannot be read ({error}); "
    "what it plugs into pytest cannot be told"
)
LOCAL_FINDER = (
    "{path} is imported at every interpreter start by the .pth of {owner}, a local working "
    "tree the lock does not pin, but {problem}"
)
LOCAL_HINT = (
    "remove it and reinstall {owner} from its working tree (`pip install -e .`); a local "
    "install's RECORD vouches only for its own names and its installer's .pth"
)

_FINDER_LINE = re.compile(r"import (?P<f>__editable___\w+_finder); (?P=f)\.install\(\)")


def _identifier(name: str) -> str:
    """setuptools ``editable_wheel._make_identifier``: the finder module's name."""
    return re.sub(r"\W|^(?=\d)", "_", name)


def import_name(dist_name: str) -> str:
    """The import name a distribution's own name gives (``my-proj`` -> ``my_proj``)."""
    return canonicalize_name(dist_name).replace("-", "_")


def local_tree(dist: InstalledDistribution) -> str | None:
    """The real path of the working tree a local install came from (PEP 610 ``url``)."""
    if not dist.source.is_local or not dist.source.url:
        return None
    parts = urlsplit(dist.source.url)
    if parts.scheme != "file" or not parts.path:
        return None
    return os.path.realpath(unquote(parts.path))


def own_names(dist: InstalledDistribution, tree: str | None) -> set[str]:
    """Top-level names a local install may call its own: the one its name gives, and the
    packages and modules at the top of its working tree and of the tree's ``src/``."""
    names = {import_name(dist.name)}
    if tree is None:
        return names
    for folder in (tree, os.path.join(tree, "src")):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            stem = entry.name.partition(".")[0]
            if entry.name.endswith(".py") or (entry.is_dir() and stem.isidentifier()):
                names.add(stem)
    return names


def find_local_overreach(snapshot: Snapshot, ownership: Ownership) -> list[Finding]:
    """Errors for what a local install's RECORD lists beyond what it may vouch for.

    Each local (editable or directory) distribution with a readable RECORD is
    checked: a ``.pth`` it lists must be path-only into its own tree, or the
    setuptools finder ``.pth`` whose only line imports that finder; it may list
    no ``sitecustomize``/``usercustomize`` and no file in another distribution's
    folder (unless that one lists it with the same hash); its ``pytest11`` entry
    points must name modules under its own names (``own_names``).
    """
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    local = [d for d in everything if d.source.is_local and d.record_state == RECORD_OK]
    if not local:
        return []
    # Folders holding files another distribution lists, and every .dist-info: a local
    # RECORD listing a file below one of them vouches for a file in a folder not its own.
    # Only distributions sharing a top-level name with a local install's rows can hold
    # such a folder: indexing every file of a torch-sized environment cost 30 ms.
    wanted = _local_tops(local)
    folders: dict[str, list[InstalledDistribution]] = {}
    for dist in everything:
        location = os.path.normpath(dist.location)
        tops = ownership.dist_tops.get(dist.metadata_path)
        shared = tops is None or not wanted.isdisjoint(tops)
        for absolute in ownership.dist_files.get(dist.metadata_path, ()) if shared else ():
            folder = os.path.dirname(absolute)
            if folder != location:
                folders.setdefault(folder, []).append(dist)
        folders.setdefault(os.path.normpath(dist.metadata_path), []).append(dist)
        if dist.record_state != RECORD_OK:  # no RECORD: its top_level.txt names its folders
            for top in ownership.dist_tops.get(dist.metadata_path, ()):
                folders.setdefault(os.path.join(location, top), []).append(dist)
    findings: list[Finding] = []
    for dist in local:
        findings.extend(_overreach(dist, folders, ownership))
    return findings


def _local_tops(local: list[InstalledDistribution]) -> set[str]:
    """The top-level names the hashed rows of *local* land in (where they may overreach)."""
    tops: set[str] = set()
    for dist in local:
        location = os.path.normpath(dist.location)
        for relative, hash_text, _ in _rows(dist):
            absolute = os.path.normpath(os.path.join(location, relative))
            if hash_text and absolute.startswith(location + os.sep):
                tops.add(absolute[len(location) + 1 :].split(os.sep, 1)[0])
    return tops


def _rows(dist: InstalledDistribution) -> tuple[tuple[str, str, str], ...]:
    if dist.record_rows is not None:
        return dist.record_rows
    try:
        text = Path(dist.metadata_path, "RECORD").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()  # the snapshot already reported an unreadable RECORD
    return tuple(iter_record_rows(text))


def _overreach(
    dist: InstalledDistribution,
    folders: dict[str, list[InstalledDistribution]],
    ownership: Ownership,
) -> Iterator[Finding]:
    location = os.path.normpath(dist.location)
    metadata_dir = Path(dist.metadata_path).name
    tree = local_tree(dist)
    version = site_python_version(location)
    rows = [(rel, hash_text) for rel, hash_text, _ in _rows(dist) if hash_text]
    listed = {os.path.normpath(os.path.join(location, rel)) for rel, _ in rows}
    for relative, hash_text in rows:
        absolute = os.path.normpath(os.path.join(location, relative))
        # Judged by where the row lands, not how it is spelled: `../site-packages/demo/x.py`
        # lands in the site directory as surely as `demo/x.py`.
        outside = not absolute.startswith(location + os.sep)
        top = os.path.relpath(absolute, location).split(os.sep)[0] if not outside else None
        if top == metadata_dir:
            continue
        name = os.path.basename(absolute)
        if name.endswith(".pth") and (outside or top == name):
            yield from _judge_pth(dist, absolute, tree, listed, version)
            continue
        named = [name, os.path.basename(os.path.dirname(absolute))] if outside else [top or ""]
        if any(n.split(".", 1)[0] in STARTUP_MODULES for n in named):
            yield _error(
                Kind.UNOWNED_STARTUP_CODE,
                dist,
                LOCAL_STARTUP_MODULE.format(path=absolute, owner=dist.name),
                absolute,
            )
            continue
        if top is None:
            continue
        others = _other_owners(dist, absolute, location, folders)
        if not others or _vouched_by(absolute, hash_text, others, ownership):
            continue
        serious = _is_code(name) or top.endswith(".dist-info")
        finding = Finding.of(
            Kind.UNOWNED_MODULE,
            dist.name,
            LOCAL_INTRUDER.format(path=absolute, other=others[0].name, owner=dist.name),
            expected=f"listed by {others[0].name}",
            actual=f"listed only by {dist.name} {dist.version}, a local install",
            hint=LOCAL_HINT.format(owner=dist.name),
            location=absolute,
        )
        yield finding if not serious else _as_error(finding)
    yield from _judge_plugins(dist, tree)


def _other_owners(
    dist: InstalledDistribution,
    absolute: str,
    location: str,
    folders: dict[str, list[InstalledDistribution]],
) -> list[InstalledDistribution]:
    """Distributions with files in a folder above *absolute* (below the site directory)."""
    found: list[InstalledDistribution] = []
    folder = os.path.dirname(absolute)
    while folder != location and folder.startswith(location + os.sep):
        found += [d for d in folders.get(folder, ()) if d.metadata_path != dist.metadata_path]
        folder = os.path.dirname(folder)
    return found


def _vouched_by(
    absolute: str, hash_text: str, others: list[InstalledDistribution], ownership: Ownership
) -> bool:
    """Whether another distribution lists *absolute* with the same hash (a namespace file)."""
    wanted = _normal_hash(hash_text)
    for owner in ownership.claims.get(absolute, ()):
        if owner.dist in others and _normal_hash(owner.hash) == wanted:
            return True
    return False


def _normal_hash(hash_text: str) -> str:
    algorithm, _, value = hash_text.partition("=")
    return f"{algorithm.lower()}={value.rstrip('=')}"


def _judge_pth(
    dist: InstalledDistribution,
    path: str,
    tree: str | None,
    listed: Set[str],
    version: tuple[int, int],
) -> Iterator[Finding]:
    """A ``.pth`` a local install lists: read as ``site.addpackage`` reads it."""
    try:
        code = _executable_pth_lines(path, version)
        with open(path, "rb") as stream:
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return  # a missing or unreadable file is reported by the file verification
    if code:
        finder = _setuptools_finder(path, code, text, listed)
        if finder is not None:
            problem = _finder_problem(finder, os.path.basename(path)[: -len(".pth")], tree)
            if problem is not None:
                yield _error(
                    Kind.UNOWNED_STARTUP_CODE,
                    dist,
                    LOCAL_FINDER.format(path=finder, owner=dist.name, problem=problem),
                    finder,
                )
            return
        yield _error(
            Kind.UNOWNED_STARTUP_CODE,
            dist,
            LOCAL_PTH_CODE.format(path=path, owner=dist.name, line=_shorten(code[0])),
            path,
        )
        return
    site_dir = os.path.dirname(path)
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        try:
            folder = os.path.realpath(os.path.join(site_dir, line))
        except ValueError:  # an embedded NUL: site skips the line; we cannot tell, so report
            folder = repr(line)
        else:
            if tree is not None and (folder == tree or folder.startswith(tree + os.sep)):
                continue
        yield _error(
            Kind.UNOWNED_STARTUP_CODE,
            dist,
            LOCAL_PTH_PATH.format(path=path, folder=folder, owner=dist.name),
            path,
        )
        return


def _setuptools_finder(path: str, code: list[str], text: str, listed: Set[str]) -> str | None:
    """The finder module a setuptools ``__editable__.NAME-VER.pth`` imports, when the file is
    exactly ``import F; F.install()`` for ``F`` named as setuptools names it, and ``F.py`` is
    listed in the same RECORD; else None."""
    name = os.path.basename(path)
    if not name.startswith("__editable__.") or not name.endswith(".pth"):
        return None
    finder = _identifier(f"{name[: -len('.pth')]}.finder")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or len(code) != 1:
        return None
    match = _FINDER_LINE.fullmatch(lines[0].rstrip())
    if match is None or match.group("f") != finder:
        return None
    module = os.path.join(os.path.dirname(path), f"{finder}.py")
    return module if module in listed else None


#: setuptools' finder template (``editable_wheel._FINDER_TEMPLATE``) with its three data
#: lines blanked by ``_FINDER_DATA``: sha256 of the text, per setuptools release.
SETUPTOOLS_FINDER_TEMPLATES = {
    "fb90c9039d435c8149a5f18dd1cdfe82f935cf68e9dff38247299fda99e801d3": "65.5",
    "ecadda319c01a9d6e17187b8aa91d99ac377e89620f89c158fdd44bab48b664b": "68.2 to 69.5",
    "d84d5dba2a9cc9c19022fb2c26aee02301379e19bf18531fa73af1a2c7cde463": "70.3",
    "56fbc2990d7687e73635b864f6b9a68a0ea3ab85b69555897bb45a0c5dc7ca1b": "75.3 to 84.2",
}
_FINDER_DATA = re.compile(
    r"^(MAPPING(?:: dict\[str, str\])? = |NAMESPACES(?:: dict\[str, list\[str\]\])? = "
    r"|PATH_PLACEHOLDER = )(.*?)( \+ \"\.__path_hook__\")?$",
    re.MULTILINE,
)
FINDER_UNKNOWN = "its code is not a setuptools finder template this version knows"
FINDER_DATA = "its {what} is not what setuptools writes ({value})"


def _finder_problem(module: str, stem: str, tree: str | None) -> str | None:
    """Why the finder *module* (run by the ``.pth`` at every start) is not the one setuptools
    generates for this install, or None: its code must be a known template, ``MAPPING`` and
    ``NAMESPACES`` literals naming folders in the working tree, its placeholder the install's."""
    try:
        with open(module, "rb") as stream:
            text = stream.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"it cannot be read ({exc})"
    values: dict[str, str] = {}

    def blank(match: re.Match[str]) -> str:
        values[match.group(1).split(" ", 1)[0].rstrip(":")] = match.group(2)
        return match.group(1) + "..." + (match.group(3) or "")

    normal = _FINDER_DATA.sub(blank, text)
    if hashlib.sha256(normal.encode("utf-8")).hexdigest() not in SETUPTOOLS_FINDER_TEMPLATES:
        return FINDER_UNKNOWN
    try:
        mapping = ast.literal_eval(values["MAPPING"])
        namespaces = ast.literal_eval(values["NAMESPACES"])
        placeholder = ast.literal_eval(values["PATH_PLACEHOLDER"])
    except (KeyError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        return f"its data cannot be read as literals ({type(exc).__name__})"
    if placeholder != f"{stem}.finder":
        return FINDER_DATA.format(what="PATH_PLACEHOLDER", value=_shorten(repr(placeholder)))
    folders: list[object] = []
    if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
        return FINDER_DATA.format(what="MAPPING", value=_shorten(repr(mapping)))
    folders += mapping.values()
    if not isinstance(namespaces, dict) or not all(
        isinstance(k, str) and isinstance(v, list) for k, v in namespaces.items()
    ):
        return FINDER_DATA.format(what="NAMESPACES", value=_shorten(repr(namespaces)))
    for paths in namespaces.values():
        folders += paths
    for folder in folders:
        if not isinstance(folder, str) or not _inside(folder, tree):
            return FINDER_DATA.format(
                what="folder", value=f"{_shorten(repr(folder))} is outside the working tree"
            )
    return None


def _inside(folder: str, tree: str | None) -> bool:
    try:
        real = os.path.realpath(folder)
    except ValueError:  # an embedded NUL
        return False
    return tree is not None and (real == tree or real.startswith(tree + os.sep))


def _judge_plugins(dist: InstalledDistribution, tree: str | None) -> Iterator[Finding]:
    try:
        entry_points = [
            ep
            for ep in metadata.PathDistribution(Path(dist.metadata_path)).entry_points
            if ep.group == "pytest11"
        ]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        yield _error(
            Kind.UNOWNED_STARTUP_CODE,
            dist,
            LOCAL_BAD_ENTRY_POINTS.format(owner=dist.name, error=exc),
            dist.metadata_path,
        )
        return
    if not entry_points:
        return
    names = own_names(dist, tree)
    for ep in entry_points:
        top = ep.value.partition(":")[0].strip().split(".", 1)[0]
        if top in names:
            continue
        yield _error(
            Kind.UNOWNED_STARTUP_CODE,
            dist,
            LOCAL_PLUGIN.format(
                owner=dist.name, entry=f"{ep.name} = {ep.value}", names=", ".join(sorted(names))
            ),
            os.path.join(dist.metadata_path, "entry_points.txt"),
        )


def _error(kind: Kind, dist: InstalledDistribution, message: str, location: str) -> Finding:
    return _as_error(
        Finding.of(
            kind,
            dist.name,
            message,
            expected="vouched for by a pinned RECORD",
            actual=f"listed only by {dist.name} {dist.version}, a local install",
            hint=LOCAL_HINT.format(owner=dist.name),
            location=location,
        )
    )


def _as_error(finding: Finding) -> Finding:
    from dataclasses import replace

    return replace(finding, severity=Severity.ERROR)


def _shorten(line: str, limit: int = 80) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
