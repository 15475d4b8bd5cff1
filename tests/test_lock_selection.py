"""Which lock entries apply here (issue 12, items 3, 4, 5 and 8), with synthetic locks.

An installed distribution is compared with the entries whose markers hold here,
reached through edges that hold, of the extras and groups the install took; never
with an entry for another Python, platform, extra or group.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_foreign_locks import LINUX, MACOS, PY310, WINDOWS

from pytest_mlsupply.errors import LockfileError, SettingsError
from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.foreign_checks import HINT_UNDECIDED, check_foreign_lock
from pytest_mlsupply.locks import CHOICE_ALL, CHOICE_NONE, Choice, parse_choice
from pytest_mlsupply.locks.foreign import NOTE_TAKEN, Problems, parse_extras_marker, select
from pytest_mlsupply.locks.pipfile import parse_pipfile_lock
from pytest_mlsupply.locks.poetry import load_poetry_lock, parse_poetry_lock
from pytest_mlsupply.locks.pylock import parse_pylock
from pytest_mlsupply.locks.requirements import parse_requirements
from pytest_mlsupply.locks.uvlock import NEWEST_REVISION, load_uv_lock, parse_uv_lock
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

INDEX = 'source = { registry = "https://pypi.example.invalid/simple" }'
NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)
FRESH = "2026-01-09T00:00:00Z"
OLD = "2020-01-01T00:00:00Z"


def _wheel(name: str, version: str, uploaded: str = OLD) -> str:
    filename = f"{name}-{version}-py3-none-any.whl"
    return (
        f'wheels = [{{ url = "https://files.example.invalid/{filename}", '
        f'hash = "sha256:{"a" * 64}", upload-time = "{uploaded}" }}]'
    )


#: Written the way uv 0.13 writes it: a split six, a cpu/cu128 torch split by platform,
#: a ``dev`` and a ``docs`` group, an ``extra1`` extra, and an extra named like a group.
UV_SPLIT = f"""\
version = 1
revision = 5
requires-python = ">=3.10"
resolution-markers = [
    "python_full_version >= '3.11'",
    "python_full_version < '3.11'",
]

[[package]]
name = "proj"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [
    {{ name = "six", version = "1.16.0", {INDEX}, marker = "python_full_version < '3.11'" }},
    {{ name = "six", version = "1.17.0", {INDEX}, marker = "python_full_version >= '3.11'" }},
    {{ name = "torch", version = "2.9.1", {INDEX}, marker = "sys_platform == 'darwin'" }},
    {{ name = "torch", version = "2.9.1+cpu", {INDEX}, marker = "sys_platform != 'darwin'" }},
    {{ name = "macos-only", marker = "sys_platform == 'darwin'" }},
]

[package.optional-dependencies]
extra1 = [
    {{ name = "attrs" }},
]
dev = [
    {{ name = "idna" }},
]

[package.dev-dependencies]
dev = [
    {{ name = "iniconfig" }},
]
docs = [
    {{ name = "packaging" }},
]

[[package]]
name = "six"
version = "1.16.0"
{INDEX}
resolution-markers = ["python_full_version < '3.11'"]
{_wheel("six", "1.16.0")}

[[package]]
name = "six"
version = "1.17.0"
{INDEX}
resolution-markers = ["python_full_version >= '3.11'"]
{_wheel("six", "1.17.0")}

[[package]]
name = "torch"
version = "2.9.1"
{INDEX}
resolution-markers = ["sys_platform == 'darwin'"]
{_wheel("torch", "2.9.1", FRESH)}

[[package]]
name = "torch"
version = "2.9.1+cpu"
{INDEX}
resolution-markers = ["sys_platform != 'darwin'"]
{_wheel("torch", "2.9.1+cpu")}

[[package]]
name = "macos-only"
version = "1.0"
{INDEX}
{_wheel("macos-only", "1.0", FRESH)}

[[package]]
name = "attrs"
version = "25.1.0"
{INDEX}
{_wheel("attrs", "25.1.0", FRESH)}

[[package]]
name = "idna"
version = "3.10"
{INDEX}
{_wheel("idna", "3.10")}

[[package]]
name = "iniconfig"
version = "2.0.0"
{INDEX}
{_wheel("iniconfig", "2.0.0")}

