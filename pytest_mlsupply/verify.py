"""Installed-file integrity: every installed byte against RECORD, and code no package owns.

The lock compares what RECORD says; this module checks that the files on disk
are what RECORD says, and looks for what no RECORD mentions at all: a ``.pth``
file that runs code at every interpreter start, a ``sitecustomize.py``, a
stray module. pip declined to do this (pypa/pip#1463); it is the check that
catches an installed module edited in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.machinery
import json
import os
import re
import site
import sys
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pytest_mlsupply.atomic import write_text_atomic
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.hashcache import HashCache, RecordCache, VerdictCache
from pytest_mlsupply.hashing import Digest, DigestError, HashRun, hash_many
from pytest_mlsupply.record import (
    is_installer_generated,
    iter_record_rows,
    row_file,
    site_relative,
)
from pytest_mlsupply.snapshot import RECORD_OK, InstalledDistribution, Snapshot

if TYPE_CHECKING:
    from pytest_mlsupply.quirks import RecordQuirk

#: Files that decide what runs when the interpreter starts (the ``site`` module).
STARTUP_MODULES = ("sitecustomize", "usercustomize")

_RECORD_FILES = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s"})

#: Cache files kept in the cache directory the caller names (pytest's cache).
HASH_CACHE_FILE = "installed-file-hashes.json"
RECORD_CACHE_FILE = "installed-records.json"
VERDICT_CACHE_FILE = "installed-file-verdicts.json"
WALK_CACHE_FILE = "package-folder-walks.json"

#: Top-level entries of a site directory that are never a package's code. A ``*.data``
#: folder is not among them: installers empty it into the install scheme, so one left in
#: site-packages is judged by what it holds (``_unimportable_folder``).
_NOT_CODE_SUFFIXES = (".dist-info", ".egg-info", ".egg-link")
_NOT_CODE_NAMES = frozenset({"__pycache__", "README.txt", "README", ".DS_Store"})
_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")

#: Files the import system, ``site`` or the dynamic loader runs: sources, sourceless
#: bytecode, extension modules and the shared libraries they load (``libfoo.so.1``
#: too, see ``_is_code``), ``.pth`` files, every suffix this interpreter imports, and
#: the archives ``zipimport`` serves modules from once a ``.pth`` line names them
#: (``.egg``, ``.zip``; a file a path line names is code whatever its name, see
#: ``_judge_pth_paths``).
_CODE_SUFFIXES = tuple(
    sorted(
        {".py", ".pyw", ".pyc", ".pth", ".so", ".pyd", ".dll", ".dylib", ".egg", ".zip"}
        | set(importlib.machinery.all_suffixes())
    )
)

#: What a finding says of code inside a distribution's folder that no RECORD lists with a hash.
UNLISTED_CODE = (
    "{path} is code inside the folder of {owner}, but no RECORD lists it with a hash: "
    "it can run unverified"
)
UNLISTED_SOURCELESS = " (a .pyc outside __pycache__ is imported and run without any source)"
UNLISTED_SYMLINK = (
    "{path} is a symbolic link to a folder inside the folder of {owner}; no RECORD can list "
    "what it holds, so anything imported through it runs unverified"
)
UNLISTED_UNREADABLE = "{path} inside the folder of {owner} cannot be listed ({error})"
UNLISTED_HINT = "remove it and reinstall the distribution from a trusted source"

#: What findings say of ``__pycache__`` entries that run in place of, or beside, verified code.
PYC_UNCHECKED = (
    "{path} is hash-based bytecode marked unchecked: Python runs it in place of the verified "
    "source without comparing the two, whatever it holds"
)
PYC_STRAY = (
    "{path} is not named as cached bytecode (<source stem>.<cache tag>[.opt-N].pyc): "
    "__pycache__ is a namespace package, so it is importable as a module of its own"
)
PYC_CODE = (
    "{path} is code inside a __pycache__ folder, which Python never writes there: it is "
    "importable as a module of its own"
)
PYC_HINT = "delete the __pycache__ folder (Python rebuilds it from the verified sources)"

#: The name the import system gives cached bytecode (importlib.util.cache_from_source).
_CACHED_PYC = re.compile(
    r"(?P<stem>.+?)\.(?!opt-)[a-z]+-?\d+(?:\.opt-[A-Za-z0-9]+)?\.pyc", re.DOTALL
)
_SOURCE_SUFFIXES = tuple(importlib.machinery.SOURCE_SUFFIXES)

#: virtualenv (not the stdlib venv) writes these two files into every environment
#: it creates; pyvenv.cfg names it. They are the environment's, not a package's.
_VIRTUALENV_FILES = frozenset({"_virtualenv.pth", "_virtualenv.py"})


class Owner(NamedTuple):
    """A distribution's claim on one file: what its RECORD says the file is.

    A NamedTuple, not a dataclass: a torch-sized environment has 35,000 of them
    and the index is built on every gated run.
    """

    dist: InstalledDistribution
    relative: str  # the path as RECORD writes it, relative to the site directory
    hash: str  # RECORD spelling, "alg=b64", or empty
    size: str


@dataclass
class VerificationStats:
    """What the report says about the work done (counts, cache use, time)."""

    files_verified: int = 0
    from_cache: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0
    not_verifiable: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self) -> str:
        skipped = sum(self.not_verifiable.values())
        reasons = ", ".join(
            f"{count:,} {why}" for why, count in sorted(self.not_verifiable.items())
        )
        text = (
            f"verified {self.files_verified:,} installed files against RECORD "
            f"({self.from_cache:,} from the hash cache, {self.bytes_hashed / 1e6:,.0f} MB hashed) "
            f"in {self.seconds:.2f} s"
        )
        if skipped:
            text += f"; {skipped:,} not verifiable ({reasons})"
        return text


@dataclass
class Ownership:
    """What the RECORDs of an environment claim, gathered in one pass over every row.

    ``claims`` maps each absolute path whose RECORD row can be verified to the
    distributions listing it: files legitimately owned by two distributions
    (a namespace ``__init__.py``) are resolved there, before anything is
    flagged. ``top_level`` maps each site directory to its owned top-level
    names and who owns them, for finding code that nobody owns.
    """

    claims: dict[str, list[Owner]] = field(default_factory=dict)
    top_level: dict[str, dict[str, str]] = field(default_factory=dict)
    not_verifiable: dict[str, int] = field(default_factory=dict)
    #: Every absolute path that a RECORD row with a hash claims (and that was verified).
    files: Set[str] = field(default_factory=set)
    #: Per site directory: top-level names owned only through ``top_level.txt`` (no RECORD),
    #: whose folders cannot be checked file by file.
    unverified_tops: dict[str, set[str]] = field(default_factory=dict)
    #: Per distribution (metadata path): the top-level names its RECORD claims and
    #: what it counts as not verifiable, for the record cache.
    dist_tops: dict[str, list[str]] = field(default_factory=dict)
    dist_skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per distribution (metadata path): the absolute paths its own RECORD lists with a hash.
    dist_files: dict[str, list[str]] = field(default_factory=dict)


def ownership_index(distributions: Iterable[InstalledDistribution]) -> Ownership:
    """Read every RECORD once (it runs on every gated run: keep the loop lean)."""
    ownership = Ownership()
    claims = ownership.claims
    outside: list[str] = []
    locations: set[str] = set()
    for dist in distributions:
        location = os.path.normpath(dist.location)
        locations.add(location)
        ownership.top_level.setdefault(location, {})
        if dist.record_state != RECORD_OK:
            _add_unverified(ownership, location, dist)
            continue
        rows = dist.record_rows
        if rows is None:
            try:
                text = Path(dist.metadata_path, "RECORD").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # the snapshot already reported an unreadable RECORD
            rows = tuple(iter_record_rows(text))
        base = location + os.sep
        metadata_dir = os.path.basename(dist.metadata_path)
        own_tops: dict[str, None] = {}
        own_skipped: dict[str, int] = {}
        own_files: list[str] = []
        for relative, hash_text, size in rows:
            # One normalisation for the digest, ownership and verification
            # (record.site_relative): a row judged by its raw text in one place and
            # by the file it names in another vouched for files the digest never saw.
            inside = site_relative(relative, location)
            judged = relative if inside is None else inside
            if judged.endswith((".pyc", ".pyo")):
                own_skipped["compiled .pyc files"] = own_skipped.get("compiled .pyc files", 0) + 1
                continue
            folder, _, filename = judged.rpartition("/")
            if filename in _RECORD_FILES and folder == metadata_dir:
                own_skipped["RECORD files"] = own_skipped.get("RECORD files", 0) + 1
                continue
            if not hash_text:
                # A row without a hash owns nothing: not its file, and not the top-level
                # name it starts with (`zz.pth/__pycache__/x,,` must not make zz.pth owned).
                own_skipped["rows without a hash"] = own_skipped.get("rows without a hash", 0) + 1
                continue
            if inside is not None:
                if is_installer_generated(inside, metadata_dir) and folder != metadata_dir:
                    # Left out of the content digest (a __pycache__ entry), so it owns
                    # nothing: only a row the lock covers may vouch for a file.
                    own_skipped["rows inside __pycache__"] = (
                        own_skipped.get("rows inside __pycache__", 0) + 1
                    )
                    continue
                own_tops[inside.partition("/")[0]] = None
                absolute = base + inside if os.sep == "/" else base + inside.replace("/", os.sep)
            else:
                absolute = row_file(relative, base)
                outside.append(absolute)
            own_files.append(absolute)
            owner = Owner(dist, relative, hash_text, size)
            listed = claims.get(absolute)
            if listed is None:
                claims[absolute] = [owner]
            else:
                listed.append(owner)
        _add_owned(ownership, location, dist, list(own_tops), own_skipped)
        ownership.dist_files[dist.metadata_path] = own_files
    foreign = _foreign(outside, locations)
    if foreign:  # keep the ones a row inside its own site directory claims too
        foreign = {
            path
            for path in foreign
            if all(site_relative(o.relative, o.dist.location) is None for o in claims[path])
        }
    ownership.files = set(claims).difference(foreign) if foreign else claims.keys()
    return ownership


def _foreign(outside: Iterable[str], locations: Iterable[str]) -> set[str]:
    """Files in some site directory that a row from outside its own site directory names.

    Such a row (``../../../bin/x``, an absolute path) is verified, but the content
    digest leaves it out, so it may not vouch for code: not for a file in another
    site directory on the path (the user site, a ``--path`` folder), which it
    could otherwise name to make an added module look listed.
    """
    bases = tuple(os.path.join(location, "") for location in locations)
    return {path for path in outside if path.startswith(bases)}


def _add_unverified(ownership: Ownership, location: str, dist: InstalledDistribution) -> None:
    """Without RECORD (legacy egg-info, distribution-packaged Pythons that strip it),
    top_level.txt is the best word on what a package owns; its files are counted as
    not verifiable, not as strays, and its folders are not checked file by file."""
    names = _top_level_names(dist)
    _add_owned(ownership, location, dist, sorted(names), {})
    ownership.unverified_tops.setdefault(location, set()).update(names)


def _add_owned(
    ownership: Ownership,
    location: str,
    dist: InstalledDistribution,
    names: list[str],
    skipped: dict[str, int],
) -> None:
    """Merge one distribution's top-level names and not-verifiable counts into the index."""
    tops = ownership.top_level.setdefault(location, {})
    for name in names:
        tops.setdefault(name, dist.name)
    for reason, count in skipped.items():
        ownership.not_verifiable[reason] = ownership.not_verifiable.get(reason, 0) + count
    ownership.dist_tops[dist.metadata_path] = names
    ownership.dist_skipped[dist.metadata_path] = skipped


