"""Installed-file integrity: every installed byte against RECORD, and code no package owns.

The lock compares what RECORD says; this module checks that the files on disk
are what RECORD says, and looks for what no RECORD mentions at all: a ``.pth``
file that runs code at every interpreter start, a ``sitecustomize.py``, a
stray module. pip declined to do this (pypa/pip#1463); it is the check that
catches an installed module edited in place.
"""

from __future__ import annotations

import os
import site
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.hashcache import HashCache
from pytest_mlsupply.hashing import Digest, DigestError, HashRun, hash_many
from pytest_mlsupply.quirks import RecordQuirk, find_quirk, load_quirks
from pytest_mlsupply.record import is_outside_site_dir, iter_record_rows
from pytest_mlsupply.snapshot import RECORD_OK, InstalledDistribution, Snapshot

#: Files that decide what runs when the interpreter starts (the ``site`` module).
STARTUP_MODULES = ("sitecustomize", "usercustomize")

#: Top-level entries of a site directory that are never a package's code.
_NOT_CODE_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".data")
_NOT_CODE_NAMES = frozenset({"__pycache__", "README.txt", "README", ".DS_Store"})
_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")

#: virtualenv (not the stdlib venv) writes these two files into every environment
#: it creates; pyvenv.cfg names it. They are the environment's, not a package's.
_VIRTUALENV_FILES = frozenset({"_virtualenv.pth", "_virtualenv.py"})


@dataclass(frozen=True)
class Owner:
    """A distribution's claim on one file: what its RECORD says the file is."""

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


def ownership_index(distributions: Iterable[InstalledDistribution]) -> dict[str, list[Owner]]:
    """Absolute path -> every distribution whose RECORD lists it.

    Files legitimately owned by two distributions (a namespace ``__init__.py``)
    are resolved here, before anything is flagged.
    """
    owners: dict[str, list[Owner]] = defaultdict(list)
    for dist in distributions:
        if dist.record_state != RECORD_OK:
            continue
        record = Path(dist.metadata_path) / "RECORD"
        try:
            text = record.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the snapshot already reported an unreadable RECORD
        for relative, hash_text, size in iter_record_rows(text):
            absolute = os.path.normpath(os.path.join(dist.location, relative))
            owners[absolute].append(Owner(dist, relative, hash_text, size))
    return owners


def _is_record_itself(owner: Owner) -> bool:
    folder, _, filename = owner.relative.rpartition("/")
    return folder == Path(owner.dist.metadata_path).name and filename in {
        "RECORD",
        "RECORD.jws",
        "RECORD.p7s",
    }


def _unverifiable_reason(owner: Owner) -> str | None:
    """Why a RECORD row cannot be verified, or None when it can."""
    if _is_record_itself(owner):
        return "RECORD files"
    if owner.relative.endswith((".pyc", ".pyo")):
        return "compiled .pyc files"
    if not owner.hash:
        return "rows without a hash"
    return None


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


def verify_installed_files(
    snapshot: Snapshot,
    *,
    cache: HashCache | None = None,
    quirks: Sequence[RecordQuirk] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Finding], VerificationStats, dict[str, list[Owner]]]:
    """Hash every file RECORD lists and compare; return findings, stats and the owner index."""
    started = time.perf_counter()
    known_quirks = load_quirks() if quirks is None else quirks
    # Hidden (shadowed) copies are installed bytes too, and they own their files.
    everything = [*snapshot.distributions, *(pair.hidden for pair in snapshot.shadowed)]
    owners = ownership_index(everything)
    stats = VerificationStats()
    requests: list[tuple[str, str]] = []
    expected: dict[str, list[tuple[Owner, Digest, bool]]] = {}
    for absolute, claims in owners.items():
        checkable: list[tuple[Owner, Digest, bool]] = []
        for owner in claims:
            reason = _unverifiable_reason(owner)
            if reason is None:
                digest, hex_spelled = _expected_digest(owner.hash)
                if digest is None:
                    reason = "rows with an unreadable hash"
                else:
                    checkable.append((owner, digest, hex_spelled))
            if reason is not None:
                stats.not_verifiable[reason] = stats.not_verifiable.get(reason, 0) + 1
        if checkable:
            expected[absolute] = checkable
            requests.append((absolute, checkable[0][1].algorithm))
    run: HashRun = hash_many(requests, cache=cache, progress=progress)
    findings: list[Finding] = []
    for absolute, checkable in expected.items():
        findings.extend(_judge(absolute, checkable, run, known_quirks))
    stats.files_verified = len(requests)
    stats.from_cache = run.from_cache
    stats.bytes_hashed = run.bytes_hashed
    stats.seconds = time.perf_counter() - started
    return findings, stats, owners