[[package]]
name = "packaging"
version = "25.0"
{INDEX}
{_wheel("packaging", "25.0", FRESH)}
"""


def _check(site: Path, lock, env=LINUX, **options):
    return check_foreign_lock(take_snapshot([str(site)]), lock, environment=env, **options)


def _rows(report) -> list[tuple[Kind, str, str | None, str | None]]:
    return [(f.kind, f.subject, f.expected, f.actual) for f in report.findings]


def _clean_uv_site(
    site: Path,
    *,
    six: str = "1.17.0",
    torch: str = "2.9.1+cpu",
    project: Path | None = None,
) -> None:
    """The project installed editable from *project*: the folder of the lock (``uv.lock``
    read from the current directory unless the test puts it elsewhere)."""
    folder = project or Path("uv.lock").resolve().parent
    editable = {"url": folder.as_uri(), "dir_info": {"editable": True}}
    install_fake(site, "proj", "0.1.0", direct_url=json.dumps(editable))
    install_fake(site, "six", six)
    install_fake(site, "torch", torch)
    install_fake(site, "iniconfig", "2.0.0")


def test_a_clean_uv_install_has_no_finding(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path)
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    report = _check(tmp_path, lock)
    assert [f for f in report.findings if f.severity is not Severity.INFO] == []
    taken = NOTE_TAKEN.format(
        title="uv.lock", extras="none (the installer's default)", groups="dev (uv's default)"
    )
    assert taken in report.notes


def test_the_version_locked_for_another_python_is_a_change_here(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path, six="1.16.0")
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    [finding] = [f for f in _check(tmp_path, lock).findings if f.subject == "six"]
    assert (finding.kind, finding.severity) == (Kind.VERSION_CHANGED, Severity.ERROR)
    assert (finding.expected, finding.actual) == ("1.17.0", "1.16.0")
    assert "1.16.0 is locked only for another environment" in finding.message
    # On Python 3.10 the same install is the locked one.
    other = tmp_path / "py310"
    _clean_uv_site(other, six="1.16.0")
    assert [f for f in _check(other, lock, PY310).findings if f.subject == "six"] == []


def test_a_cuda_torch_where_the_lock_says_cpu_is_a_change(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path, torch="2.9.1+cu128")
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    rows = [r for r in _rows(_check(tmp_path, lock)) if r[1] == "torch"]
    assert rows == [(Kind.VERSION_CHANGED, "torch", "2.9.1+cpu", "2.9.1+cu128")]
    # A plain 2.9.1 (the macOS entry) is not the +cpu one either.
    plain = tmp_path / "plain"
    _clean_uv_site(plain, torch="2.9.1")
    rows = [r for r in _rows(_check(plain, lock)) if r[1] == "torch"]
    assert rows == [(Kind.VERSION_CHANGED, "torch", "2.9.1+cpu", "2.9.1")]


def test_selection_per_platform_reaches_only_what_holds_here() -> None:
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    linux = select(lock, LINUX)
    assert sorted((p.name, p.version) for p in linux.here) == [
        ("iniconfig", "2.0.0"),
        ("proj", "0.1.0"),
        ("six", "1.17.0"),
        ("torch", "2.9.1+cpu"),
    ]
    macos = select(lock, MACOS)
    assert ("torch", "2.9.1") in {(p.name, p.version) for p in macos.here}
    assert "macos-only" in {p.name for p in macos.required}
    assert linux.not_taken == {
        "attrs": "extra 'extra1'",
        "idna": "extra 'dev'",
        "packaging": "group 'docs'",
    }


def test_a_package_only_an_unselected_group_locks_is_not_a_version_change(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path)
    install_fake(tmp_path, "packaging", "99.0")  # docs group locks 25.0; docs not taken
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    [finding] = [f for f in _check(tmp_path, lock).findings if f.subject == "packaging"]
    assert (finding.kind, finding.severity) == (Kind.UNEXPECTED, Severity.WARNING)
    assert "locks it here only for group 'docs', which was not taken" in finding.message
    assert "--mlsupply-lock-groups" in (finding.hint or "")
    # Taking the docs group compares it.
    docs = Choice(("dev", "docs"), origin="--mlsupply-lock-groups")
    rows = [r for r in _rows(_check(tmp_path, lock, groups=docs)) if r[1] == "packaging"]
    assert rows == [(Kind.VERSION_CHANGED, "packaging", "25.0", "99.0")]


def test_an_extra_named_like_a_group_is_told_apart(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path)
    install_fake(tmp_path, "idna", "3.10")  # only the *extra* dev locks it; group dev is taken
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    [finding] = [f for f in _check(tmp_path, lock).findings if f.subject == "idna"]
    assert finding.kind is Kind.UNEXPECTED
    assert "only for extra 'dev'" in finding.message
    taken = Choice(("dev",), origin="--mlsupply-lock-extras")
    assert [f for f in _check(tmp_path, lock, extras=taken).findings if f.subject == "idna"] == []


def test_extras_all_and_groups_none(tmp_path: Path) -> None:
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    every = select(lock, LINUX, extras=Choice(every=True, origin="x"))
    assert {"attrs", "idna"} <= {p.name for p in every.required}
    bare = select(lock, LINUX, groups=Choice(origin="--mlsupply-lock-groups"))
    assert "iniconfig" not in {p.name for p in bare.required}
    assert bare.not_taken["iniconfig"] == "group 'dev'"
    assert "groups none (--mlsupply-lock-groups)" in bare.taken


def test_an_unknown_extra_or_group_is_a_note_and_takes_nothing() -> None:
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    chosen = select(lock, LINUX, extras=Choice(("gpu",), origin="--mlsupply-lock-extras"))
    assert chosen.notes == (
        "uv.lock names no extra 'gpu' (--mlsupply-lock-extras); nothing was taken for it",
    )
    assert {p.name for p in chosen.here} == {p.name for p in select(lock, LINUX).here}


def test_an_undecidable_marker_never_widens_what_is_accepted(tmp_path: Path) -> None:
    """``x86_64 ~= 1.0`` cannot be compared (packaging raises): the entry is not 'here'."""
    text = UV_SPLIT.replace(
        "resolution-markers = [\"python_full_version < '3.11'\"]",
        "resolution-markers = [\"python_full_version < '3.11' or platform_machine ~= '1.0'\"]",
    )
    lock = parse_uv_lock(text, "uv.lock")
    assert select(lock, LINUX).undecided == ()  # its edge does not hold here: never reached
    _clean_uv_site(tmp_path, six="1.16.0")
    rows = [r for r in _rows(_check(tmp_path, lock)) if r[1] == "six"]
    assert rows == [(Kind.VERSION_CHANGED, "six", "1.17.0", "1.16.0")]


def test_an_entry_reached_only_through_a_false_edge_is_not_accepted(tmp_path: Path) -> None:
    """six 1.16.0 with no resolution-markers, reached only on Python < 3.11."""
    text = UV_SPLIT.replace("resolution-markers = [\"python_full_version < '3.11'\"]\n", "", 1)
    lock = parse_uv_lock(text, "uv.lock")
    _clean_uv_site(tmp_path, six="1.16.0")
    rows = [r for r in _rows(_check(tmp_path, lock)) if r[1] == "six"]
    assert rows == [(Kind.VERSION_CHANGED, "six", "1.17.0", "1.16.0")]


def test_a_package_locked_only_for_another_platform_is_unexpected(tmp_path: Path) -> None:
    _clean_uv_site(tmp_path)
    install_fake(tmp_path, "macos-only", "1.0")
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    [finding] = [f for f in _check(tmp_path, lock).findings if f.subject == "macos-only"]
    assert finding.kind is Kind.UNEXPECTED
    assert "locks it only for other environments" in finding.message


def test_uv_conflict_markers_take_the_chosen_extra() -> None:
    """uv encodes conflicting extras as ``extra == 'extra-4-proj-cpu'``; several may hold."""
    text = f"""\
