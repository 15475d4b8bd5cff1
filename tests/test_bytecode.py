"""Bytecode caches beside verified sources: the check of loaded modules, and the prefix.

The check gets module objects built here (a spec with ``origin`` and
``cached``), never imported ones, so nothing planted runs in this process.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import marshal
import os
import sys
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlsupply.bytecode import (
    CACHE_FILE,
    MESSAGE_MISMATCH,
    PYCACHE_FOLDER,
    accepted_pyc,
    check_loaded_bytecode,
    pycache_prefix,
)
from pytest_mlsupply.findings import Kind, Severity

SOURCE = "WEIGHTS = [1, 2, 3]\n\ndef predict(x):\n    return sum(WEIGHTS) * x\n"
EVIL = "open('marker', 'w').close()\n" + SOURCE


def pyc_path(source: Path) -> Path:
    """Where the import system looks without a prefix (``cache_from_source`` honours one)."""
    return source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"


def header(source: Path, flags: int = 0) -> bytes:
    st = os.stat(source)
    stamp = (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    size = (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    return importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + stamp + size


def plant(source: Path, text: str, *, flags: int = 0, prefix: bytes | None = None) -> Path:
    """A pyc of *text* whose header passes for *source* (a timestamp pyc unless *flags*)."""
    target = pyc_path(source)
    target.parent.mkdir(exist_ok=True)
    code = compile(text, str(source), "exec", dont_inherit=True)
    target.write_bytes((prefix or header(source, flags)) + marshal.dumps(code))
    return target


def module(name: str, source: Path, cached: Path | None = None) -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(source))
    spec = importlib.machinery.ModuleSpec(name, loader, origin=str(source))
    spec.has_location = True
    spec.cached = str(cached or pyc_path(source))
    made = types.ModuleType(name)
    made.__spec__ = spec
    return made


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    (folder / "demo").mkdir(parents=True)
    (folder / "demo" / "core.py").write_text(SOURCE)
    return folder


def check(site: Path, cache: Path | None = None, **kwargs):  # type: ignore[no-untyped-def]
    mods = {"demo.core": module("demo.core", site / "demo" / "core.py")}
    return check_loaded_bytecode(mods, [str(site)], cache_dir=cache, **kwargs)


def test_the_pyc_python_writes_passes(site: Path) -> None:
    import py_compile

    source = site / "demo" / "core.py"
    py_compile.compile(str(source), cfile=str(pyc_path(source)), doraise=True)
    result = check(site)
    assert result.findings == ()
    assert (result.checked, result.compiled) == (1, 1)


def test_a_planted_timestamp_pyc_is_an_error(site: Path) -> None:
    planted = plant(site / "demo" / "core.py", EVIL)
    (finding,) = check(site, owner={"demo": "demo-dist"}).findings
    assert finding.kind is Kind.BYTECODE_MISMATCH
    assert finding.severity is Severity.ERROR
    assert finding.subject == "demo-dist"
    assert finding.location == str(planted)
    assert finding.message == MESSAGE_MISMATCH.format(
        module="demo.core", cached=planted, source=site / "demo" / "core.py"
    )


def test_a_changed_constant_deep_in_a_function_is_an_error(site: Path) -> None:
    plant(site / "demo" / "core.py", SOURCE.replace("* x", "* x + 1"))
    assert [f.kind for f in check(site).findings] == [Kind.BYTECODE_MISMATCH]


def test_a_smaller_stack_size_is_an_error(site: Path) -> None:
    """``code.__eq__`` skips ``co_stacksize``; a too-small one corrupts memory."""
    source = site / "demo" / "core.py"
    code = compile(SOURCE, str(source), "exec", dont_inherit=True)
    consts = tuple(
        c.replace(co_stacksize=1) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    target = pyc_path(source)
    target.parent.mkdir()
    target.write_bytes(header(source) + marshal.dumps(code.replace(co_consts=consts)))
    assert [f.kind for f in check(site).findings] == [Kind.BYTECODE_MISMATCH]


def test_a_pyc_whose_header_does_not_match_was_not_run(site: Path) -> None:
    source = site / "demo" / "core.py"
    plant(source, EVIL)
    os.utime(source, (1_000_000, 1_000_000))  # Python compiles the source instead
    result = check(site)
    assert result.findings == ()
    assert result.compiled == 0


def test_a_pyc_with_another_magic_number_was_not_run(site: Path) -> None:
    source = site / "demo" / "core.py"
    plant(source, EVIL, prefix=b"\x00\x00\r\n" + header(source)[4:])
    assert check(site).findings == ()


def test_an_unchecked_hash_pyc_is_compared(site: Path) -> None:
    source = site / "demo" / "core.py"
    plant(source, EVIL, prefix=header(source, flags=0b01)[:8] + b"\x00" * 8)
    assert [f.kind for f in check(site).findings] == [Kind.BYTECODE_MISMATCH]


def test_a_checked_hash_pyc_with_another_hash_was_not_run(site: Path) -> None:
    source = site / "demo" / "core.py"
    plant(source, EVIL, prefix=header(source, flags=0b11)[:8] + b"\x01" * 8)
    assert check(site).findings == ()


def test_a_checked_hash_pyc_with_the_right_hash_is_compared(site: Path) -> None:
    import _imp

    source = site / "demo" / "core.py"
    key = int.from_bytes(importlib.util.MAGIC_NUMBER, "little")
    digest = _imp.source_hash(key, source.read_bytes())
    plant(source, EVIL, prefix=header(source, flags=0b11)[:8] + digest)
    assert accepted_pyc(pyc_path(source).read_bytes(), str(source))
    assert [f.kind for f in check(site).findings] == [Kind.BYTECODE_MISMATCH]


def test_unreadable_bytecode_behind_a_good_header_is_an_error(site: Path) -> None:
    source = site / "demo" / "core.py"
    target = pyc_path(source)
    target.parent.mkdir()
    target.write_bytes(header(source) + b"\xff\x00garbage")
    (finding,) = check(site).findings
    assert "could not be compared" in finding.message
    assert "unreadable bytecode" in finding.message


def test_bytecode_that_is_not_code_is_an_error(site: Path) -> None:
    source = site / "demo" / "core.py"
    target = pyc_path(source)
    target.parent.mkdir()
    target.write_bytes(header(source) + marshal.dumps(("not", "code")))
    assert [f.kind for f in check(site).findings] == [Kind.BYTECODE_MISMATCH]


def test_a_source_outside_the_site_directories_is_not_checked(site: Path, tmp_path: Path) -> None:
    plant(site / "demo" / "core.py", EVIL)
    mods = {"demo.core": module("demo.core", site / "demo" / "core.py")}
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert check_loaded_bytecode(mods, [str(elsewhere)]).findings == ()


def test_a_pyc_under_a_pycache_prefix_is_checked_too(site: Path, tmp_path: Path) -> None:
    """Wherever ``__spec__.cached`` points (``PYTHONPYCACHEPREFIX``), the file is checked."""
    source = site / "demo" / "core.py"
    planted = plant(source, EVIL)
    moved = tmp_path / "prefix" / "core.pyc"
    moved.parent.mkdir()
    planted.rename(moved)
    mods = {"demo.core": module("demo.core", source, cached=moved)}
    assert len(check_loaded_bytecode(mods, [str(site)]).findings) == 1


def test_modules_without_a_source_or_a_pyc_are_skipped(site: Path) -> None:
    builtin = types.ModuleType("sys_like")
    no_spec = types.ModuleType("no_spec")
    no_spec.__spec__ = None
    mods = {
        "demo.core": module("demo.core", site / "demo" / "core.py"),  # no pyc on disk
        "sys_like": builtin,
        "no_spec": no_spec,
    }
    result = check_loaded_bytecode(mods, [str(site)])
    assert (result.findings, result.checked) == ((), 0)


def test_a_pass_is_cached_and_a_changed_pyc_is_checked_again(site: Path, tmp_path: Path) -> None:
    import py_compile

    cache = tmp_path / "cache"
    cache.mkdir()
    source = site / "demo" / "core.py"
    py_compile.compile(str(source), cfile=str(pyc_path(source)), doraise=True)
    assert check(site, cache).compiled == 1
    assert check(site, cache).compiled == 0  # warm: only stats
    plant(source, EVIL)
    assert len(check(site, cache).findings) == 1


def test_a_failure_is_never_cached(site: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    plant(site / "demo" / "core.py", EVIL)
    assert len(check(site, cache).findings) == 1
    written = cache / CACHE_FILE
    assert not written.exists() or json.loads(written.read_text())["passes"] == {}
    assert len(check(site, cache).findings) == 1


def test_a_forged_cache_entry_does_not_hide_a_new_pyc(site: Path, tmp_path: Path) -> None:
    """The key is the stat of both files (ctime too): rewriting the pyc misses the cache."""
    import py_compile

    cache = tmp_path / "cache"
    cache.mkdir()
    source = site / "demo" / "core.py"
    py_compile.compile(str(source), cfile=str(pyc_path(source)), doraise=True)
    check(site, cache)
    plant(source, EVIL)
    assert len(check(site, cache).findings) == 1


def test_rehash_ignores_the_cache(site: Path, tmp_path: Path) -> None:
    import py_compile

    cache = tmp_path / "cache"
    cache.mkdir()
    source = site / "demo" / "core.py"
    py_compile.compile(str(source), cfile=str(pyc_path(source)), doraise=True)
    check(site, cache)
    assert check(site, cache, rehash=True).compiled == 1


@pytest.mark.parametrize("content", [b"", b"not json", b'{"version": 1, "passes": []}', b"[]"])
def test_a_corrupt_cache_is_ignored(site: Path, tmp_path: Path, content: bytes) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE).write_bytes(content)
    plant(site / "demo" / "core.py", EVIL)
    assert len(check(site, cache).findings) == 1


#: marshal type codes followed by a 4-byte count it allocates for before reading (tuple,
#: list, set, frozenset, strings, long): random counts would make gigabyte-sized objects.
_COUNTED = frozenset(b"([<>suaAtl") | frozenset(c | 0x80 for c in b"([<>suaAtl")
_REAL = marshal.dumps(compile(SOURCE, "core.py", "exec", dont_inherit=True))
BODIES = st.one_of(
    st.binary(max_size=200).filter(lambda b: not _COUNTED.intersection(b)),
    st.integers(0, len(_REAL)).map(lambda n: _REAL[:n]),  # truncated
    st.recursive(
        st.none() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
        lambda inner: st.lists(inner, max_size=4).map(tuple),
        max_leaves=8,
    ).map(marshal.dumps),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES, flags=st.sampled_from([0, 1, 3, 4]))
def test_any_bytes_behind_any_header_give_a_pass_or_a_finding(
    site: Path, body: bytes, flags: int
) -> None:
    """What the import system would run either equals the source or is a finding; no crash."""
    source = site / "demo" / "core.py"
    target = pyc_path(source)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(header(source, flags) + body)
    result = check(site)
    code = compile(SOURCE, str(source), "exec", dont_inherit=True)
    if body in (marshal.dumps(code), _REAL) or flags == 4:  # the same code, or not run
        assert result.findings == ()
    elif flags in (0, 1):
        assert [f.kind for f in result.findings] == [Kind.BYTECODE_MISMATCH]
    else:  # a checked hash pyc with a wrong hash: the source was compiled
        assert result.findings == ()


@given(data=st.binary(max_size=64))
def test_any_pyc_bytes_are_classified_without_an_error(data: bytes) -> None:
    assert accepted_pyc(data, __file__) in (True, False)


def test_the_prefix_is_a_folder_the_gate_owns(tmp_path: Path) -> None:
    assert pycache_prefix(None) == os.devnull
    folder = tmp_path / PYCACHE_FOLDER
    (folder / "stale").mkdir(parents=True)
    assert pycache_prefix(tmp_path) == str(folder)
    assert (folder / "stale").is_dir()
    assert pycache_prefix(tmp_path, clear=True) == str(folder)
    assert not folder.exists()


# ---------------------------------------------------------------- the plugin as users run it

RECORD_PREFIX = """
import sys

