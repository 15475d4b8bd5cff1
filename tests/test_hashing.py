"""The one digest type: ``alg:hex`` and RECORD's ``alg=b64`` spellings of the same bytes."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_mlsupply.hashing import Digest, DigestError, hash_bytes, hash_file

ALGORITHMS = ["sha256", "sha512", "sha1", "md5", "blake2b", "sha3_256"]


@given(st.sampled_from(ALGORITHMS), st.binary())
def test_both_spellings_round_trip_to_equal_digests(algorithm: str, data: bytes) -> None:
    digest = hash_bytes(data, algorithm)
    assert Digest.parse(str(digest)) == digest
    assert Digest.from_record(digest.to_record()) == digest
    assert str(digest) == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@given(st.text())
def test_any_text_parses_or_raises_our_error(text: str) -> None:
    for parse in (Digest.parse, Digest.from_record):
        with contextlib.suppress(DigestError):
            parse(text)


def test_record_padding_and_algorithm_case_do_not_matter() -> None:
    digest = hash_bytes(b"x")
    algorithm, value = digest.to_record().split("=", 1)
    assert Digest.from_record(f"{algorithm.upper()}={value}=") == digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256", "expected 'algorithm:hex'"),
        ("sha256:zz", "is not hexadecimal"),
        ("sha256:abcd", "sha256 digest must be 32 bytes, got 2"),
        ("nosuchalg:abcd", "unknown hash algorithm 'nosuchalg'"),
    ],
)
def test_bad_digests_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        Digest.parse(text)


def test_hash_file_streams_large_files(tmp_path) -> None:
    path = tmp_path / "shard.bin"
    data = bytes(range(256)) * 20_000  # several chunks
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)