version = 1
revision = 3
requires-python = ">=3.10"
conflicts = [[{{ package = "proj", extra = "cpu" }}, {{ package = "proj", extra = "gpu" }}]]

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "torch", version = "2.9.1", {INDEX}, marker = "extra != 'extra-4-proj-cpu' and extra != 'extra-4-proj-gpu'" }},
    {{ name = "torch", version = "2.9.1+cpu", {INDEX}, marker = "extra == 'extra-4-proj-cpu'" }},
    {{ name = "torch", version = "2.9.1+cu128", {INDEX}, marker = "extra == 'extra-4-proj-gpu'" }},
]

[package.optional-dependencies]
cpu = [{{ name = "torch", version = "2.9.1+cpu", {INDEX} }}]
gpu = [{{ name = "torch", version = "2.9.1+cu128", {INDEX} }}]

[[package]]
name = "torch"
version = "2.9.1"
{INDEX}
resolution-markers = ["extra != 'extra-4-proj-cpu' and extra != 'extra-4-proj-gpu'"]

[[package]]
name = "torch"
version = "2.9.1+cpu"
{INDEX}
resolution-markers = ["extra == 'extra-4-proj-cpu' and extra != 'extra-4-proj-gpu'"]

[[package]]
name = "torch"
version = "2.9.1+cu128"
{INDEX}
resolution-markers = ["extra != 'extra-4-proj-cpu' and extra == 'extra-4-proj-gpu'"]
"""  # noqa: E501
    lock = parse_uv_lock(text, "uv.lock")

    def here(extras: tuple[str, ...]) -> list[str | None]:
        chosen = Choice(extras, origin="x") if extras else None
        return [p.version for p in select(lock, LINUX, extras=chosen).here]

    assert here(()) == ["2.9.1"]
    assert here(("cpu",)) == ["2.9.1+cpu"]
    assert here(("gpu",)) == ["2.9.1+cu128"]


def test_a_marker_with_extra_used_otherwise_cannot_be_decided() -> None:
    problems = Problems("uv.lock")
    marker = parse_extras_marker("extra == 'a' and 'b' != extra", "w", problems)
    assert str(marker) == '"a" in extras and "b" not in extras'
    odd = parse_extras_marker("extra > 'a'", "w", problems)
    assert problems.items == []
    env = {**LINUX, "extras": frozenset({"a"}), "dependency_groups": frozenset()}
    with pytest.raises(Exception):  # noqa: B017 - undefined in the lock-file context
        odd.evaluate(env, context="lock_file")  # type: ignore[union-attr]


# ---------------------------------------------------------------- other formats


def test_requirements_split_by_markers(tmp_path: Path) -> None:
    lock = parse_requirements(
        'six==1.16.0 ; python_version < "3.11"\nsix==1.17.0 ; python_version >= "3.11"\n'
    )
    install_fake(tmp_path, "six", "1.16.0")
    assert _rows(_check(tmp_path, lock)) == [(Kind.VERSION_CHANGED, "six", "1.17.0", "1.16.0")]
    assert _rows(_check(tmp_path, lock, PY310)) == []


POETRY_SPLIT = """\
[[package]]
name = "six"
version = "1.16.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "python_version < \\"3.11\\""
files = []