def _expected_digest(hash_text: str) -> tuple[Digest | None, bool]:
    """The digest a RECORD row promises, and whether it was spelled in hex (a known bug)."""
    try:
        return Digest.from_record(hash_text), False
    except DigestError:
        pass
    algorithm, _, value = hash_text.partition("=")
    try:
        return Digest(algorithm.lower(), bytes.fromhex(value)), True
    except (ValueError, DigestError):
        return None, False


def _fingerprint(dist: InstalledDistribution, paths: list[str]) -> str | None:
    """The distribution's RECORD and the stat of every file it lists; None if one is gone.

    The paths themselves need not be hashed: they come in RECORD order, and
    RECORD's content digest (which covers them) is part of the fingerprint.
    """
    numbers = array("q")
    for path in paths:
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            return None
        numbers.extend((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    hasher = hashlib.sha256(f"{dist.metadata_path}\0{dist.content}\0{len(paths)}\n".encode())
    hasher.update(numbers.tobytes())
    return hasher.hexdigest()


def verify_installed_files(
    snapshot: Snapshot,
    *,
    cache_dir: Path | None = None,
    rehash: bool = False,
    quirks: Sequence[RecordQuirk] | None = None,
    progress: Callable[[int, int], None] | None = None,
    record_cache: RecordCache | None = None,
) -> tuple[list[Finding], VerificationStats, Ownership]:
    """Hash every file RECORD lists and compare; return findings, stats and the ownership.

    With *cache_dir*, two caches make re-runs cheap: per distribution, the stat
    fingerprint under which all its files last matched (then its files are only
    stat-ed), and per file, its digest keyed by its stat (then only changed
    files are read). *rehash* ignores both and writes them afresh. With a
    *record_cache* too, a warm run where nothing changed reads no RECORD.
    """
    started = time.perf_counter()
    known_quirks = _Quirks(quirks)
    # Hidden (shadowed) copies are installed bytes too, and they own their files.
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    if cache_dir is not None and record_cache is not None and not rehash:
        warm = _unchanged_since_last_run(everything, cache_dir, record_cache)
        if warm is not None:
            warm[1].seconds = time.perf_counter() - started
            return warm
    ownership = ownership_index(everything)
    checkable = ownership.claims
    stats = VerificationStats(not_verifiable=dict(ownership.not_verifiable))
    by_dist: dict[str, list[str]] = defaultdict(list)
    for absolute, claims in checkable.items():
        for owner in claims:
            by_dist[owner.dist.metadata_path].append(absolute)

    verdicts, note = VerdictCache(), None
    if cache_dir is not None and not rehash:
        verdicts, note = VerdictCache.load(cache_dir / VERDICT_CACHE_FILE)
    if note:
        stats.notes.append(note)
    dists = {dist.metadata_path: dist for dist in everything}
    fingerprints = {key: _fingerprint(dists[key], paths) for key, paths in by_dist.items()}
    unchanged = {
        key
        for key, print_ in fingerprints.items()
        if print_ is not None and verdicts.matches(key, print_)
    }
    to_hash = [
        path
        for path, claims in checkable.items()
        if any(owner.dist.metadata_path not in unchanged for owner in claims)
    ]

    cache: HashCache | None = None
    if cache_dir is not None and to_hash:
        cache = HashCache()
        if not rehash:
            cache, note = HashCache.load(cache_dir / HASH_CACHE_FILE)
            if note:
                stats.notes.append(note)
    requests = [(path, _algorithm_of(checkable[path][0].hash)) for path in to_hash]
    run: HashRun = hash_many(requests, cache=cache, progress=progress)
    findings: list[Finding] = []
    troubled: set[str] = set()
    for path in to_hash:
        judged = list(_judge(path, checkable[path], run, known_quirks))
        if judged:
            findings.extend(judged)
            troubled.update(owner.dist.metadata_path for owner in checkable[path])

    for key, print_ in fingerprints.items():
        if print_ is not None and key not in troubled:
            verdicts.record(key, print_)
        else:
            verdicts.forget(key)
    if record_cache is not None:
        _remember_ownership(record_cache, everything, ownership, by_dist)
    if cache_dir is not None:
        try:
            verdicts.save(cache_dir / VERDICT_CACHE_FILE)
            if cache is not None:
                cache.keep(path for key in unchanged for path in by_dist[key])
                cache.save(cache_dir / HASH_CACHE_FILE)
        except OSError as exc:
            stats.notes.append(f"the hash cache in {cache_dir} could not be written: {exc}")
    stats.files_verified = len(checkable)
    stats.from_cache = len(checkable) - len(to_hash) + run.from_cache
    stats.bytes_hashed = run.bytes_hashed
    stats.seconds = time.perf_counter() - started
    return findings, stats, ownership


def _remember_ownership(
    record_cache: RecordCache,
    everything: Sequence[InstalledDistribution],
    ownership: Ownership,
    by_dist: Mapping[str, list[str]],
) -> None:
    """Keep what each RECORD claims, so the next warm run need not parse it."""
    for dist in everything:
        key = dist.metadata_path
        if dist.record_stat is None or key not in ownership.dist_tops:
            continue
        base = os.path.normpath(dist.location) + os.sep
        paths = [p[len(base) :] if p.startswith(base) else p for p in by_dist.get(key, [])]
        record_cache.put_ownership(
            key, dist.record_stat, paths, ownership.dist_tops[key], ownership.dist_skipped[key]
        )


def _unchanged_since_last_run(
    everything: Sequence[InstalledDistribution], cache_dir: Path, record_cache: RecordCache
) -> tuple[list[Finding], VerificationStats, Ownership] | None:
    """The warm path: every RECORD and every file as when last verified clean, or None.

    Uses what the record cache kept of each RECORD (its files, its top-level
    names) and the per-distribution verdicts: if every distribution's
    fingerprint (the stat of every file it lists) is unchanged, nothing needs
    reading. Anything else (a new or changed distribution, one changed file)
    returns None and the full verification runs.
    """
    verdicts, note = VerdictCache.load(cache_dir / VERDICT_CACHE_FILE)
    if note:
        return None
    ownership = Ownership()
    checked: set[str] = set()
    outside: list[str] = []
    locations: set[str] = set()
    for dist in everything:
        location = os.path.normpath(dist.location)
        locations.add(location)
        if dist.record_state != RECORD_OK:
            _add_unverified(ownership, location, dist)
            continue
        cached = record_cache.ownership(dist.metadata_path, dist.record_stat)
        if cached is None:
            return None
        relative_paths, names, skipped = cached
        base = location + os.sep
        paths = [p if os.path.isabs(p) else base + p for p in relative_paths]
        outside.extend(p for p in relative_paths if os.path.isabs(p))
        fingerprint = _fingerprint(dist, paths)
        if fingerprint is None or not verdicts.matches(dist.metadata_path, fingerprint):
            return None
        checked.update(paths)
        _add_owned(ownership, location, dist, names, skipped)
        ownership.dist_files[dist.metadata_path] = paths
    foreign = _foreign(outside, locations)
    if foreign:
        return None  # rare (a row naming a file in another site directory): the cold path judges
    ownership.files = checked
    stats = VerificationStats(not_verifiable=dict(ownership.not_verifiable))
    stats.files_verified = stats.from_cache = len(checked)
    return [], stats, ownership


def _algorithm_of(hash_text: str) -> str:
    return hash_text.partition("=")[0].lower()


def _judge(
    absolute: str,
    claims: list[Owner],
    run: HashRun,
    quirks: _Quirks,
) -> Iterator[Finding]:
    outcome = run.outcomes[absolute]
    owner = claims[0]
    if outcome.digest is not None:
        # The common case, decided on strings: the file matches a claim's RECORD
        # spelling and size. Parsing every row's hash would double a cold run.
        spelled = outcome.digest.to_record()
        for claim in claims:
            algorithm, _, value = claim.hash.partition("=")
            if f"{algorithm.lower()}={value.rstrip('=')}" == spelled and (
                not claim.size or claim.size == str(outcome.size)
            ):
                return
    dist = owner.dist
    names = ", ".join(sorted({f"{o.dist.name} {o.dist.version}" for o in claims}))
    checkable: list[tuple[Owner, Digest, bool]] = []
    for claim in claims:
        digest, hex_spelled = _expected_digest(claim.hash)
        if digest is None:
            yield Finding.of(
                Kind.NOT_VERIFIABLE,
                dist.name,
                f"{names}: RECORD's hash for {owner.relative} cannot be read: {claim.hash!r}",
                location=absolute,
            )
            return
        checkable.append((claim, digest, hex_spelled))
    outside = site_relative(owner.relative, owner.dist.location) is None
    if outcome.digest is None:
        if outcome.error == "missing":
            yield _maybe_quirk(
                Finding.of(
                    Kind.FILE_MISSING,
                    dist.name,
                    f"{names}: {owner.relative} is listed in RECORD but missing",
                    expected=owner.relative,
                    actual="missing",
                    hint=_reinstall_hint(dist),
                    location=absolute,
                ),
                quirks,
                owner,
                "missing",
            )
        else:
            yield Finding.of(
                Kind.FILE_MODIFIED,
                dist.name,
                f"{names}: {owner.relative} cannot be read: {outcome.error}",
                expected=str(checkable[0][1]),
                actual=str(outcome.error),
                location=absolute,
            )
        return
    matching = [(o, d, h) for o, d, h in checkable if d == outcome.digest]
    if matching:
        owner_match, _, hex_spelled = matching[0]
        if hex_spelled:
            yield Finding.of(
                Kind.KNOWN_QUIRK,
                owner_match.dist.name,
                f"{owner_match.dist.name} {owner_match.dist.version}: RECORD spells hashes in "
                "hex instead of urlsafe base64 (a known build-backend bug); the files match",
                location=owner_match.dist.metadata_path,
            )
        size = owner_match.size
        if size and outcome.size is not None and size.isdigit() and int(size) != outcome.size:
            yield Finding.of(
                Kind.SIZE_MISMATCH,
                dist.name,
                f"{names}: {owner.relative} has the recorded hash but RECORD says {size} bytes "
                f"and it has {outcome.size}",
                expected=size,
                actual=str(outcome.size),
                hint=_reinstall_hint(dist),
                location=absolute,
            )
        return
    recorded = " or ".join(sorted({str(d) for _, d, _ in checkable}))
    actual_digest = str(outcome.digest)
    sizes = f"; RECORD size {owner.size}, on disk {outcome.size}" if owner.size else ""
    finding = Finding.of(
        Kind.FILE_MODIFIED,
        dist.name,
        f"{names}: {owner.relative} was modified after installation: RECORD {_short(recorded)}, "
        f"on disk {_short(actual_digest)}{sizes}",
        expected=recorded,
        actual=actual_digest,
        hint=_reinstall_hint(dist),
        location=absolute,
    )
    if outside:
        # Console scripts and data files outside the site directory: installers
        # and environment relocation tools rewrite them (shebangs), so a
        # difference there is worth a look but is not proof of tampering.
        finding = Finding(
            finding.kind,
            Severity.WARNING,
            finding.subject,
            finding.message + " (outside the site directory; scripts are rewritten by some "
            "installers and relocation tools)",
            finding.expected,
            finding.actual,
            finding.hint,
            finding.location,
        )
    yield _maybe_quirk(finding, quirks, owner, "hash")


def _short(digests: str) -> str:
    return " or ".join(d[: d.index(":") + 13] if ":" in d else d for d in digests.split(" or "))


def _reinstall_hint(dist: InstalledDistribution) -> str:
    return (
        f"reinstall it from a trusted source: "
        f"`pip install --force-reinstall --no-deps '{dist.name}=={dist.version}'`"
    )


class _Quirks:
    """The reviewed RECORD quirks, read only when a mismatch needs explaining.

    A clean run never pays for reading the data file (or importing packaging's
    specifiers), which is the common case.
    """

    def __init__(self, quirks: Sequence[RecordQuirk] | None) -> None:
        self._quirks = quirks

    def find(self, owner: Owner, mismatch: str) -> RecordQuirk | None:
        from pytest_mlsupply.quirks import find_quirk, load_quirks

        if self._quirks is None:
            self._quirks = load_quirks()
        dist = owner.dist
        return find_quirk(self._quirks, dist.name, dist.version, owner.relative, mismatch)


def _maybe_quirk(finding: Finding, quirks: _Quirks, owner: Owner, mismatch: str) -> Finding:
    """Downgrade a finding that a reviewed, published RECORD quirk explains."""
    quirk = quirks.find(owner, mismatch)
    if quirk is None:
        return finding
    return Finding.of(
        Kind.KNOWN_QUIRK,
        finding.subject,
        f"{finding.message}; a known quirk of this release, not tampering: {quirk.reason}",
        expected=finding.expected,
        actual=finding.actual,
        hint=f"see {quirk.reference}",
        location=finding.location,
    )


# ------------------------------------------------------------------ unowned code


def site_directories(snapshot: Snapshot) -> list[str]:
    """The directories whose ``.pth`` files the interpreter runs at start-up.

    Those are the site directories (``site.getsitepackages()``, the user site)
    among the searched entries, plus every entry that holds installed
    distributions (another environment's site-packages given with ``--path``).
    """
    known = {os.path.normpath(p) for p in site.getsitepackages()}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        known.add(os.path.normpath(user_site))
    holding = {os.path.normpath(d.location) for d in snapshot.distributions}
    result: list[str] = []
    for entry in snapshot.search_path:
        normalized = os.path.normpath(os.path.abspath(entry))
        wanted = normalized in known or normalized in holding
        if wanted and normalized not in result and os.path.isdir(normalized):
            result.append(normalized)
    return result


def site_python_version(site_dir: str) -> tuple[int, int]:
    """The Python version whose ``site`` reads *site_dir*: from the path, else pyvenv.cfg.

    The check follows the interpreter of the checked environment (``--path`` can name
    another one), not the interpreter running the check.
    """
    parts = Path(site_dir).parts
    for part in reversed(parts):
        match = _PYTHON_DIR.fullmatch(part)
        if match:
            return int(match[1]), int(match[2])
    folder = Path(site_dir)
    for candidate in list(folder.parents)[:3]:
        try:
            text = (candidate / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version", "version_info"):
                match = _VERSION.match(value.strip())
                if match:
                    return int(match[1]), int(match[2])
    return sys.version_info[0], sys.version_info[1]


_PYTHON_DIR = re.compile(r"python(\d+)\.(\d+)t?")
_VERSION = re.compile(r"(\d+)\.(\d+)")


def _executable_pth_lines(path: str, version: tuple[int, int] | None = None) -> list[str]:
    """Lines ``site`` executes: those starting with ``import`` and a space or tab.

    Raises ``OSError`` when the file cannot be read.
    """
    return [line for line in _pth_lines(path, version) if line.startswith(("import ", "import\t"))]


def _pth_lines(path: str, version: tuple[int, int] | None = None) -> list[str]:
    """Every line of a ``.pth`` file as ``site.addpackage`` of the checked Python splits it.

    Follows ``site.addpackage`` of the checked environment's Python (CPython
    Lib/site.py). 3.10 to 3.12 read the file through ``io.TextIOWrapper(...,
    encoding="locale")``: universal newlines (``\\n``, ``\\r``, ``\\r\\n``) and a
    UTF-8 BOM kept as U+FEFF, so a BOM-prefixed first line is a path, not code.
    3.13 decodes the bytes as ``utf-8-sig`` (the BOM is dropped, so that line
    runs), falls back to the locale encoding, and splits with ``str.splitlines``,
    which also breaks at ``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028
    and U+2029. For the locale encoding, latin-1 stands in: every ASCII-compatible
    encoding agrees on an ASCII ``import`` at a line start, and an undecodable
    file fails closed (its import lines count). 3.13 also skips files with the
    hidden flag (BSD, macOS); they are still reported here.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as stream:
        return _split_pth(stream.read(), version)


def _split_pth(data: bytes, version: tuple[int, int] | None) -> list[str]:
    major_minor = version or (sys.version_info[0], sys.version_info[1])
    if major_minor >= (3, 13):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return text.splitlines()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _pth_targets(path: str, site_dir: str, version: tuple[int, int]) -> list[str]:
    """What the path lines of a ``.pth`` file put on ``sys.path``: existing files and folders.

    ``site.addpackage`` skips ``#`` comments, blank and ``import`` lines, strips the
    line's end, joins it to the site directory and appends it when ``os.path.exists``
    holds, file or folder alike. A file is then searched by ``zipimport``. A file that
    is not ASCII is also read as UTF-8 and Latin-1 with both line splittings, so a
    locale that reads it differently hides no path (fail closed).

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as stream:
        data = stream.read()
    readings = [_split_pth(data, version)]
    if not data.isascii():
        for text in (data.decode("utf-8", "replace"), data.decode("latin-1")):
            readings += [
                text.splitlines(),
                text.replace("\r\n", "\n").replace("\r", "\n").split("\n"),
            ]
    found: dict[str, None] = {}
    for lines in readings:
        for line in lines:
            if line.startswith("#") or not line.strip() or line.startswith(("import ", "import\t")):
                continue
            try:
                target = os.path.abspath(os.path.join(site_dir, line.rstrip()))
                if os.path.exists(target):
                    found.setdefault(target, None)
            except ValueError:  # an embedded NUL: os.path.exists is False, site skips it
                continue
    return list(found)


def _created_by_virtualenv(site_dir: str) -> bool:
    for candidate in (Path(site_dir).parents[1], Path(site_dir).parents[2]):
        cfg = candidate / "pyvenv.cfg"
        try:
            text = cfg.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        return any(line.split("=")[0].strip() == "virtualenv" for line in text.splitlines())
    return False


def find_unowned_code(
    snapshot: Snapshot,
    ownership: Ownership,
    *,
    cache_dir: Path | None = None,
    rehash: bool = False,
) -> Iterator[Finding]:
    """Code in site directories that no RECORD lists with a hash.

    Top-level entries are judged by name (start-up hooks, stray modules); the
    folder of every distribution with a RECORD is walked, and each code file in
    it (``_is_code``) must be one its RECORD lists with a hash, or it is an
    error: an added ``extra.py``, a ``core/__init__.py`` shadowing a verified
    ``core.py``, a sourceless ``.pyc``, a dropped-in ``.so``. Each ``.dist-info``
    with a RECORD is walked too (``_unlisted_metadata``). With *cache_dir*,
    a site directory whose walk found nothing is not walked again while every
    folder in it keeps its stat (``_WalkCache``).
    """
    walks = _WalkCache.load(cache_dir, rehash, snapshot)
    findings: list[Finding] = []
    with_record: dict[str, list[InstalledDistribution]] = defaultdict(list)
    for dist in (*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)):
        if dist.record_state == RECORD_OK:
            with_record[os.path.normpath(dist.location)].append(dist)
    plans: dict[str, tuple[dict[str, str], dict[str, str], set[str]]] = {}
    for site_dir in site_directories(snapshot):
        owned = ownership.top_level.get(site_dir, {})
        # A folder some RECORD claims is walked even when a RECORD-less distribution
        # names it too: a top_level.txt anyone can write must not switch the walk off.
        claimed: dict[str, str] = {}
        for dist in with_record.get(site_dir, ()):
            for name in ownership.dist_tops.get(dist.metadata_path, ()):
                claimed.setdefault(name, dist.name)
        unverified = ownership.unverified_tops.get(site_dir, set()) - claimed.keys()
        plans[site_dir] = (owned, claimed, unverified)
    places = _Places(
        ownership.files,
        {
            os.path.realpath(site_dir): frozenset(
                name
                for name in owned
                if name not in unverified and not name.endswith((".egg-info", ".egg-link"))
            )
            for site_dir, (owned, _, unverified) in plans.items()
        },
    )
    for site_dir, (owned, claimed, unverified) in plans.items():
        by_virtualenv = _created_by_virtualenv(site_dir)
        try:
            entries = sorted(os.scandir(site_dir), key=lambda e: e.name)
        except OSError:
            continue
        version = site_python_version(site_dir)
        tops = [entry for entry in entries if _walked(entry, owned, unverified)]
        owners = {entry.name: claimed.get(entry.name, owned[entry.name]) for entry in tops}
        key = walks.key(site_dir, sorted(owners.items()))
        walked: list[Finding] = []
        names = frozenset(entry.name for entry in entries)
        for entry in entries:
            findings.extend(
                _judge_entry(
                    entry, owned, by_virtualenv, version, ownership.files, unverified, places
                )
            )
            if entry.name == "__pycache__" and _is_folder(entry):
                findings.extend(_top_level_pycache(entry.path, names))
        if not walks.unchanged(site_dir, key):
            started = time.time_ns()
            folders: list[tuple[str, tuple[int, ...]]] = []
            for entry in tops:
                walked.extend(
                    _unlisted_code(entry.path, owners[entry.name], ownership.files, folders)
                )
            for dist in with_record.get(site_dir, ()):
                own = ownership.dist_files.get(dist.metadata_path, ())
                walked.extend(_unlisted_metadata(dist, own, folders))
            walks.record(site_dir, key, folders, clean=not walked, started=started)
        findings.extend(walked)
    walks.save()
    return iter(findings)


INTRUDER = (
    "{path} is inside the folder of {owner}, which the lock names, but only {intruder}, "
    "which the lock does not name, lists it in its RECORD{differs}: the lock does not vouch "
    "for it"
)
INTRUDER_DIFFERS = " (with a hash no locked distribution gives it)"
INTRUDER_HINT = (
    "if {intruder} belongs there (a plugin or part of a shared namespace), add it to the lock; "
    "otherwise uninstall it and reinstall {owner}"
)


def find_intruders(snapshot: Snapshot, ownership: Ownership, locked: Set[str]) -> list[Finding]:
    """Files in a locked distribution's folder that only an unlocked distribution vouches for.

    A RECORD proves a file is what its distribution shipped, not that the lock
    accepted that distribution: an unlocked ``evil`` listing ``numpy/evil.py``
    (or ``numpy-2.0.dist-info/entry_points.txt``) with a hash would make the file
    owned, and only the warning ``unexpected`` would tell. Such a file is an error
    when it is code or metadata, else a warning, unless a locked distribution
    lists the same path with the same hash (a namespace ``__init__.py``). Only
    unlocked distributions' RECORDs are read, so a fully locked environment pays
    nothing. *locked* holds canonical names.
    """
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    unlocked = [d for d in everything if d.name not in locked and d.record_state == RECORD_OK]
    if not unlocked:
        return []
    folders: dict[tuple[str, str], str] = {}
    for dist in everything:
        if dist.name in locked:
            location = os.path.normpath(dist.location)
            for top in ownership.dist_tops.get(dist.metadata_path, ()):
                folders.setdefault((location, top), dist.name)
    suspects: dict[str, list[tuple[InstalledDistribution, str, str, str]]] = defaultdict(list)
    for dist in unlocked:
        location = os.path.normpath(dist.location)
        for top, hash_text, absolute in _hashed_rows(dist):
            owner = folders.get((location, top))
            if owner is not None:
                suspects[absolute].append((dist, owner, hash_text, top))
    if not suspects:
        return []
    involved = {owner for claims in suspects.values() for _, owner, _, _ in claims}
    vouched: dict[str, set[str]] = defaultdict(set)
    for dist in everything:
        if dist.name in involved and dist.record_state == RECORD_OK:
            for _, hash_text, absolute in _hashed_rows(dist):
                if absolute in suspects:
                    vouched[absolute].add(hash_text)
    findings: list[Finding] = []
    for absolute, claims in sorted(suspects.items()):
        for dist, owner, hash_text, top in claims:
            if hash_text in vouched.get(absolute, ()):
                continue
            serious = _is_code(os.path.basename(absolute)) or top.endswith(".dist-info")
            differs = INTRUDER_DIFFERS if absolute in vouched else ""
            finding = Finding.of(
                Kind.UNOWNED_MODULE,
                dist.name,
                INTRUDER.format(path=absolute, owner=owner, intruder=dist.name, differs=differs),
                expected=f"listed by a locked distribution ({owner})",
                actual=f"listed only by {dist.name} {dist.version}, not locked",
                hint=INTRUDER_HINT.format(intruder=dist.name, owner=owner),
                location=absolute,
            )
            if serious:
                finding = dataclasses.replace(finding, severity=Severity.ERROR)
            findings.append(finding)
    return findings


def _hashed_rows(dist: InstalledDistribution) -> Iterator[tuple[str, str, str]]:
    """(top-level name, normalised hash, absolute path) of each hashed row in the site dir."""
    rows = dist.record_rows
    if rows is None:
        try:
            text = Path(dist.metadata_path, "RECORD").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # the snapshot already reported an unreadable RECORD
        rows = tuple(iter_record_rows(text))
    base = os.path.normpath(dist.location)
    for relative, hash_text, _ in rows:
        if not hash_text:
            continue  # they own nothing (ownership_index)
        inside = site_relative(relative, dist.location)  # the one normalisation
        if inside is None or inside.endswith((".pyc", ".pyo")):
            continue
        algorithm, _, value = hash_text.partition("=")
        absolute = os.path.normpath(os.path.join(base, inside))
        top = inside.partition("/")[0]
        yield top, f"{algorithm.lower()}={value.rstrip('=')}", absolute


class _WalkCache:
    """Per site directory, the stat of every folder walked when the walk last found nothing.

    Adding, removing or renaming an entry changes its folder's mtime and ctime,
    so when every folder has the stat it had, the walk would find what it found:
    nothing. The key covers the walked top-level names and every RECORD's stat
    (what the verified set is made of). Only a clean walk is kept; a walk with a
    finding removes the entry. Same threat model as the hash cache; without a
    record cache (no RECORD stats) nothing is kept.
    """

    def __init__(self, path: Path | None, entries: dict[str, Any], records: str | None) -> None:
        self._path = path
        self._entries = entries
        self._records = records
        self._changed = False

    @classmethod
    def load(cls, cache_dir: Path | None, rehash: bool, snapshot: Snapshot) -> _WalkCache:
        if cache_dir is None:
            return cls(None, {}, None)
        everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
        hasher = hashlib.sha256()
        for dist in sorted(everything, key=lambda d: d.metadata_path):
            if dist.record_state == RECORD_OK and dist.record_stat is None:
                return cls(None, {}, None)  # RECORD's stat was not taken when it was read
            hasher.update(
                f"{dist.metadata_path}\0{dist.record_state}\0{dist.record_stat}\n".encode()
            )
        path = cache_dir / WALK_CACHE_FILE
        entries: dict[str, Any] = {}
        if not rehash:
            try:
                document = json.loads(path.read_bytes())
                if document.get("version") == 1 and isinstance(document.get("walks"), dict):
                    entries = document["walks"]
            except (OSError, ValueError, AttributeError, RecursionError):
                entries = {}
        return cls(path, entries, hasher.hexdigest())

    def key(self, site_dir: str, tops: list[tuple[str, str]]) -> str:
        text = json.dumps([self._records, site_dir, sorted(tops)])
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    def unchanged(self, site_dir: str, key: str) -> bool:
        entry = self._entries.get(site_dir)
        if self._path is None or not isinstance(entry, dict) or entry.get("key") != key:
            return False
        folders = entry.get("folders")
        if not isinstance(folders, list):
            return False
        try:
            for folder, *numbers in folders:
                if numbers != list(_folder_stat(folder)):
                    return False
        except (OSError, TypeError, ValueError):
            return False
        return True

    def record(
        self,
        site_dir: str,
        key: str,
        folders: list[tuple[str, tuple[int, ...]]],
        *,
        clean: bool,
        started: int,
    ) -> None:
        """Keep a clean walk, unless a folder changed too close to it to trust its times.

        On filesystems with coarse timestamps (1 s on ext3 and HFS+, 2 s on FAT) a
        file added in the same tick as the walk would leave the folder's times
        unchanged; such a folder is "racy" (as git calls it) and the walk is not kept.
        """
        if self._path is None:
            return
        racy = started - RACY_WINDOW_NS
        if clean and all(max(numbers[2:]) < racy for _, numbers in folders):
            self._entries[site_dir] = {
                "key": key,
                "folders": [[folder, *numbers] for folder, numbers in folders],
            }
        else:
            self._entries.pop(site_dir, None)
        self._changed = True

    def save(self) -> None:
        if self._path is None or not self._changed:
            return
        with contextlib.suppress(OSError):  # only a cache: the next run walks again
            write_text_atomic(
                self._path,
                json.dumps({"version": 1, "walks": self._entries}, separators=(",", ":")),
            )


#: Folders whose mtime or ctime is this close to a walk (or later) do not let it be kept.
RACY_WINDOW_NS = 3_000_000_000


def _folder_stat(folder: str) -> tuple[int, ...]:
    st = os.stat(folder)
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _walked(entry: os.DirEntry[str], owned: Mapping[str, str], unverified: Set[str]) -> bool:
    """Whether a top-level entry is a folder of a distribution with RECORD (walked in full)."""
    name = entry.name
    if name not in owned or name in unverified or name == "__pycache__":
        return False
    return not name.endswith(_NOT_CODE_SUFFIXES) and _is_folder(entry)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_code(name: str) -> bool:
    """Whether a file name is one the interpreter or the dynamic loader may run."""
    return name.endswith(_CODE_SUFFIXES) or ".so." in name


def _unlisted_code(
    top: str, owner: str, verified: Set[str], folders: list[tuple[str, tuple[int, ...]]]
) -> Iterator[Finding]:
    """Every code file under *top* that no RECORD row with a hash claims.

    A ``.pyc`` inside ``__pycache__`` is skipped: the import system uses it only
    next to its source, and that source is judged itself. A scandir walk costs
    about 45 ms for torch, numpy, scipy, pandas and scikit-learn (35,000 files);
    each folder's stat is appended to *folders*, taken before it is listed.
    """
    stack: list[tuple[str, Set[str] | None]] = [(top, None)]
    while stack:
        folder, sources = stack.pop()
        try:
            folders.append((folder, _folder_stat(folder)))
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            yield _unlisted(UNLISTED_UNREADABLE, folder, owner, error=exc.strerror or str(exc))
            continue
        if sources is not None:
            yield from _judge_pycache(entries, sources, owner, folders)
            continue
        names: Set[str] | None = None
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name == "__pycache__" and names is None:
                        names = frozenset(e.name for e in entries)
                    stack.append((entry.path, names if name == "__pycache__" else None))
                    continue
                if entry.is_symlink() and entry.is_dir():
                    yield _unlisted(UNLISTED_SYMLINK, entry.path, owner)
                    continue
            except OSError as exc:
                yield _unlisted(UNLISTED_UNREADABLE, entry.path, owner, error=str(exc))
                continue
            if not _is_code(name) or entry.path in verified:
                continue
            if name.endswith(".pyc"):
                yield _unlisted(UNLISTED_CODE + UNLISTED_SOURCELESS, entry.path, owner)
            else:
                yield _unlisted(UNLISTED_CODE, entry.path, owner)


#: What installers write into a ``.dist-info`` after (or without) a hash in RECORD:
#: RECORD itself and its signatures; pip and uv list INSTALLER, REQUESTED and
#: direct_url.json with hashes, Poetry lists direct_url.json without one. A forged
#: direct_url.json changes the source the lock compares, so it is judged there.
_INSTALLER_WRITTEN = frozenset({*_RECORD_FILES, "INSTALLER", "REQUESTED", "direct_url.json"})

#: Metadata files that change what runs or what the distribution is: pytest loads the
#: ``pytest11`` entry points of every distribution, console scripts are entry points.
_BEHAVIOUR_METADATA = frozenset({"entry_points.txt", "METADATA", "top_level.txt"})

UNLISTED_METADATA = (
    "{path} is in the metadata folder of {owner}, but its RECORD does not list it with a hash"
)
UNLISTED_METADATA_BEHAVIOUR = (
    " (it changes what runs: pytest loads plugins and console scripts from entry points)"
)
UNLISTED_METADATA_HINT = "remove it and reinstall the distribution from a trusted source"


def _unlisted_metadata(
    dist: InstalledDistribution,
    own: Iterable[str],
    folders: list[tuple[str, tuple[int, ...]]],
) -> Iterator[Finding]:
    """Every file in *dist*'s ``.dist-info`` that its own RECORD does not list with a hash.

    Another distribution's RECORD row does not count (it would vouch for a file in
    a folder it does not own). An unlisted behaviour file or code file is an error;
    anything else (a stray note, a licence added later) a warning. Subfolders
    (``licenses/``, ``sboms/``) are walked too.
    """
    top = os.path.normpath(dist.metadata_path)
    prefix = top + os.sep
    listed = {path for path in own if path.startswith(prefix)}
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            folders.append((folder, _folder_stat(folder)))
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            error = exc.strerror or str(exc)
            yield _unlisted(UNLISTED_UNREADABLE, folder, dist.name, error=error)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
            except OSError as exc:
                yield _unlisted(UNLISTED_UNREADABLE, entry.path, dist.name, error=str(exc))
                continue
            name = entry.name
            if entry.path in listed or (folder == top and name in _INSTALLER_WRITTEN):
                continue
            if (name in _BEHAVIOUR_METADATA and folder == top) or _is_code(name):
                template = UNLISTED_METADATA + (
                    UNLISTED_METADATA_BEHAVIOUR if name == "entry_points.txt" else ""
                )
                yield _unlisted(template, entry.path, dist.name, hint=UNLISTED_METADATA_HINT)
            else:
                yield _unlisted(
                    UNLISTED_METADATA,
                    entry.path,
                    dist.name,
                    hint=UNLISTED_METADATA_HINT,
                    severity=Severity.WARNING,
                )


def _judge_pycache(
    entries: list[os.DirEntry[str]],
    sources: Set[str],
    owner: str,
    stats: list[tuple[str, tuple[int, ...]]],
) -> Iterator[Finding]:
    """Every entry of a ``__pycache__`` folder must be cached bytecode Python checks.

    *sources* are the names next to the folder. Python imports ``pkg.__pycache__.evil``
    from ``evil.pyc``, ``evil.py`` or ``evil/`` (a namespace portion), so anything but
    ``<stem>.<tag>[.opt-N].pyc`` is code of its own; one whose ``<stem>.py`` is gone
    is never imported at all (its name has dots). Of the cached
    bytecode only the 16-byte header is read (PEP 552; CPython
    Lib/importlib/_bootstrap_external.py ``_classify_pyc``): an unchecked hash-based
    ``.pyc`` replaces its source with no comparison. A checked one whose hash does not
    match is never used (recompiled instead), so it needs no finding, unless Python runs
    with ``--check-hash-based-pycs never``. A timestamp ``.pyc`` whose header copies
    the source's mtime and size is used unchecked too: not closed here. Each file's
    stat goes into *stats*, so the walk cache sees a header edited in place.
    """
    for entry in entries:
        name, path = entry.name, entry.path
        try:
            is_folder = entry.is_dir(follow_symlinks=False) or entry.is_dir()
        except OSError:
            is_folder = False
        if is_folder:
            yield _pyc_finding(PYC_CODE, path, owner)
            continue
        if not name.endswith(".pyc"):
            if _is_code(name):
                yield _pyc_finding(PYC_CODE, path, owner)
            continue
        match = _CACHED_PYC.fullmatch(name)
        if match is None:
            # Only a name that is an identifier before ``.pyc`` can be imported as
            # ``pkg.__pycache__.name``; pytest's own cache of rewritten plugin modules
            # (``core.cpython-311-pytest-9.2.0.pyc``) and other dotted names cannot.
            if name[: -len(".pyc")].isidentifier():
                yield _pyc_finding(PYC_STRAY, path, owner)
            continue
        if not any(match["stem"] + s in sources for s in _SOURCE_SUFFIXES):
            # Left behind by a removed source: never imported (the import system uses
            # cached bytecode only for a source, and a dotted name is no module name).
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                header = os.read(fd, 16)
            finally:
                os.close(fd)
        except OSError as exc:
            yield _unlisted(UNLISTED_UNREADABLE, path, owner, error=exc.strerror or str(exc))
            continue
        stats.append((path, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)))
        if len(header) >= 8 and int.from_bytes(header[4:8], "little") & 0b11 == 0b01:
            yield _pyc_finding(PYC_UNCHECKED, path, owner)


def _pyc_finding(template: str, path: str, owner: str) -> Finding:
    return Finding(
        Kind.UNOWNED_MODULE,
        Severity.ERROR,
        owner,
        template.format(path=path),
        "only bytecode Python checks against a verified source",
        "unverified code in __pycache__",
        PYC_HINT,
        path,
    )


def _top_level_pycache(folder: str, sources: Set[str]) -> list[Finding]:
    """The site directory's own ``__pycache__`` (top-level modules), judged on every run."""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as exc:
        return [_unlisted(UNLISTED_UNREADABLE, folder, "__pycache__", error=str(exc))]
    return list(_judge_pycache(entries, sources, "__pycache__", []))


def _unlisted(
    template: str,
    path: str,
    owner: str,
    error: str = "",
    *,
    hint: str = UNLISTED_HINT,
    severity: Severity = Severity.ERROR,
) -> Finding:
    finding = Finding.of(
        Kind.UNOWNED_MODULE,
        owner,
        template.format(path=path, owner=owner, error=error),
        expected="listed with a hash in a RECORD",
        actual="not listed",
        hint=hint,
        location=path,
    )
    # Inside a distribution's folder an unlisted file is an error, not the
    # default warning: it runs with the distribution's verified code (issue 11).
    return Finding(
        finding.kind,
        severity,
        finding.subject,
        finding.message,
        finding.expected,
        finding.actual,
        finding.hint,
        finding.location,
    )


def _top_level_names(dist: InstalledDistribution) -> set[str]:
    try:
        text = (Path(dist.metadata_path) / "top_level.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    names = {line.strip() for line in text.splitlines() if line.strip()}
    return names | {f"{name}.py" for name in names}


def _judge_entry(
    entry: os.DirEntry[str],
    owned: dict[str, str],
    by_virtualenv: bool,
    version: tuple[int, int] | None = None,
    verified: Set[str] | None = None,
    unverified: Set[str] = frozenset(),
    places: _Places | None = None,
) -> Iterator[Finding]:
    name = entry.name
    path = entry.path
    # Start-up code is owned only by a RECORD row with a hash for that very file: a
    # name in top_level.txt (no RECORD) or a hashless row proves nothing about it.
    hashed = verified is None or path in verified
    if name.endswith(_NOT_CODE_SUFFIXES) or name == "__pycache__":
        return  # a top-level __pycache__ folder is judged by find_unowned_code
    if name in _NOT_CODE_NAMES and not _is_folder(entry):
        return  # by name only as a plain file: a folder named README is importable
    if by_virtualenv and name in _VIRTUALENV_FILES:
        yield Finding.of(
            Kind.NOT_VERIFIABLE,
            name,
            f"{path} was written by virtualenv when it created this environment "
            "(pyvenv.cfg names it); no RECORD lists it",
            location=path,
        )
        return
    if name.endswith(".pth"):
        owner = owned.get(name) if hashed else None
        try:
            lines = _executable_pth_lines(path, version)
        except OSError as exc:
            # Unreadable to us: fail closed (the interpreter may be able to read it).
            lines = [f"(cannot be read: {exc.strerror or exc})"]
        if not lines or owner:
            # What its path lines put on sys.path (issue 12: zipimport serves modules
            # from any file a path line names, and an unowned .pth can name anything).
            yield from _judge_pth_paths(
                path, owner, version, places or _Places(verified or frozenset())
            )
        if not lines:
            return
        if owner:
            yield Finding.of(
                Kind.STARTUP_HOOK,
                name,
                f"{path} runs code at every interpreter start; it belongs to {owner}",
                location=path,
            )
        else:
            yield Finding.of(
                Kind.UNOWNED_STARTUP_CODE,
                name,
                f"{path} runs code at every interpreter start and no installed package owns "
                f"it{_NO_RECORD if name in unverified else ''}: {_shorten(lines[0])}",
                expected="no unowned start-up code",
                actual=_shorten(lines[0]),
                hint="remove it unless you put it there on purpose (this is how the litellm "
                "1.82.8 compromise ran)",
                location=path,
            )
        return
    stem = name.split(".", 1)[0]
    top_owned = name in owned
    walked = top_owned and name not in unverified and _is_folder(entry)
    if stem in STARTUP_MODULES and not (top_owned and (hashed or walked)):
        yield Finding.of(
            Kind.UNOWNED_STARTUP_CODE,
            name,
            f"{path} is imported at every interpreter start and no installed package owns it"
            f"{_NO_RECORD if top_owned else ''}",
            expected="no unowned start-up code",
            actual=name,
            hint="remove it unless you put it there on purpose",
            location=path,
        )
        return
    if top_owned:
        return
    if not name.isidentifier() and _is_folder(entry):
        yield from _unimportable_folder(entry)
        return
    is_code = _is_code(name) or (_is_folder(entry) and not name.startswith("."))
    if is_code:
        yield Finding.of(
            Kind.UNOWNED_MODULE,
            name,
            f"{path} is importable but no installed package owns it",
            expected="owned by an installed distribution",
            actual="unowned",
            hint="remove it, or install the package it came from properly",
            location=path,
        )


_NO_RECORD = " with a hash (a distribution without RECORD names it; nothing can verify it)"

#: What findings say of the path lines of a ``.pth`` file (issue 12): ``site`` appends
#: every existing file or folder they name to ``sys.path``, and ``zipimport`` serves
#: modules from any file there, whatever its name (it reads the zip directory at the
#: end of the file, so any prefix can hide it).
PTH_PATHS_UNOWNED = (
    "{path} adds to sys.path at every interpreter start and no installed package owns "
    "it with a hash: {targets}"
)
PTH_PATH_FILE = (
    "{path} puts the file {target} on sys.path at every interpreter start, and zipimport "
    "imports modules from any file there whatever its name; {why}"
)
PTH_FILE_UNOWNED_PTH = "no installed package owns the .pth file"
PTH_FILE_UNLISTED = "no RECORD lists that file with a hash, so nothing verifies what it serves"
PTH_PATH_CODE = (
    "{path} puts {target} on sys.path at every interpreter start; no installed package owns "
    "the .pth file or that folder, and the folder holds code nothing verifies ({example})"
)
PTH_NOTHING = "nothing that exists today"
PTH_HINT = (
    "remove it unless you put it there on purpose: a path line makes whatever it names "
    "importable, and optional imports (urllib3 tries brotli and zstandard) import modules "
    "nobody installed"
)


@dataclass(frozen=True)
class _Places:
    """What vouches for a path a ``.pth`` line names: hashed RECORD rows for files, and
    per site directory (real path) the top-level folders walked file by file."""

    files: Set[str]
    walked: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def owns_file(self, target: str) -> bool:
        return target in self.files or os.path.realpath(target) in self.files

    def owns_folder(self, target: str) -> bool:
        real = os.path.realpath(target)
        for site_dir, tops in self.walked.items():
            if real == site_dir:
                return True  # its entries are judged one by one (_judge_entry)
            if real.startswith(os.path.join(site_dir, "")):
                top = real[len(site_dir) + 1 :].split(os.sep, 1)[0]
                return top in tops  # a walked folder: every code file in it is verified
        return False


def _judge_pth_paths(
    path: str, owner: str | None, version: tuple[int, int] | None, places: _Places
) -> Iterator[Finding]:
    """Judge the path lines of a ``.pth`` file by what they name (issue 12, fail closed).

    Unowned, the file is a warning at least; an error when a line names a file (any
    file is code to ``zipimport``) or a folder that no distribution's walk covers and
    that holds code. Owned by a hashed row, only a file no hashed row lists is an
    error: an owned ``.pth`` naming owned folders (an editable install's working
    tree, judged in local_installs) stays as it was. Judged on every run, never from
    a cache: a ``.pth`` is small, and one edited or a file added later is seen at once.
    """
    site_dir = os.path.dirname(path)
    try:
        targets = _pth_targets(path, site_dir, version or site_python_version(site_dir))
    except OSError:
        return  # reported as unreadable by the import-line check
    name = os.path.basename(path)
    worst: Finding | None = None
    for target in targets:
        if not os.path.isdir(target):
            if owner and places.owns_file(target):
                continue
            why = PTH_FILE_UNLISTED if owner else PTH_FILE_UNOWNED_PTH
            yield _pth_finding(name, path, PTH_PATH_FILE.format(path=path, target=target, why=why))
            return
        if owner or places.owns_folder(target):
            continue
        example = _first_code(target)
        if example is not None:
            message = PTH_PATH_CODE.format(path=path, target=target, example=example)
            worst = _pth_finding(name, path, message)
    if worst is not None:
        yield worst
    elif not owner:
        message = PTH_PATHS_UNOWNED.format(
            path=path,
            targets=", ".join(targets) or PTH_NOTHING,
        )
        yield dataclasses.replace(_pth_finding(name, path, message), severity=Severity.WARNING)


def _pth_finding(name: str, path: str, message: str) -> Finding:
    return Finding.of(
        Kind.UNOWNED_STARTUP_CODE,
        name,
        message,
        expected="every path a .pth line adds verified",
        actual="unverified",
        hint=PTH_HINT,
        location=path,
    )


def _first_code(top: str) -> str | None:
    """The first code file (``_is_code``) or folder link under *top*, at any depth; an
    unreadable folder counts as code (what it holds cannot be told)."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            return f"{folder} cannot be listed: {exc.strerror or exc}"
        for item in entries:
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(item.path)
                    continue
                if item.is_symlink() and item.is_dir():
                    return item.path
            except OSError:
                return item.path
            if _is_code(item.name):
                return item.path
    return None


#: What findings say of an unowned top-level folder whose name ``import`` cannot spell
#: (``PyYAML.libs``, ``foo-bar``, ``x-1.0.data``). An empty one is an installer quirk
#: (uv creates the folders a wheel lists as directory entries) and is not reported.
UNIMPORTABLE_CODE = (
    "{path} holds code that no RECORD lists with a hash ({example}): the folder's name cannot "
    "be imported, but what it holds can still run (an extension module loads a '.libs' "
    "folder's shared libraries through its RPATH, a .pth line can put the folder on sys.path, "
    "importlib imports any name)"
)
UNIMPORTABLE_FILES = (
    "{path} holds files that no RECORD lists ({example}); none of them is code, "
    "but no installed package owns the folder"
)
UNIMPORTABLE_LINK = (
    "{path} is a symbolic link to a folder ({example}) that no RECORD lists: nothing can "
    "verify what it holds, and its name hides it from import statements only"
)
UNIMPORTABLE_BINARY = (
    "{path} holds a shared library or executable that no RECORD lists ({example}, by its "
    "first bytes): the dynamic loader and ctypes load it whatever its name"
)
UNIMPORTABLE_HINT = (
    "remove the folder (pip leaves '~name' folders behind when an upgrade is interrupted), "
    "or reinstall the package it came from"
)


def _unimportable_folder(entry: os.DirEntry[str]) -> Iterator[Finding]:
    """Judge an unowned folder whose name is not an identifier by what it holds (issue 12).

    Empty (folders only, at any depth): it runs nothing, so nothing is reported. Code
    (``_is_code``, or a symbolic link to a folder, which no RECORD can list; the folder
    itself being such a link too): an error, since such a folder matches no installer's
    behaviour and its code runs only by hidden routes. Other files only: a warning, as
    for any unowned entry, except in a hidden folder (``.name``), never reported before;
    there a file that starts like a shared library or executable (``_loadable_binary``,
    a suffix-less ELF) is code, an error.
    Judged on every run, never from the walk cache, so a file added later is seen at once.
    """
    top, hidden = entry.path, entry.name.startswith(".")
    try:
        linked = entry.is_symlink()
    except OSError:
        linked = True
    if linked:
        yield _unimportable(UNIMPORTABLE_LINK, top, top, Severity.ERROR)
        return
    stack = [top]
    first_file: str | None = None
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            error = exc.strerror or str(exc)
            yield _unlisted(UNLISTED_UNREADABLE, folder, os.path.basename(top), error=error)
            return
        for item in entries:
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(item.path)
                    continue
                linked_folder = item.is_symlink() and item.is_dir()
            except OSError:
                linked_folder = True  # cannot tell what it is: fail closed
            if linked_folder or _is_code(item.name):
                yield _unimportable(UNIMPORTABLE_CODE, top, item.path, Severity.ERROR)
                return
            if hidden and _regular_file(item) and _loadable_binary(item.path):
                yield _unimportable(UNIMPORTABLE_BINARY, top, item.path, Severity.ERROR)
                return
            if first_file is None:
                first_file = item.path
    if first_file is not None and not hidden:
        yield _unimportable(UNIMPORTABLE_FILES, top, first_file, Severity.WARNING)


#: First bytes of what a loader runs: ELF, Mach-O (both word sizes and byte orders,
#: and universal binaries) and PE (``MZ``).
_BINARY_MAGIC = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"MZ",
)


def _regular_file(entry: os.DirEntry[str]) -> bool:
    """Whether to read a file's first bytes: not a FIFO or device (opening one could block)."""
    try:
        return entry.is_file()
    except OSError:
        return False  # the open would fail too; the folder is reported as holding files


def _loadable_binary(path: str) -> bool:
    """Whether a file starts like a binary a loader runs (4 bytes read; unreadable counts).

    Only for files in unowned hidden folders at the top of a site directory, which hold
    nothing in a real install, so reading them on every run costs nothing there.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(4)
    except OSError:
        return True
    return head.startswith(_BINARY_MAGIC)


def _unimportable(template: str, top: str, example: str, severity: Severity) -> Finding:
    return Finding(
        Kind.UNOWNED_MODULE,
        severity,
        os.path.basename(top),
        template.format(
            path=top,
            example=os.path.realpath(top) if example == top else os.path.relpath(example, top),
        ),
        "owned by an installed distribution, or empty",
        "unowned",
        UNIMPORTABLE_HINT,
        top,
    )


def _shorten(line: str, limit: int = 80) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
