"""One digest type for every hash we read or write.

Digests travel as self-describing ``alg:hex`` strings (the form pooch and our
lockfile use); wheel RECORD files spell them ``alg=urlsafe-base64-nopad``
(the binary distribution format spec). Both parse to the same ``Digest`` and
compare by bytes, so a hex and a base64 spelling of one hash are equal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pytest_mlsupply.errors import MlsupplyError

DEFAULT_ALGORITHM = "sha256"
_CHUNK_SIZE = 1 << 20


class DigestError(MlsupplyError):
    """A hash string that is not a valid ``alg:hex`` or RECORD ``alg=b64`` digest."""


def _digest_size(algorithm: str) -> int | None:
    """Byte length of *algorithm*'s digest, or None for variable-length ones (shake)."""
    try:
        hasher = hashlib.new(algorithm)
    except (ValueError, TypeError) as exc:
        raise DigestError(f"unknown hash algorithm {algorithm!r}") from exc
    size = hasher.digest_size
    return size or None


@dataclass(frozen=True, order=True)
class Digest:
    """A hash value together with the algorithm that produced it."""

    algorithm: str
    value: bytes

    def __post_init__(self) -> None:
        expected = _digest_size(self.algorithm)
        if expected is not None and len(self.value) != expected:
            raise DigestError(
                f"{self.algorithm} digest must be {expected} bytes, got {len(self.value)}"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``alg:hex`` (for example ``sha256:9f86d0...``)."""
        algorithm, sep, hexvalue = text.strip().partition(":")
        if not sep or not algorithm or not hexvalue:
            raise DigestError(f"expected 'algorithm:hex', got {text!r}")
        try:
            value = bytes.fromhex(hexvalue)
        except ValueError as exc:
            raise DigestError(f"{text!r} is not hexadecimal after {algorithm!r}:") from exc
        return cls(algorithm.lower(), value)

    @classmethod
    def from_record(cls, text: str) -> Digest:
        """Parse RECORD's ``alg=urlsafe-base64`` form (padding optional)."""
        algorithm, sep, encoded = text.strip().partition("=")
        if not sep or not algorithm or not encoded:
            raise DigestError(f"expected 'algorithm=base64' as in RECORD files, got {text!r}")
        padded = encoded.rstrip("=") + "=" * (-len(encoded.rstrip("=")) % 4)
        try:
            value = base64.urlsafe_b64decode(padded.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise DigestError(f"{text!r} is not urlsafe base64 after {algorithm!r}=") from exc
        return cls(algorithm.lower(), value)

    @property
    def hex(self) -> str:
        return self.value.hex()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    def to_record(self) -> str:
        """The RECORD spelling: ``alg=urlsafe-base64-nopad``."""
        encoded = base64.urlsafe_b64encode(self.value).decode("ascii").rstrip("=")
        return f"{self.algorithm}={encoded}"


def hash_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).digest())


def hash_file(path: str | Path, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    """Hash a file in fixed-size chunks, so memory stays constant whatever its size."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            hasher.update(chunk)
    return Digest(algorithm, hasher.digest())