[[package]]
name = "six"
version = "1.17.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "python_version >= \\"3.11\\""
files = []

[[package]]
name = "attrs"
version = "25.1.0"
description = ""
optional = true
python-versions = "*"
groups = ["main"]
markers = "extra == \\"speed\\""
files = []

[[package]]
name = "sphinx"
version = "8.0.0"
description = ""
optional = false
python-versions = "*"
groups = ["docs"]
files = []

[[package]]
name = "pytest"
version = "8.4.2"
description = ""
optional = false
python-versions = "*"
groups = ["dev"]
files = []

[extras]
speed = ["attrs"]

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "0"
"""


def test_poetry_split_extras_and_optional_groups(tmp_path: Path) -> None:
    (tmp_path / "poetry.lock").write_text(POETRY_SPLIT)
    (tmp_path / "pyproject.toml").write_text(
        "[tool.poetry.group.docs]\noptional = true\n[tool.poetry.group.dev]\n"
    )
    lock = load_poetry_lock(tmp_path / "poetry.lock")
    assert lock.default_groups == ("dev",)
    site = tmp_path / "site"
    install_fake(site, "six", "1.16.0")
    install_fake(site, "attrs", "24.0.0")
    install_fake(site, "sphinx", "7.0.0")
    install_fake(site, "pytest", "8.4.2")
    rows = {f.subject: f for f in _check(site, lock).findings}
    assert (rows["six"].kind, rows["six"].expected) == (Kind.VERSION_CHANGED, "1.17.0")
    assert rows["attrs"].kind is Kind.UNEXPECTED
    assert "only for extra 'speed'" in rows["attrs"].message
    assert rows["sphinx"].kind is Kind.UNEXPECTED
    assert "only for group 'docs'" in rows["sphinx"].message
    assert "pytest" not in rows
    chosen = _check(
        site,
        lock,
        extras=Choice(("speed",), origin="x"),
        groups=Choice(every=True, origin="y"),
    )
    kinds = {f.subject: f.kind for f in chosen.findings}
    assert kinds["attrs"] is Kind.VERSION_CHANGED
    assert kinds["sphinx"] is Kind.VERSION_CHANGED
    # Without the pyproject, every group is taken (poetry install's default).
    assert parse_poetry_lock(POETRY_SPLIT, "poetry.lock").default_groups == ("dev", "docs")


def test_pylock_split_extras_and_groups(tmp_path: Path) -> None:
    text = """\
lock-version = "1.0"
created-by = "hand"
extras = ["speed"]
dependency-groups = ["dev", "docs"]
default-groups = ["dev"]

[[packages]]
name = "six"
version = "1.16.0"
marker = "python_version < '3.11'"
wheels = [{{ name = "six-1.16.0-py3-none-any.whl", url = "https://files.example.invalid/six-1.16.0-py3-none-any.whl", hashes = {{ sha256 = "{a}" }} }}]

