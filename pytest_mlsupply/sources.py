"""Where a distribution came from, read from ``direct_url.json`` (PEP 610).

An installed distribution without ``direct_url.json`` came from an index (the
spec gives no way to tell which). Everything else names a URL: an archive, a
VCS checkout at a commit, or a local directory, possibly editable.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

INDEX = "index"
ARCHIVE = "url"
VCS = "vcs"
DIRECTORY = "directory"
EDITABLE = "editable"
UNKNOWN = "unknown"

SOURCE_KINDS = (INDEX, ARCHIVE, VCS, DIRECTORY, EDITABLE, UNKNOWN)

#: Local working trees: their version and bytes are the project's own, under its
#: own version control, and both change with every commit. Treated as one family.
LOCAL_KINDS = frozenset({DIRECTORY, EDITABLE})


def strip_credentials(url: str) -> str:
    """Remove ``user:password@`` from a URL, so secrets never reach a committed lock."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Source:
    """Provenance of one installed distribution.

    ``archive_hash`` is an ``alg:hex`` string; ``commit`` is a VCS commit id.
    """

    kind: str = INDEX
    url: str | None = None
    vcs: str | None = None
    commit: str | None = None
    archive_hash: str | None = None

    @classmethod
    def from_direct_url(cls, text: str | None) -> Source:
        """Read ``direct_url.json`` text; None (no file) means an index install."""
        if text is None:
            return cls(INDEX)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
            return cls(UNKNOWN)
        if not isinstance(data, Mapping):
            return cls(UNKNOWN)
        url = data.get("url")
        url = strip_credentials(url) if isinstance(url, str) else None
        vcs_info = data.get("vcs_info")
        if isinstance(vcs_info, Mapping):
            return cls(
                VCS,
                url=url,
                vcs=_str_or_none(vcs_info.get("vcs")),
                commit=_str_or_none(vcs_info.get("commit_id")),
            )
        dir_info = data.get("dir_info")
        if isinstance(dir_info, Mapping):
            kind = EDITABLE if dir_info.get("editable") is True else DIRECTORY
            return cls(kind, url=url)
        archive_info = data.get("archive_info")
        if isinstance(archive_info, Mapping):
            return cls(ARCHIVE, url=url, archive_hash=_archive_hash(archive_info))
        return cls(UNKNOWN, url=url)

    @property
    def is_local(self) -> bool:
        return self.kind in LOCAL_KINDS

    def describe(self) -> str:
        """A short display string, e.g. ``vcs git+https://...@1a2b3c``."""
        if self.kind == INDEX:
            return "a package index"
        if self.kind == VCS:
            where = f"{self.vcs}+{self.url}" if self.vcs else str(self.url)
            return f"{where}@{self.commit}" if self.commit else where
        if self.kind == ARCHIVE:
            shown = str(self.url)
            return f"{shown} ({self.archive_hash})" if self.archive_hash else shown
        if self.kind in LOCAL_KINDS:
            return f"{self.kind} {self.url}" if self.url else self.kind
        return "an unknown source"

    def matches(self, locked: Source) -> bool:
        """Whether this installed source is the one *locked* names.

        Local paths differ from machine to machine (``file:///home/alice/...``),
        so they are compared by kind only; archives by hash where both have one,
        else by URL (by file name for ``file:`` URLs).
        """
        if self.is_local and locked.is_local:
            return True
        if self.kind != locked.kind:
            return False
        if self.kind == VCS:
            return (
                self.vcs == locked.vcs
                and _comparable_url(self.url) == _comparable_url(locked.url)
                and self.commit == locked.commit
            )
        if self.kind == ARCHIVE:
            if self.archive_hash and locked.archive_hash:
                return self.archive_hash.lower() == locked.archive_hash.lower()
            return _comparable_url(self.url) == _comparable_url(locked.url)
        return True

    def portable(self) -> Source:
        """This source without machine-specific parts, as written to a committed lock.

        Local working trees lose their path (it names someone's home directory),
        ``file:`` archives keep only their file name; both are compared that way.
        """
        if self.is_local:
            return Source(self.kind)
        if self.kind == ARCHIVE and self.url and self.url.startswith("file:"):
            return replace(self, url=_comparable_url(self.url))
        return self

    def to_dict(self) -> dict[str, str]:
        data = {"kind": self.kind}
        for key, value in (
            ("url", self.url),
            ("vcs", self.vcs),
            ("commit", self.commit),
            ("archive-hash", self.archive_hash),
        ):
            if value is not None:
                data[key] = value
        return data


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _archive_hash(archive_info: Mapping[str, Any]) -> str | None:
    """Prefer PEP 610's ``hashes`` mapping (sha256 first), else the legacy ``hash``."""
    hashes = archive_info.get("hashes")
    if isinstance(hashes, Mapping) and hashes:
        algorithm = "sha256" if "sha256" in hashes else sorted(hashes)[0]
        value = hashes[algorithm]
        if isinstance(value, str):
            return f"{algorithm}:{value.lower()}"
    legacy = archive_info.get("hash")
    if isinstance(legacy, str) and "=" in legacy:
        algorithm, _, value = legacy.partition("=")
        return f"{algorithm}:{value.lower()}"
    return None


def _comparable_url(url: str | None) -> str | None:
    if url is None:
        return None
    url = strip_credentials(url).rstrip("/")
    if url.startswith("file:"):
        return "file:" + posixpath.basename(urlsplit(url).path)
    if "://" not in url:  # a local path, as uv.lock writes a path dependency: a file: URL
        return "file:" + posixpath.basename(url.replace("\\", "/"))
    return url
