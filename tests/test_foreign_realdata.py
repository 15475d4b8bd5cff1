"""Every real lockfile in realdata/lockfiles loads; counts and pins checked against the files.

The expected numbers were read from the files by hand (and are re-derived here
from the raw text with simple line counts, not with the readers under test).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_foreign_locks import LINUX, MACOS, PY310, WINDOWS

from pytest_mlsupply.locks.foreign import detect_format, load_foreign_lock, locked_artifacts, select

#: path -> number of package entries, as counted by reading the file.
LOCKFILES = {
    "astral-uv/pylock.vcs-test-branch.toml": 1,
    "comfy-cli/pylock.toml": 48,
    "fuyukai-h11/pylock.toml": 21,
    "pypa-packaging/pylock.spec-example.toml": 3,
    "comfy-cli/uv.lock": 74,
    "nanochat/uv.lock": 105,
    "nanogpt-pr648/uv.lock": 80,
    "guarddog/poetry.lock": 67,
    "pytest-pr8873/poetry.lock": 10,
    "guarddog/Pipfile.lock": 44,
    "pytorch-xla/requirements_lock_3_12.txt": 11,
    "pytorch/tools-build-bazel-requirements.txt": 11,
    "tf-keras/requirements_lock_3_10.txt": 76,
}


def _raw_count(path: Path) -> int:
    """Entries counted from the raw text, independently of the readers."""
    text = path.read_text(encoding="utf-8")
    if path.name == "Pipfile.lock":
        document = json.loads(text)
        return len(document["default"]) + len(document["develop"])
    if path.suffix == ".txt":
        return len(re.findall(r"^[A-Za-z0-9][^\s]*==", text, re.MULTILINE))
    return len(re.findall(r"^\[\[packages?\]\]\s*$", text, re.MULTILINE))


@pytest.fixture(scope="module")
def lockfiles(realdata: Path) -> Path:
    return realdata / "lockfiles"


@pytest.mark.parametrize("relative", sorted(LOCKFILES))
def test_real_lockfile_loads_with_the_right_count(lockfiles: Path, relative: str) -> None:
    path = lockfiles / relative
    lock = load_foreign_lock(path, detect_format(path))
    assert len(lock.packages) == LOCKFILES[relative] == _raw_count(path)
    assert all(p.name == p.name.lower() and "_" not in p.name for p in lock.packages)


def test_every_real_lockfile_is_covered(lockfiles: Path) -> None:
    found = sorted(str(p.relative_to(lockfiles)) for p in lockfiles.rglob("*") if p.is_file())
    assert found == sorted(LOCKFILES)


def _load(lockfiles: Path, relative: str):
    path = lockfiles / relative
    return load_foreign_lock(path, detect_format(path))


def _package(lock, name: str, version: str | None = None):
    matches = [p for p in lock.packages if p.name == name and version in (None, p.version)]
    assert len(matches) == 1, matches
    return matches[0]


def test_spot_checked_pins(lockfiles: Path) -> None:
    numpy = _package(_load(lockfiles, "pytorch/tools-build-bazel-requirements.txt"), "numpy")
    assert numpy.version == "1.26.4"
    assert len(numpy.hashes) == 36  # SOURCES.md: numpy 1.26.4 with 36 hashes
    tfio = _package(_load(lockfiles, "tf-keras/requirements_lock_3_10.txt"), "tensorflow-io")
    assert (tfio.version, str(tfio.marker)) == ("0.37.1", 'python_version <= "3.12"')
    xla = _load(lockfiles, "pytorch-xla/requirements_lock_3_12.txt")
    setuptools = _package(xla, "setuptools")
    assert (setuptools.version, str(setuptools.marker)) == ("80.9.0", 'python_version >= "3.12"')
    assert "setuptools" not in {p.name for p in select(xla, LINUX).required}  # 3.11 here
    uv = _package(_load(lockfiles, "astral-uv/pylock.vcs-test-branch.toml"), "uv")
    assert (uv.version, uv.source.kind, uv.source.commit) == (
        "0.10.7",
        "vcs",
        "dfe3b1d3096526eaf91bbcf20f345c3a3b0b6d23",
    )
    attrs = _package(_load(lockfiles, "pypa-packaging/pylock.spec-example.toml"), "attrs")
    assert attrs.version == "25.1.0"
    ruamel = _package(_load(lockfiles, "guarddog/Pipfile.lock"), "ruamel-yaml")
    assert ruamel.version == "0.17.21"
    assert {d.hex[:12] for d in ruamel.hashes} == {"742b35d3d665", "8b7ce697a2f2"}
    boto3 = _package(_load(lockfiles, "guarddog/poetry.lock"), "boto3")
    assert (boto3.version, boto3.group) == ("1.43.36", "main")
    atomicwrites = _package(_load(lockfiles, "pytest-pr8873/poetry.lock"), "atomicwrites")
    assert atomicwrites.version == "1.4.0"
    assert [a.filename for a in atomicwrites.artifacts] == [
        "atomicwrites-1.4.0-py2.py3-none-any.whl",
        "atomicwrites-1.4.0.tar.gz",
    ]
    nanochat = _load(lockfiles, "nanochat/uv.lock")
    torch_versions = sorted(p.version for p in nanochat.packages if p.name == "torch")
    assert torch_versions == ["2.9.1", "2.9.1", "2.9.1+cpu", "2.9.1+cu128"]
    comfy = _load(lockfiles, "comfy-cli/pylock.toml")
    assert all(a.upload_time is not None for p in comfy.packages for a in p.artifacts)


def _required(lock, env) -> set[str]:
    selection = select(lock, env)
    assert selection.not_applicable is None
    return {p.name for p in selection.required}


def test_real_uv_lock_expects_only_this_platforms_packages(lockfiles: Path) -> None:
    nanochat = _load(lockfiles, "nanochat/uv.lock")
    linux, macos, windows = (_required(nanochat, env) for env in (LINUX, MACOS, WINDOWS))
    assert {"torch", "numpy", "pytest"} <= linux & macos & windows  # dev group is default
    assert any(name.startswith("nvidia-") for name in linux)
    assert not any(name.startswith("nvidia-") for name in macos | windows)
    assert "appnope" in macos and "appnope" not in linux
    assert "nanochat" not in linux  # a virtual root is not installed
    torch = [p for p in select(nanochat, LINUX).required if p.name == "torch"]
    assert [(p.version, p.source.url) for p in torch] == [
        ("2.9.1", "https://pypi.example.invalid/simple")
    ]
    comfy = _load(lockfiles, "comfy-cli/uv.lock")
    assert "comfy-cli" in _required(comfy, LINUX)  # an editable root is installed


def test_real_poetry_and_pipfile_locks_per_platform(lockfiles: Path) -> None:
    guarddog = _load(lockfiles, "guarddog/poetry.lock")
    assert "colorama" not in _required(guarddog, LINUX)
    assert "colorama" in _required(guarddog, WINDOWS)
    old = _load(lockfiles, "pytest-pr8873/poetry.lock")
    assert _required(old, LINUX) | {"atomicwrites", "colorama"} == {p.name for p in old.packages}
    assert {"atomicwrites", "colorama"} <= _required(old, WINDOWS)
    pipfile_path = lockfiles / "guarddog/Pipfile.lock"
    document = json.loads(pipfile_path.read_text())
    # Names in both sections count once; dotted names are normalised.
    names = {re.sub(r"[-_.]+", "-", n).lower() for s in ("default", "develop") for n in document[s]}
    assert len(names) == 39
    assert _required(_load(lockfiles, "guarddog/Pipfile.lock"), LINUX) == names


def test_real_pylock_groups_and_requires_python(lockfiles: Path) -> None:
    h11 = _load(lockfiles, "fuyukai-h11/pylock.toml")
    assert _required(h11, LINUX) == {"typing-extensions"}  # default group, Python < 3.12
    assert _required(h11, PY310) == {"typing-extensions"}
    py312 = {**LINUX, "python_full_version": "3.12.4", "python_version": "3.12"}
    assert _required(h11, py312) == set()
    spec = _load(lockfiles, "pypa-packaging/pylock.spec-example.toml")
    assert "requires Python ==3.12.*" in str(select(spec, LINUX).not_applicable)
    nanogpt = _load(lockfiles, "nanogpt-pr648/uv.lock")
    assert "requires Python >=3.12" in str(select(nanogpt, LINUX).not_applicable)


def test_locked_artifacts_of_a_real_lock(lockfiles: Path) -> None:
    lock = _load(lockfiles, "pytorch/tools-build-bazel-requirements.txt")
    artifacts = list(locked_artifacts(lock))
    assert len(artifacts) == 197  # SOURCES.md: all 197 hashes
    assert {a.digest.algorithm for a in artifacts} == {"sha256"}


def test_real_locks_take_the_installers_extras_and_groups(lockfiles: Path) -> None:
    """uv's conflict-encoded extras pick one torch; unselected extras and groups are named."""
    from pytest_mlsupply.locks import Choice

    nanochat = _load(lockfiles, "nanochat/uv.lock")

    def torch(env, *extras: str) -> list[tuple[str | None, str | None]]:
        chosen = Choice(extras, origin="test") if extras else None
        here = select(nanochat, env, extras=chosen).here
        # The index by its last path segment ("simple", "cpu", "cu128").
        return [
            (p.version, (p.source.url or "").rsplit("/", 1)[-1]) for p in here if p.name == "torch"
        ]

    assert torch(LINUX) == [("2.9.1", "simple")]
    assert torch(LINUX, "cpu") == [("2.9.1+cpu", "cpu")]
    assert torch(LINUX, "gpu") == [("2.9.1+cu128", "cu128")]
    assert torch(MACOS, "cpu") == [("2.9.1", "cpu")]
    assert select(nanochat, LINUX).not_taken == {"setuptools": "extra 'cpu'"}
    comfy = select(_load(lockfiles, "comfy-cli/uv.lock"), LINUX)
    assert comfy.not_taken["coverage"] == "extra 'dev'"
    assert "groups dev (uv's default)" in comfy.taken
    h11 = select(_load(lockfiles, "fuyukai-h11/pylock.toml"), LINUX)
    assert h11.not_taken["pytest"] == "group 'dev'"
    assert "groups default (the lock's default-groups)" in h11.taken