[[packages]]
name = "six"
version = "1.17.0"
marker = "python_version >= '3.11'"
wheels = [{{ name = "six-1.17.0-py3-none-any.whl", url = "https://files.example.invalid/six-1.17.0-py3-none-any.whl", hashes = {{ sha256 = "{a}" }} }}]

[[packages]]
name = "attrs"
version = "25.1.0"
marker = "'speed' in extras"
wheels = [{{ name = "attrs-25.1.0-py3-none-any.whl", url = "https://files.example.invalid/attrs-25.1.0-py3-none-any.whl", hashes = {{ sha256 = "{a}" }} }}]

[[packages]]
name = "sphinx"
version = "8.0.0"
marker = "'docs' in dependency_groups"
wheels = [{{ name = "sphinx-8.0.0-py3-none-any.whl", url = "https://files.example.invalid/sphinx-8.0.0-py3-none-any.whl", hashes = {{ sha256 = "{a}" }} }}]
""".format(a="a" * 64)  # noqa: E501
    lock = parse_pylock(text, "pylock.toml")
    install_fake(tmp_path, "six", "1.16.0")
    install_fake(tmp_path, "attrs", "24.0.0")
    install_fake(tmp_path, "sphinx", "7.0.0")
    rows = {f.subject: f for f in _check(tmp_path, lock).findings}
    assert rows["six"].kind is Kind.VERSION_CHANGED
    assert "only for extra 'speed'" in rows["attrs"].message
    assert "only for group 'docs'" in rows["sphinx"].message
    chosen = _check(
        tmp_path, lock, extras=Choice(every=True, origin="x"), groups=Choice(("docs",), origin="y")
    )
    kinds = {f.subject: f.kind for f in chosen.findings}
    assert kinds == {
        "six": Kind.VERSION_CHANGED,
        "attrs": Kind.VERSION_CHANGED,
        "sphinx": Kind.VERSION_CHANGED,
    }


def test_pipfile_develop_is_a_group(tmp_path: Path) -> None:
    text = (
        '{"_meta": {}, "default": {"six": {"version": "==1.17.0"}},'
        ' "develop": {"pytest": {"version": "==8.4.2"}, "six": {"version": "==1.16.0",'
        ' "markers": "python_version < \'3.11\'"}}}'
    )
    lock = parse_pipfile_lock(text, "Pipfile.lock")
    install_fake(tmp_path, "six", "1.16.0")
    install_fake(tmp_path, "pytest", "8.4.1")
    rows = {f.subject: (f.kind, f.expected) for f in _check(tmp_path, lock).findings}
    assert rows == {
        "six": (Kind.VERSION_CHANGED, "1.17.0"),
        "pytest": (Kind.VERSION_CHANGED, "8.4.2"),
    }
    bare = _check(tmp_path, lock, groups=Choice(origin="--mlsupply-lock-groups"))
    found = {f.subject: f for f in bare.findings}
    assert "only for group 'develop'" in found["pytest"].message


# ---------------------------------------------------------------- min age


def test_min_age_looks_only_at_what_is_installed_here(tmp_path: Path) -> None:
    """macos-only, torch for macOS, the docs group and the extra are fresh: not checked."""
    _clean_uv_site(tmp_path)
    lock = parse_uv_lock(UV_SPLIT, "uv.lock")
    report = _check(tmp_path, lock, min_age_days=7, now=NOW)
    assert [f for f in report.findings if f.kind is Kind.TOO_NEW] == []
    install_fake(tmp_path, "packaging", "25.0")
    docs = Choice(("dev", "docs"), origin="y")
    report = _check(tmp_path, lock, min_age_days=7, now=NOW, groups=docs)
    assert [f.subject for f in report.findings if f.kind is Kind.TOO_NEW] == ["packaging"]
    # A fresh release locked here but not installed is not checked (it is 'missing').
    mac = tmp_path / "mac"
    install_fake(mac, "proj", "0.1.0")
    report = _check(mac, lock, MACOS, min_age_days=7, now=NOW)
    assert [f for f in report.findings if f.kind is Kind.TOO_NEW] == []


# ---------------------------------------------------------------- uv revisions


def test_uv_revisions_up_to_the_newest_known_read() -> None:
    assert NEWEST_REVISION == 5
    for revision in range(1, NEWEST_REVISION + 1):
        text = UV_SPLIT.replace("revision = 5", f"revision = {revision}")
        lock = parse_uv_lock(text, "uv.lock")
        assert not any("revision" in note for note in lock.notes)


def test_a_newer_uv_revision_is_refused_clearly() -> None:
    with pytest.raises(LockfileError) as caught:
        parse_uv_lock(UV_SPLIT.replace("revision = 5", "revision = 6"), "proj/uv.lock")
    message = str(caught.value)
    assert "proj/uv.lock" in message
    assert "revision 6 is newer than the newest this plugin reads (5)" in message
    assert "Upgrade pytest-mlsupply" in message
    with pytest.raises(LockfileError, match="version 2 is not supported"):
        parse_uv_lock(UV_SPLIT.replace("version = 1\n", "version = 2\n", 1), "uv.lock")
    with pytest.raises(LockfileError, match="revision: must be 1 or more"):
        parse_uv_lock(UV_SPLIT.replace("revision = 5", "revision = 0"), "uv.lock")


def test_load_uv_lock_says_where_the_default_groups_came_from(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(UV_SPLIT)
    (tmp_path / "pyproject.toml").write_text('[tool.uv]\ndefault-groups = ["docs"]\n')
    lock = load_uv_lock(tmp_path / "uv.lock")
    selection = select(lock, LINUX)
    assert "groups docs ([tool.uv] default-groups of pyproject.toml)" in selection.taken
    assert "packaging" in {p.name for p in selection.required}


# ---------------------------------------------------------------- the option's grammar


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dev", Choice(("dev",), origin="--o")),
        (" Dev_Tools , docs ", Choice(("dev-tools", "docs"), origin="--o")),
        (CHOICE_ALL, Choice(every=True, origin="--o")),
        (CHOICE_NONE, Choice(origin="--o")),
    ],
)
def test_choice_grammar(text: str, expected: Choice) -> None:
    assert parse_choice(text, "--o") == expected


@pytest.mark.parametrize("text", ["", "all,dev", "none,all", "a b", "-x", "dev,"])
def test_a_bad_choice_names_the_option(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^--mlsupply-lock-groups: "):
        parse_choice(text, "--mlsupply-lock-groups")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_choice_text_parses_or_raises_our_error(text: str) -> None:
    with contextlib.suppress(SettingsError):
        chosen = parse_choice(text, "--o")
        assert all(name == name.lower() for name in chosen.names)


POETRY_GROUP_MARKERS = """\
[[package]]
name = "pywin-helper"
version = "1.0"
description = ""
optional = false
python-versions = "*"
groups = ["main", "Docs_Tools"]
markers = {main = "sys_platform == \\"win32\\"", Docs_Tools = "python_version >= \\"3.0\\""}
files = []

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "0"
"""


def test_poetry_per_group_markers_hold_only_for_taken_groups(tmp_path: Path) -> None:
    """Main locks it for Windows only; the optional docs group everywhere."""
    (tmp_path / "poetry.lock").write_text(POETRY_GROUP_MARKERS)
    (tmp_path / "pyproject.toml").write_text("[tool.poetry.group.Docs_Tools]\noptional = true\n")
    lock = load_poetry_lock(tmp_path / "poetry.lock")
    assert lock.default_groups == ()
    assert [p.name for p in select(lock, LINUX).here] == []
    assert select(lock, LINUX).not_taken == {"pywin-helper": "group 'Docs_Tools'"}
    # The option's normalised name finds the lock's spelling.
    docs = Choice(("docs-tools",), origin="--mlsupply-lock-groups")
    chosen = select(lock, LINUX, groups=docs)
    assert [p.name for p in chosen.here] == ["pywin-helper"]
    assert chosen.notes == ()
    assert [p.name for p in select(lock, WINDOWS).here] == ["pywin-helper"]


def test_poetry_group_markers_with_a_hostile_group_name_are_a_located_error() -> None:
    hostile = '"x\\" or \\"1"'  # a group named  x" or "1  (a quoted TOML key)
    text = POETRY_GROUP_MARKERS.replace('"Docs_Tools"', hostile).replace("Docs_Tools", hostile)
    with pytest.raises(LockfileError, match=r"package\[0\]\.markers"):
        parse_poetry_lock(text, "poetry.lock")


def test_check_command_takes_lock_groups_and_extras(tmp_path: Path, capsys) -> None:
    import sys

    from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE, main

    site = tmp_path / "site"
    _clean_uv_site(
        site,
        six="1.17.0" if sys.version_info >= (3, 11) else "1.16.0",
        torch="2.9.1" if sys.platform == "darwin" else "2.9.1+cpu",
        project=tmp_path,
    )
    install_fake(site, "packaging", "99.0")  # the docs group locks 25.0
    (tmp_path / "uv.lock").write_text(UV_SPLIT)
    base = ["check", "--lock", str(tmp_path / "uv.lock"), "--path", str(site)]
    assert main(base) == EXIT_OK  # a warning: docs is not taken
    out = capsys.readouterr().out
    assert "only for group 'docs', which was not taken" in out
    assert main([*base, "--lock-groups", "dev,docs"]) == EXIT_FINDINGS
    assert "[version-changed] packaging" in capsys.readouterr().out
    assert main([*base, "--lock-groups", "all,dev"]) == EXIT_UNUSABLE
    err = capsys.readouterr().err
    assert "--lock-groups: 'all' and 'none' stand alone, got 'all,dev'" in err


def test_an_installed_package_whose_only_entry_cannot_be_decided_is_an_error(
    tmp_path: Path,
) -> None:
    """``x86_64 ~= 1.0`` cannot be compared: the entry neither applies nor not."""
    lock = parse_requirements('six==1.17.0 ; platform_machine ~= "1.0"\n')
    install_fake(tmp_path, "six", "1.17.0")
    [finding] = _check(tmp_path, lock).findings
    assert (finding.kind, finding.severity) == (Kind.UNEXPECTED, Severity.ERROR)
    assert 'cannot be decided (1.17.0 where platform_machine ~= "1.0")' in finding.message
    assert finding.hint == HINT_UNDECIDED
    # With a marker that can be decided here, the same install is the locked one.
    decidable = parse_requirements('six==1.17.0 ; platform_machine == "x86_64"\n')
    assert _check(tmp_path, decidable).findings == ()


def test_a_reached_uv_entry_whose_own_markers_cannot_be_decided(tmp_path: Path) -> None:
    """Required when reached (never silently 'not needed'), yet it vouches for nothing."""
    text = UV_SPLIT.replace(
        "resolution-markers = [\"sys_platform != 'darwin'\"]",
        "resolution-markers = [\"sys_platform != 'darwin' and platform_machine ~= '1.0'\"]",
    )
    lock = parse_uv_lock(text, "uv.lock")
    selection = select(lock, LINUX)
    assert [p.version for p in selection.undecided] == ["2.9.1+cpu"]
    assert "torch" in {p.name for p in selection.required}
    _clean_uv_site(tmp_path)
    [finding] = [f for f in _check(tmp_path, lock).findings if f.subject == "torch"]
    assert (finding.kind, finding.severity) == (Kind.UNEXPECTED, Severity.ERROR)
    assert "cannot be decided" in finding.message
    missing = tmp_path / "missing"
    install_fake(missing, "six", "1.17.0")
    rows = [r for r in _rows(_check(missing, lock)) if r[1] == "torch"]
    assert rows == [(Kind.MISSING, "torch", "2.9.1+cpu", "not installed")]


def test_min_age_counts_only_files_that_could_be_installed_here() -> None:
    from pytest_mlsupply.foreign_checks import installable_here, too_new
    from pytest_mlsupply.locks.foreign import LockedArtifact, LockedPackage

    fresh = datetime(2026, 1, 9, tzinfo=timezone.utc)
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    release = LockedPackage(
        "torch",
        "2.9.1",
        artifacts=(
            LockedArtifact("torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl", upload_time=old),
            LockedArtifact("torch-2.9.1-cp311-cp311-win_amd64.whl", upload_time=fresh),
            LockedArtifact("torch-2.9.1-cp311-cp311-macosx_11_0_arm64.whl", upload_time=fresh),
        ),
    )
    linux = installable_here(frozenset({"cp311-cp311-manylinux_2_28_x86_64", "py3-none-any"}))
    assert list(too_new([release], 7, NOW, linux)) == []
    [finding] = too_new([release], 7, NOW)  # without a filter: every file counts
    assert "1 other file of it too" in finding.message
    # An sdist (it could be built here) and an unreadable wheel name always count.
    sdist = LockedPackage(
        "torch",
        "2.9.1",
        artifacts=(
            LockedArtifact("torch-2.9.1.tar.gz", upload_time=fresh),
            LockedArtifact("not-a-wheel-name.whl", upload_time=fresh),
        ),
    )
    [finding] = too_new([sdist], 7, NOW, linux)
    assert "1 other file of it too" in finding.message


_EXTRA_NAMES = st.sampled_from(["a", "b", "cpu", "extra-4-proj-gpu"])
_ATOMS = st.builds(
    lambda name, op, reverse: f"'{name}' {op} extra" if reverse else f"extra {op} '{name}'",
    _EXTRA_NAMES,
    st.sampled_from(["==", "!="]),
    st.booleans(),
)
_EXTRA_MARKERS = st.recursive(
    _ATOMS,
    lambda inner: st.builds(
        lambda left, op, right: f"({left}) {op} ({right})",
        inner,
        st.sampled_from(["and", "or"]),
        inner,
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(_EXTRA_MARKERS, _EXTRA_NAMES)
def test_extras_markers_mean_the_same_with_one_extra_taken(text: str, taken: str) -> None:
    """With one extra taken, ``extra == 'x'`` read as membership agrees with PEP 508."""
    from packaging.markers import Marker

    problems = Problems("uv.lock")
    rewritten = parse_extras_marker(text, "marker", problems)
    assert problems.items == [] and rewritten is not None
    assert "extra " not in str(rewritten).replace("extras", "")
    expected = Marker(text).evaluate({"extra": taken})
    env = {"extras": frozenset({taken}), "dependency_groups": frozenset()}
    assert rewritten.evaluate(env, context="lock_file") is expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_marker_text_reads_or_is_a_located_problem(text: str) -> None:
    problems = Problems("uv.lock")
    parse_extras_marker(text, "package[0].marker", problems)
    assert all(item.startswith("package[0].marker: ") for item in problems.items)


POETRY_1_SPLIT = """\
[[package]]
name = "app-lib"
version = "1.0"
description = ""
category = "main"
optional = false
python-versions = "*"

