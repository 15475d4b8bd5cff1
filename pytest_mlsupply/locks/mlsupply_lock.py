"""``mlsupply.lock``: our own lockfile, read and written as TOML.

The lock records, per environment (interpreter and platform) the tests run in,
which distributions are installed, their versions, sources and content
digests. One lock serves several platforms: refreshing it on a second
platform adds that platform's entries and digests and keeps the first's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from pytest_mlsupply import __version__
from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.errors import LockfileError, LockfileNotFoundError
from pytest_mlsupply.hashing import Digest, DigestError
from pytest_mlsupply.limits import version_problem
from pytest_mlsupply.snapshot import Interpreter, Snapshot
from pytest_mlsupply.sources import SOURCE_KINDS, Source
from pytest_mlsupply.tomlfile import parse_toml

LOCK_VERSION = 1

REFRESH_COMMAND = "pytest --mlsupply-update-lock"
REFRESH_COMMAND_CLI = "python -m pytest_mlsupply lock"

HEADER = f"""\
# mlsupply.lock: the Python environment this project's tests must run in.
#
# Written by pytest-mlsupply. `pytest --mlsupply` fails when the installed
# distributions differ from this file: a version, a source, or the bytes a
# wheel shipped (content digest over its RECORD). Commit it and review its
# diffs like code.
#
# Refresh it after an intended change of the environment:
#     {REFRESH_COMMAND}      (or: {REFRESH_COMMAND_CLI})
# Refreshing on another platform or Python adds that environment's entries
# and keeps the others.
"""


@dataclass(frozen=True)
class LockedEnvironment:
    """An interpreter and platform the lock was refreshed on."""

    key: str
    implementation: str
    python_version: str
    platform: str

    @classmethod
    def of(cls, interpreter: Interpreter) -> LockedEnvironment:
        return cls(
            interpreter.key,
            interpreter.implementation,
            interpreter.python_version,
            interpreter.platform,
        )


@dataclass(frozen=True)
class LockedDistribution:
    """One accepted (name, version, source), its accepted digests and where it applies."""

    name: str
    version: str
    source: Source
    content: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lock:
    environments: tuple[LockedEnvironment, ...] = ()
    distributions: tuple[LockedDistribution, ...] = ()
    created_by: str = field(default=f"pytest-mlsupply {__version__}")

    def environment(self, key: str) -> LockedEnvironment | None:
        for env in self.environments:
            if env.key == key:
                return env
        return None


# ---------------------------------------------------------------- writing


def lock_to_dict(lock: Lock) -> dict[str, Any]:
    """The TOML document for *lock*, in a stable order so diffs stay small."""
    return {
        "lock-version": LOCK_VERSION,
        "created-by": lock.created_by,
        "environment": [
            {
                "key": env.key,
                "implementation": env.implementation,
                "python-version": env.python_version,
                "platform": env.platform,
            }
            for env in sorted(lock.environments, key=lambda e: e.key)
        ],
        "distribution": [
            _distribution_to_dict(dist)
            for dist in sorted(lock.distributions, key=_distribution_sort_key)
        ],
    }


def _distribution_sort_key(dist: LockedDistribution) -> tuple[str, str, str]:
    return (dist.name, dist.version, repr(sorted(dist.source.to_dict().items())))


def _distribution_to_dict(dist: LockedDistribution) -> dict[str, Any]:
    # The source is flattened into ``source`` plus ``source-*`` keys: tomli-w
    # would write a nested table as a separate [distribution.source] section.
    data: dict[str, Any] = {"name": dist.name, "version": dist.version}
    for key, value in dist.source.to_dict().items():
        data["source" if key == "kind" else f"source-{key}"] = value
    if dist.content:
        data["content"] = sorted(dist.content)
    data["environments"] = sorted(dist.environments)
    return data


def dump_lock(lock: Lock) -> str:
    import tomli_w

    return HEADER + "\n" + tomli_w.dumps(lock_to_dict(lock))


def write_lock(path: str | Path, lock: Lock) -> None:
    """Write *lock* atomically: a failed write never leaves a truncated lockfile."""
    try:
        write_text_atomic(path, dump_lock(lock))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LockfileError(str(path), [f"cannot be written: {reason}"]) from exc


# ---------------------------------------------------------------- refreshing


def refresh_lock(previous: Lock | None, snapshot: Snapshot) -> Lock:
    """The lock after recording *snapshot*'s environment.

    Entries of other environments are kept; this environment's entries are
    replaced by what is installed now. An entry shared with another
    environment (same name, version and source) gains this environment and
    its digest, so pure-Python wheels are listed once.
    """
    env = LockedEnvironment.of(snapshot.interpreter)
    kept: list[LockedDistribution] = []
    for dist in previous.distributions if previous else ():
        others = tuple(key for key in dist.environments if key != env.key)
        if others:
            kept.append(replace(dist, environments=others))
    by_identity = {(d.name, d.version, d.source): i for i, d in enumerate(kept)}
    for installed in snapshot.distributions:
        content = (
            () if installed.source.is_local or installed.content is None else (installed.content,)
        )
        source = installed.source.portable()
        identity = (installed.name, installed.version, source)
        index = by_identity.get(identity)
        if index is None:
            by_identity[identity] = len(kept)
            kept.append(
                LockedDistribution(installed.name, installed.version, source, content, (env.key,))
            )
        else:
            entry = kept[index]
            kept[index] = replace(
                entry,
                content=tuple(sorted(set(entry.content) | set(content))),
                environments=tuple(sorted({*entry.environments, env.key})),
            )
    environments = [e for e in (previous.environments if previous else ()) if e.key != env.key]
    environments.append(env)
    return Lock(
        environments=tuple(sorted(environments, key=lambda e: e.key)),
        distributions=tuple(sorted(kept, key=_distribution_sort_key)),
    )


# ---------------------------------------------------------------- reading


def load_lock(path: str | Path) -> Lock:
    """Read and validate a lockfile; every problem is reported with its location."""
    lock_path = Path(path)
    try:
        text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockfileNotFoundError(
            str(lock_path),
            [
                "lockfile not found. Create it from the current environment with "
                f"`{REFRESH_COMMAND}` (or `{REFRESH_COMMAND_CLI}`), then commit it."
            ],
        ) from None
    except UnicodeDecodeError as exc:
        raise LockfileError(str(lock_path), [f"not UTF-8 text: {exc}"]) from exc
    except OSError as exc:
        raise LockfileError(str(lock_path), [f"cannot be read: {exc.strerror or exc}"]) from exc
    return parse_lock(text, str(lock_path))


def parse_lock(text: str, source: str) -> Lock:
    """Parse lockfile text; raise one LockfileError that lists every problem."""
    document, problem = parse_toml(text)
    if document is None:
        raise LockfileError(source, [str(problem)])
    return _LockReader(text, document).read(source)


class _LockReader:
    """Validates a decoded lock document, collecting every problem before raising."""

    def __init__(self, text: str, document: Mapping[str, Any]) -> None:
        self.document = document
        self.problems: list[str] = []
        self.table_lines = _array_table_lines(text)
        self.key_lines = _top_level_key_lines(text)

    def problem(self, where: str, message: str, line: int | None = None) -> None:
        prefix = f"line {line}: " if line else ""
        self.problems.append(f"{prefix}{where}: {message}")

    def read(self, source: str) -> Lock:
        version = self.document.get("lock-version")
        if version is None:
            self.problem("lock-version", "missing; this does not look like an mlsupply.lock")
        elif not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.problem(
                "lock-version",
                f"must be a positive integer, got {version!r}",
                self.key_lines.get("lock-version"),
            )
        elif version > LOCK_VERSION:
            raise LockfileError(
                source,
                [
                    f"lock-version {version} was written by a newer pytest-mlsupply; this "
                    f"version ({__version__}) reads lock-version {LOCK_VERSION}. Upgrade "
                    "pytest-mlsupply."
                ],
            )
        self._unknown_keys(
            self.document, {"lock-version", "created-by", "environment", "distribution"}, "", None
        )
        created_by = self.document.get("created-by", "")
        if not isinstance(created_by, str):
            self.problem("created-by", f"must be a string, got {created_by!r}")
            created_by = ""
        environments = self._environments()
        known = {env.key for env in environments}
        distributions = self._distributions(known)
        if self.problems:
            raise LockfileError(source, self.problems)
        return Lock(tuple(environments), tuple(distributions), created_by)

    def _array(self, key: str) -> list[Any]:
        value = self.document.get(key, [])
        if not isinstance(value, list):
            self.problem(
                key, "must be an array of tables ([[" + key + "]])", self.key_lines.get(key)
            )
            return []
        return value

    def _unknown_keys(
        self, table: Mapping[str, Any], allowed: set[str], where: str, line: int | None
    ) -> None:
        for key in table:
            if key not in allowed:
                listed = ", ".join(sorted(allowed))
                self.problem(f"{where}{key}", f"unknown key (expected one of: {listed})", line)

    def _string(
        self, table: Mapping[str, Any], key: str, where: str, line: int | None, required: bool
    ) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                self.problem(f"{where}.{key}", "missing", line)
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{where}.{key}", f"must be a non-empty string, got {value!r}", line)
            return None
        return value

    def _strings(
        self, table: Mapping[str, Any], key: str, where: str, line: int | None
    ) -> list[str] | None:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{where}.{key}", f"must be an array of strings, got {value!r}", line)
            return None
        return list(value)

    def _environments(self) -> list[LockedEnvironment]:
        result: list[LockedEnvironment] = []
        seen: set[str] = set()
        for index, table in enumerate(self._array("environment")):
            where = f"environment[{index}]"
            line = self.table_lines.get(("environment", index))
            if not isinstance(table, dict):
                self.problem(where, "must be a table", line)
                continue
            self._unknown_keys(
                table, {"key", "implementation", "python-version", "platform"}, f"{where}.", line
            )
            values = [
                self._string(table, k, where, line, True)
                for k in ("key", "implementation", "python-version", "platform")
            ]
            key, implementation, python_version, platform_name = values
            if key is None or implementation is None or python_version is None:
                continue
            if platform_name is None:
                continue
            if key in seen:
                self.problem(f"{where}.key", f"environment {key!r} is listed twice", line)
                continue
            seen.add(key)
            result.append(LockedEnvironment(key, implementation, python_version, platform_name))
        return result

    def _distributions(self, known_environments: set[str]) -> list[LockedDistribution]:
        result: list[LockedDistribution] = []
        seen: dict[tuple[str, str, Source], str] = {}
        allowed = {"name", "version", "content", "environments", "source", *_SOURCE_FIELDS}
        for index, table in enumerate(self._array("distribution")):
            where = f"distribution[{index}]"
            line = self.table_lines.get(("distribution", index))
            if not isinstance(table, dict):
                self.problem(where, "must be a table", line)
                continue
            name = self._string(table, "name", where, line, True)
            if name is not None:
                where = f"{where} ({name})"
            self._unknown_keys(table, allowed, f"{where}.", line)
            version = self._string(table, "version", where, line, True)
            if version is not None and (too_long := version_problem(version)):
                self.problem(f"{where}.version", too_long, line)
                version = None
            source = self._source(table, where, line)
            content = self._strings(table, "content", where, line)
            environments = self._strings(table, "environments", where, line)
            for digest in content or ():
                try:
                    Digest.parse(digest)
                except DigestError as exc:
                    self.problem(f"{where}.content", str(exc), line)
            if environments is not None:
                if not environments:
                    self.problem(
                        f"{where}.environments", "must name at least one environment", line
                    )
                for key in environments:
                    if key not in known_environments:
                        self.problem(
                            f"{where}.environments",
                            f"{key!r} is not the key of any [[environment]] table",
                            line,
                        )
            if name is None or version is None or source is None:
                continue
            if content is None or environments is None:
                continue
            canonical = canonicalize_name(name)
            identity = (canonical, version, source)
            if identity in seen:
                self.problem(
                    where, f"duplicates {seen[identity]} (same name, version and source)", line
                )
                continue
            seen[identity] = where
            result.append(
                LockedDistribution(
                    canonical, version, source, tuple(sorted(content)), tuple(sorted(environments))
                )
            )
        return result

    def _source(self, table: Mapping[str, Any], where: str, line: int | None) -> Source | None:
        kind = table.get("source")
        if kind is None:
            self.problem(f"{where}.source", "missing", line)
            return None
        if kind not in SOURCE_KINDS:
            listed = ", ".join(SOURCE_KINDS)
            self.problem(f"{where}.source", f"must be one of {listed}; got {kind!r}", line)
            return None
        fields: dict[str, str | None] = {}
        for key, attribute in _SOURCE_FIELDS.items():
            item = table.get(key)
            if item is not None and not isinstance(item, str):
                self.problem(f"{where}.{key}", f"must be a string, got {item!r}", line)
                return None
            fields[attribute] = item
        return Source(kind=kind, **fields)


#: Lock keys that spell a Source's optional fields, and the attribute each fills.
_SOURCE_FIELDS = {
    "source-url": "url",
    "source-vcs": "vcs",
    "source-commit": "commit",
    "source-archive-hash": "archive_hash",
}

_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]")
_TOP_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _array_table_lines(text: str) -> dict[tuple[str, int], int]:
    """Line number of the header of each ``[[name]]`` table, by (name, index)."""
    counts: dict[str, int] = {}
    lines: dict[tuple[str, int], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ARRAY_TABLE.match(line)
        if match:
            name = match.group(1)
            lines[(name, counts.get(name, 0))] = number
            counts[name] = counts.get(name, 0) + 1
    return lines


def _top_level_key_lines(text: str) -> dict[str, int]:
    """Line number of each key assigned before the first table header."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("["):
            break
        match = _TOP_KEY.match(line)
        if match:
            lines.setdefault(match.group(1), number)
    return lines