def test_prefix():
    with open("prefix.txt", "w") as stream:
        stream.write(repr(sys.pycache_prefix))
"""


@pytest.fixture
def recorder(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_prefix=RECORD_PREFIX)
    result = pytester.runpytest_subprocess("--mlsupply-update-lock", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    return pytester


def seen_prefix(pytester: pytest.Pytester) -> object:
    return eval((pytester.path / "prefix.txt").read_text())  # a repr written by the test


@pytest.mark.usefixtures("writing")
def test_tests_run_with_the_gates_own_bytecode_cache(recorder: pytest.Pytester) -> None:
    result = recorder.runpytest_subprocess("--mlsupply", "--mlsupply-report", "r.json")
    result.assert_outcomes(passed=2)
    folder = recorder.path / ".pytest_cache" / "d" / "mlsupply" / PYCACHE_FOLDER
    assert seen_prefix(recorder) == str(folder)
    # The test module itself (rewritten by pytest's assertion rewriter) is cached there,
    # not in a __pycache__ beside it.
    assert list(folder.rglob("test_prefix*.pyc"))
    assert not (recorder.path / "__pycache__").exists()
    stats = json.loads((recorder.path / "r.json").read_text())["stats"]
    assert stats["bytecode_modules_checked"] > 0  # pytest, pluggy, this plugin, ...


@pytest.mark.usefixtures("writing")
def test_without_the_cache_plugin_nothing_is_read_or_written(recorder: pytest.Pytester) -> None:
    result = recorder.runpytest_subprocess("--mlsupply", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert seen_prefix(recorder) == os.devnull
    assert not (recorder.path / "__pycache__").exists()


def identity(path: Path) -> tuple[int, int]:
    """Inode numbers are reused; with the change time, a rewritten file is told apart."""
    st = os.stat(path)
    return st.st_ino, st.st_ctime_ns


def own_pyc(pytester: pytest.Pytester) -> Path:
    folder = pytester.path / ".pytest_cache" / "d" / "mlsupply" / PYCACHE_FOLDER
    (found,) = folder.rglob("test_prefix*.pyc")
    return found


@pytest.fixture
def writing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)


@pytest.mark.usefixtures("writing")
def test_a_warm_run_reuses_the_gates_bytecode_cache(recorder: pytest.Pytester) -> None:
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    first = identity(own_pyc(recorder))
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    assert identity(own_pyc(recorder)) == first


@pytest.mark.usefixtures("writing")
def test_a_file_no_gated_run_wrote_empties_the_folder(recorder: pytest.Pytester) -> None:
    """A ``.pytest_cache`` from the repository or a shared CI cache brings no bytecode in."""
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    planted = own_pyc(recorder).parent / "numpy.cpython-3xx.pyc"
    planted.write_bytes(b"")
    first = identity(own_pyc(recorder))
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    assert not planted.exists()
    assert identity(own_pyc(recorder)) != first  # compiled again


@pytest.mark.usefixtures("writing")
def test_a_symlink_in_the_folder_empties_it(recorder: pytest.Pytester, tmp_path: Path) -> None:
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    link = own_pyc(recorder).parent / "elsewhere"
    link.symlink_to(tmp_path)
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    assert not link.is_symlink()


@pytest.mark.usefixtures("writing")
@pytest.mark.parametrize("option", ["--mlsupply-rehash", "--cache-clear"])
def test_rehash_and_cache_clear_empty_the_folder(recorder: pytest.Pytester, option: str) -> None:
    recorder.runpytest_subprocess("--mlsupply").assert_outcomes(passed=2)
    first = identity(own_pyc(recorder))
    recorder.runpytest_subprocess("--mlsupply", option).assert_outcomes(passed=2)
    assert identity(own_pyc(recorder)) != first


def test_the_previous_prefix_is_restored_after_an_in_process_run(
    recorder: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "mine"))
    recorder.runpytest("--mlsupply", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert seen_prefix(recorder) == os.devnull
    assert sys.pycache_prefix == str(tmp_path / "mine")


def test_the_gate_off_leaves_the_prefix_alone(recorder: pytest.Pytester) -> None:
    recorder.runpytest_subprocess().assert_outcomes(passed=1)
    assert seen_prefix(recorder) is None


def test_a_source_linked_from_outside_the_site_directory_is_checked(
    site: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text(SOURCE)
    linked = site / "demo" / "linked.py"
    linked.symlink_to(outside)
    plant(linked, EVIL)
    mods = {"demo.linked": module("demo.linked", linked)}
    assert len(check_loaded_bytecode(mods, [str(site)]).findings) == 1


@pytest.mark.usefixtures("writing")
def test_a_plugin_registered_late_sets_the_prefix_at_session_start(
    recorder: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (recorder.path / "conftest.py").write_text("pytest_plugins = ['pytest_mlsupply.plugin']\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = recorder.runpytest_subprocess("--mlsupply", "--mlsupply-report", "r.json")
    result.assert_outcomes(passed=2)
    folder = recorder.path / ".pytest_cache" / "d" / "mlsupply" / PYCACHE_FOLDER
    assert seen_prefix(recorder) == str(folder)
    stats = json.loads((recorder.path / "r.json").read_text())["stats"]
    assert stats["bytecode_modules_checked"] > 0