[package.dependencies]
six = [
    {version = "1.16.0", python = "<3.11"},
    {version = "^1.17", python = ">=3.11"},
]

[[package]]
name = "six"
version = "1.16.0"
description = ""
category = "main"
optional = false
python-versions = "*"

[[package]]
name = "six"
version = "1.17.0"
description = ""
category = "main"
optional = false
python-versions = "*"

[metadata]
lock-version = "1.1"
python-versions = "^3.10"
content-hash = "0"

[metadata.files]
app-lib = []
six = []
"""


def test_poetry_1_split_reaches_each_version_only_through_its_alternative(tmp_path: Path) -> None:
    """Poetry 1.x has no per-package markers: only the edge's alternatives tell them apart."""
    lock = parse_poetry_lock(POETRY_1_SPLIT, "poetry.lock")
    assert [p.version for p in select(lock, LINUX).here if p.name == "six"] == ["1.17.0"]
    assert [p.version for p in select(lock, PY310).here if p.name == "six"] == ["1.16.0"]
    install_fake(tmp_path, "app-lib", "1.0")
    install_fake(tmp_path, "six", "1.16.0")
    assert _rows(_check(tmp_path, lock)) == [(Kind.VERSION_CHANGED, "six", "1.17.0", "1.16.0")]
    assert _rows(_check(tmp_path, lock, PY310)) == []
    # A constraint that cannot be read reaches nothing through that alternative.
    odd = parse_poetry_lock(POETRY_1_SPLIT.replace('"^1.17"', '"~=1.17 ?"'), "poetry.lock")
    assert [p.version for p in select(odd, LINUX).here if p.name == "six"] == []