def _judge(
    absolute: str,
    checkable: list[tuple[Owner, Digest, bool]],
    run: HashRun,
    quirks: Sequence[RecordQuirk],
) -> Iterator[Finding]:
    outcome = run.outcomes[absolute]
    owner = checkable[0][0]
    dist = owner.dist
    names = ", ".join(sorted({f"{o.dist.name} {o.dist.version}" for o, _, _ in checkable}))
    outside = is_outside_site_dir(owner.relative)
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


def _maybe_quirk(
    finding: Finding, quirks: Sequence[RecordQuirk], owner: Owner, mismatch: str
) -> Finding:
    """Downgrade a finding that a reviewed, published RECORD quirk explains."""
    quirk = find_quirk(quirks, owner.dist.name, owner.dist.version, owner.relative, mismatch)
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


def _executable_pth_lines(path: str) -> list[str]:
    """Lines ``site`` executes: those starting with ``import`` and a space or tab."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return []
    return [line for line in lines if line.startswith(("import ", "import\t"))]


def _created_by_virtualenv(site_dir: str) -> bool:
    for candidate in (Path(site_dir).parents[1], Path(site_dir).parents[2]):
        cfg = candidate / "pyvenv.cfg"
        try:
            text = cfg.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        return any(line.split("=")[0].strip() == "virtualenv" for line in text.splitlines())
    return False


def find_unowned_code(snapshot: Snapshot, owners: dict[str, list[Owner]]) -> Iterator[Finding]:
    """Start-up hooks and modules in site directories that no RECORD owns."""
    owned_top: dict[str, set[str]] = defaultdict(set)
    for claims in owners.values():
        for owner in claims:
            if not is_outside_site_dir(owner.relative):
                top = owner.relative.split("/", 1)[0]
                owned_top[os.path.normpath(owner.dist.location)].add(top)
    for dist in snapshot.distributions:
        if dist.record_state != RECORD_OK:
            # Without RECORD (legacy egg-info, distribution-packaged Pythons that
            # strip it) top_level.txt is the best word on what a package owns;
            # its files are counted as not verifiable, not as strays.
            owned_top[os.path.normpath(dist.location)].update(_top_level_names(dist))
    for site_dir in site_directories(snapshot):
        by_virtualenv = _created_by_virtualenv(site_dir)
        try:
            entries = sorted(os.scandir(site_dir), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            yield from _judge_entry(entry, owners, owned_top[site_dir], by_virtualenv)


def _top_level_names(dist: InstalledDistribution) -> set[str]:
    try:
        text = (Path(dist.metadata_path) / "top_level.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    names = {line.strip() for line in text.splitlines() if line.strip()}
    return names | {f"{name}.py" for name in names}


def _owner_names(owners: dict[str, list[Owner]], path: str) -> str | None:
    claims = owners.get(os.path.normpath(path))
    if not claims:
        return None
    return ", ".join(sorted({o.dist.name for o in claims}))


def _judge_entry(
    entry: os.DirEntry[str],
    owners: dict[str, list[Owner]],
    owned_top: set[str],
    by_virtualenv: bool,
) -> Iterator[Finding]:
    name = entry.name
    path = entry.path
    if name in _NOT_CODE_NAMES or name.endswith(_NOT_CODE_SUFFIXES):
        return
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
        lines = _executable_pth_lines(path)
        owner = _owner_names(owners, path)
        if not lines:
            return  # path-only .pth files add directories; they run nothing
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
                f"it: {_shorten(lines[0])}",
                expected="no unowned start-up code",
                actual=_shorten(lines[0]),
                hint="remove it unless you put it there on purpose (this is how the litellm "
                "1.82.8 compromise ran)",
                location=path,
            )
        return
    stem = name.split(".", 1)[0]
    top_owned = name in owned_top
    if stem in STARTUP_MODULES and not top_owned:
        yield Finding.of(
            Kind.UNOWNED_STARTUP_CODE,
            name,
            f"{path} is imported at every interpreter start and no installed package owns it",
            expected="no unowned start-up code",
            actual=name,
            hint="remove it unless you put it there on purpose",
            location=path,
        )
        return
    if top_owned:
        return
    is_code = (
        name.endswith(".py")
        or name.endswith(_EXTENSION_SUFFIXES)
        or (entry.is_dir() and not name.startswith("."))
    )
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


def _shorten(line: str, limit: int = 80) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