def test_two_entries_that_both_apply_here_vouch_for_nothing(tmp_path: Path) -> None:
    """A lock contradicting itself: either version installed is an error, never a pass."""
    from pytest_mlsupply.foreign_checks import HINT_AMBIGUOUS

    lock = parse_requirements('six==1.16.0\nsix==1.17.0 ; python_version >= "3.0"\n')
    install_fake(tmp_path, "six", "1.17.0")
    [finding] = _check(tmp_path, lock).findings
    assert (finding.kind, finding.severity) == (Kind.NOT_VERIFIABLE, Severity.ERROR)
    assert "2 entries for six that apply here, with different versions" in finding.message
    assert finding.hint == HINT_AMBIGUOUS
    # The same version spelled twice is one version.
    same = parse_requirements('six==1.17\nsix==1.17.0 ; python_version >= "3.0"\n')
    assert _check(tmp_path, same).findings == ()


def test_conflicting_uv_extras_taken_together_vouch_for_nothing(tmp_path: Path) -> None:
    text = UV_SPLIT.replace(
        'extra1 = [\n    { name = "attrs" },\n]',
        'extra1 = [\n    { name = "attrs" },\n'
        f'    {{ name = "six", version = "1.16.0", {INDEX} }},\n]',
    ).replace("resolution-markers = [\"python_full_version < '3.11'\"]\n", "")
    lock = parse_uv_lock(text, "uv.lock")
    _clean_uv_site(tmp_path)
    every = Choice(every=True, origin="--mlsupply-lock-extras")
    rows = [r for r in _rows(_check(tmp_path, lock, extras=every)) if r[1] == "six"]
    assert rows == [(Kind.NOT_VERIFIABLE, "six", "1.16.0 or 1.17.0", "1.17.0")]
