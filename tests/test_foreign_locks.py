"""Foreign lockfiles: parsing each format, malformed input, selection per platform, the rules."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlsupply.errors import LockfileError, LockfileNotFoundError, SettingsError
from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.foreign_checks import (
    NOTE_NO_CONTENT,
    check_foreign_lock,
    too_new,
    version_matches,
)
from pytest_mlsupply.locks.foreign import (
    FORMAT_MLSUPPLY,
    FORMAT_PIPFILE,
    FORMAT_POETRY,
    FORMAT_PYLOCK,
    FORMAT_REQUIREMENTS,
    FORMAT_UV,
    LockedArtifact,
    LockedPackage,
    Problems,
    detect_format,
    filename_of,
    load_foreign_lock,
    locked_artifacts,
    parse_upload_time,
    select,
)
from pytest_mlsupply.locks.pipfile import parse_pipfile_lock
from pytest_mlsupply.locks.poetry import parse_poetry_lock, python_marker
from pytest_mlsupply.locks.pylock import parse_pylock
from pytest_mlsupply.locks.requirements import (
    INCLUDE_CYCLE,
    NOT_PINNED,
    UNKNOWN_OPTION,
    load_requirements,
    logical_lines,
    parse_requirements,
)
from pytest_mlsupply.locks.uvlock import load_uv_lock, parse_uv_lock, project_default_groups
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

ASSETS = Path(__file__).parent / "assets" / "foreign"


def _json_error_place(name: str) -> str:
    """Where this Python's JSON reader stops in a malformed asset: 3.13 names the trailing
    comma itself ("line 4, column 39"), earlier versions the brace after it (column 40)."""
    try:
        json.loads((ASSETS / name).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}, column {exc.colno}: not valid JSON"
    raise AssertionError(f"{name} is valid JSON")


LINUX = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.7",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_release": "6.1",
    "platform_system": "Linux",
    "platform_version": "#1",
    "python_full_version": "3.11.7",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "sys_platform": "linux",
}
MACOS = {
    **LINUX,
    "platform_system": "Darwin",
    "sys_platform": "darwin",
    "platform_machine": "arm64",
}
WINDOWS = {**LINUX, "platform_system": "Windows", "sys_platform": "win32", "os_name": "nt"}
PY310 = {**LINUX, "python_full_version": "3.10.14", "python_version": "3.10"}

SHA_A = "a" * 64
SHA_B = "b" * 64

#: One asset per malformed input: its format and the messages its error must contain.
MALFORMED = {
    "pylock-not-toml.toml": (FORMAT_PYLOCK, ["line 3, column 11: not valid TOML"]),
    "pylock-no-created-by.toml": (FORMAT_PYLOCK, ["created-by: Missing required value"]),
    "pylock-bad-marker.toml": (FORMAT_PYLOCK, ["packages[1].marker: Expected marker operator"]),
    "pylock-future.toml": (FORMAT_PYLOCK, ["pylock version 2.0 is not supported"]),
    "uv-future.lock": (FORMAT_UV, ["version: uv.lock version 2 is not supported"]),
    "uv-problems.lock": (
        FORMAT_UV,
        [
            "4 problems",
            "package[0].sdist.hash: invalid hash 'sha256:nothex'",
            "package[1].source: unknown source kind 'ftp'",
            "package[1].dependencies[0]: names 'scipy', which has no [[package]] entry",
            "package[2].wheels[0].upload-time: invalid upload-time 'yesterday'",
        ],
    ),
    "poetry-future.lock": (FORMAT_POETRY, ["metadata.lock-version: '3.0' is not supported"]),
    "poetry-problems.lock": (
        FORMAT_POETRY,
        [
            "package[0].version: must be a string, got 2",
            "package[0].files[0].hash: invalid hash 'sha256-abc'",
            "package[1].markers: invalid environment marker 'sys_platform ==='",
        ],
    ),
    "pipfile-not-json.lock": (FORMAT_PIPFILE, [_json_error_place("pipfile-not-json.lock")]),
    "pipfile-problems.lock": (
        FORMAT_PIPFILE,
        [
            "default.numpy.hashes[0]: invalid hash 'sha256:zz'",
            "default.numpy.version: expected '==VERSION', got '>=2.2'",
            "default.ruamel.yaml: must be an object, got '0.17.21'",
            "develop.pytest.markers: invalid environment marker",
        ],
    ),
    "requirements-problems.txt": (
        FORMAT_REQUIREMENTS,
        [
            f"line 4: 'scipy>=1.13' {NOT_PINNED}",
            "line 5: invalid hash 'md5:xyz'",
            f"line 6: {UNKNOWN_OPTION} '--frobnicate'",
            "line 7: invalid requirement 'requests[socks]==2.32.3 ; python_version >='",
        ],
    ),
    "requirements-cycle-a.txt": (
        FORMAT_REQUIREMENTS,
        [
            f"requirements-cycle-b.txt, line 2: {INCLUDE_CYCLE}: requirements-cycle-a.txt -> "
            "requirements-cycle-b.txt -> requirements-cycle-a.txt"
        ],
    ),
    "requirements-missing-include.txt": (
        FORMAT_REQUIREMENTS,
        ["line 1: cannot read does-not-exist.txt"],
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_foreign_lock_names_file_place_and_problem(name: str) -> None:
    fmt, expected = MALFORMED[name]
    with pytest.raises(LockfileError) as excinfo:
        load_foreign_lock(ASSETS / name, fmt)
    message = str(excinfo.value)
    assert message.startswith(str(ASSETS / name))
    for part in expected:
        assert part in message
    assert "Traceback" not in message


def test_every_malformed_asset_is_in_the_table() -> None:
    names = sorted(p.name for p in ASSETS.iterdir() if p.name != "requirements-cycle-b.txt")
    assert names == sorted(MALFORMED)


def test_missing_foreign_lock_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LockfileNotFoundError, match=r"uv\.lock not found"):
        load_foreign_lock(tmp_path / "uv.lock", FORMAT_UV)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("pylock.toml", FORMAT_PYLOCK),
        ("pylock.gpu.toml", FORMAT_PYLOCK),
        ("uv.lock", FORMAT_UV),
        ("poetry.lock", FORMAT_POETRY),
        ("Pipfile.lock", FORMAT_PIPFILE),
        ("requirements.txt", FORMAT_REQUIREMENTS),
        ("requirements_lock_3_10.txt", FORMAT_REQUIREMENTS),
        ("mlsupply.lock", FORMAT_MLSUPPLY),
        ("ci-env.lock", FORMAT_MLSUPPLY),
        ("pylock.toml.bak", FORMAT_MLSUPPLY),
    ],
)
def test_format_detected_by_file_name(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt
    assert detect_format(Path(name), "auto") == fmt


def test_requested_format_overrides_the_name() -> None:
    assert detect_format(Path("deps.lock"), FORMAT_UV) == FORMAT_UV
    with pytest.raises(SettingsError, match="unknown lock format 'conda'"):
        detect_format(Path("x"), "conda")


# ---------------------------------------------------------------- requirements syntax


def test_requirements_pins_hashes_markers_and_continuations() -> None:
    lock = parse_requirements(
        f"""\
# header comment
numpy==2.2.6 \\
    --hash=sha256:{SHA_A} \\
    --hash sha256:{SHA_B}
    # via torch
-i https://pypi.example.invalid/simple
--extra-index-url=https://mirror.example.invalid/simple
--trusted-host mirror.example.invalid
--only-binary :all:
--require-hashes
Torch_Vision===0.20.1+cpu ; sys_platform == "linux"   # trailing comment
demo @ https://files.example.invalid/demo-1.0-py3-none-any.whl#sha256={SHA_A}
mylib @ git+https://example.invalid/org/mylib.git@{"c" * 40}
"""
    )
    by_name = {p.name: p for p in lock.packages}
    assert list(by_name) == ["numpy", "torch-vision", "demo", "mylib"]
    numpy = by_name["numpy"]
    assert numpy.version == "2.2.6" and numpy.where == "line 2"
    assert [d.hex for d in numpy.hashes] == [SHA_A, SHA_B]
    vision = by_name["torch-vision"]
    assert vision.arbitrary and vision.version == "0.20.1+cpu"
    assert str(vision.marker) == 'sys_platform == "linux"'
    assert by_name["demo"].source.kind == "url"
    assert by_name["demo"].source.archive_hash == f"sha256:{SHA_A}"
    assert by_name["mylib"].source.commit == "c" * 40


def test_includes_are_relative_to_the_including_file_and_constraints_are_optional(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    top = "-r sub/base.txt\n-c constraints.txt\nrich==14.0.0\n"
    (tmp_path / "requirements.txt").write_text(top)
    (tmp_path / "sub" / "base.txt").write_text("numpy==2.2.6\n-r more.txt\n")
    (tmp_path / "sub" / "more.txt").write_text("scipy==1.15.3\n")
    (tmp_path / "constraints.txt").write_text("urllib3==2.5.0\n")
    lock = load_requirements(tmp_path / "requirements.txt")
    rows = [(p.name, p.version, p.required, p.where) for p in lock.packages]
    assert rows == [
        ("numpy", "2.2.6", True, "sub/base.txt, line 1"),
        ("scipy", "1.15.3", True, "sub/more.txt, line 1"),
        ("urllib3", "2.5.0", False, "constraints.txt, line 1"),
        ("rich", "14.0.0", True, "line 3"),
    ]


def test_comment_line_ends_a_continuation_as_in_pip() -> None:
    lines = list(logical_lines("a==1 \\\n# note\nb==2\n"))
    assert [(line.number, line.text) for line in lines] == [(1, "a==1"), (3, "b==2")]


_SPACES = st.text(alphabet=" \t", min_size=0, max_size=3)
_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}([._-][A-Za-z0-9]{1,4})?", fullmatch=True)
_VERSIONS = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(\+cpu)?", fullmatch=True)
_MARKERS = st.sampled_from(
    [
        None,
        'sys_platform == "linux"',
        "sys_platform=='linux'",
        'python_version >= "3.9"',
        "python_version>='3.9' and os_name == 'posix'",
        "platform_machine!='arm64'",
    ]
)
_COMMENTS = st.sampled_from(["", "  # pinned", "\t# via -r requirements.in"])


@settings(max_examples=150, deadline=None)
@given(
    pins=st.lists(
        st.tuples(_NAMES, _VERSIONS, _MARKERS, _SPACES, _SPACES, st.booleans(), _COMMENTS),
        min_size=1,
        max_size=6,
    ),
    hashes=st.lists(st.sampled_from([SHA_A, SHA_B]), max_size=2),
)
def test_requirement_lines_in_any_spelling_parse_to_the_same_pins(pins, hashes) -> None:
    canonical = []
    text = []
    for name, version, marker, pad1, pad2, continued, comment in pins:
        line = f"{pad1}{name}{pad2}=={pad2}{version}"
        if marker:
            line += f"{pad1} ;{pad2}{marker}"
        for digest in hashes:
            line += f" \\\n    --hash=sha256:{digest}" if continued else f" --hash sha256:{digest}"
        text.append(line + comment)
        text.append("# between" if continued else "")
        canonical.append(f"{name}=={version}" + (f"; {marker}" if marker else ""))
    lock = parse_requirements("\n".join(text) + "\n")
    reference = parse_requirements("\n".join(canonical) + "\n")
    got = [(p.name, p.version, str(p.marker), [d.hex for d in p.hashes]) for p in lock.packages]
    want = [(p.name, p.version, str(p.marker), hashes) for p in reference.packages]
    assert got == want


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_our_error(text: str) -> None:
    try:
        parse_requirements(text)
    except LockfileError as exc:
        assert str(exc).startswith("requirements.txt")


# ---------------------------------------------------------------- per-platform selection

PYLOCK = f"""\
lock-version = "1.0"
created-by = "hand"
requires-python = ">=3.10"
environments = ["sys_platform == 'linux'", "sys_platform == 'darwin'"]
default-groups = ["default"]
dependency-groups = ["default", "dev"]

[[packages]]
name = "numpy"
version = "2.2.6"
wheels = [{{ name = "numpy-2.2.6-py3-none-any.whl", upload-time = 2025-05-17T21:00:00Z, url = "https://files.example.invalid/numpy-2.2.6-py3-none-any.whl", hashes = {{ sha256 = "{SHA_A}" }} }}]

[[packages]]
name = "appnope"
version = "0.1.4"
marker = "sys_platform == 'darwin'"
wheels = [{{ name = "appnope-0.1.4-py3-none-any.whl", url = "https://files.example.invalid/appnope-0.1.4-py3-none-any.whl", hashes = {{ sha256 = "{SHA_B}" }} }}]

[[packages]]
name = "pytest"
version = "8.4.2"
marker = "'dev' in dependency_groups"
wheels = [{{ name = "pytest-8.4.2-py3-none-any.whl", url = "https://files.example.invalid/pytest-8.4.2-py3-none-any.whl", hashes = {{ sha256 = "{SHA_B}" }} }}]
"""  # noqa: E501


def _names(packages) -> list[str]:
    return sorted(p.name for p in packages)


def test_pylock_markers_groups_and_environments_per_platform() -> None:
    lock = parse_pylock(PYLOCK, "pylock.toml")
    assert _names(select(lock, LINUX).required) == ["numpy"]
    assert _names(select(lock, MACOS).required) == ["appnope", "numpy"]
    windows = select(lock, WINDOWS)
    assert "matches none of the lock's environments" in str(windows.not_applicable)
    old = {**LINUX, "python_full_version": "3.9.18", "python_version": "3.9"}
    assert select(lock, old).not_applicable == "the lock requires Python >=3.10, this is 3.9.18"


UV_LOCK = f"""\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "colorama", marker = "sys_platform == 'win32'" }},
    {{ name = "torch", version = "2.9.1", source = {{ registry = "https://pypi.example.invalid/simple" }}, marker = "extra != 'extra-4-proj-cpu'" }},
    {{ name = "torch", version = "2.9.1+cpu", source = {{ registry = "https://download.example.invalid/whl/cpu" }}, marker = "extra == 'extra-4-proj-cpu'" }},
]

[package.dev-dependencies]
dev = [{{ name = "pytest" }}]

[[package]]
name = "colorama"
version = "0.4.6"
source = {{ registry = "https://pypi.example.invalid/simple" }}
wheels = [{{ url = "https://files.example.invalid/colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:{SHA_A}", upload-time = "2022-10-25T02:36:20.889Z" }}]

[[package]]
name = "torch"
version = "2.9.1"
source = {{ registry = "https://pypi.example.invalid/simple" }}
dependencies = [{{ name = "nvidia-nccl-cu12", marker = "sys_platform == 'linux'" }}]
wheels = [{{ url = "https://files.example.invalid/torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl", hash = "sha256:{SHA_B}", upload-time = "2025-11-12T15:20:00Z" }}]

[[package]]
name = "torch"
version = "2.9.1+cpu"
source = {{ registry = "https://download.example.invalid/whl/cpu" }}
wheels = [{{ url = "https://download.example.invalid/whl/cpu/torch-2.9.1%2Bcpu-cp311-cp311-linux_x86_64.whl", hash = "sha256:{SHA_A}" }}]

[[package]]
name = "nvidia-nccl-cu12"
version = "2.27.5"
source = {{ registry = "https://pypi.example.invalid/simple" }}
wheels = [{{ url = "https://files.example.invalid/nvidia_nccl_cu12-2.27.5-py3-none-manylinux2014_x86_64.whl", hash = "sha256:{SHA_A}" }}]

[[package]]
name = "pytest"
version = "8.4.2"
source = {{ registry = "https://pypi.example.invalid/simple" }}
wheels = [{{ url = "https://files.example.invalid/pytest-8.4.2-py3-none-any.whl", hash = "sha256:{SHA_B}" }}]
"""  # noqa: E501


def test_uv_lock_graph_walk_per_platform() -> None:
    lock = parse_uv_lock(UV_LOCK, "uv.lock")
    linux = select(lock, LINUX)
    assert [(p.name, p.version) for p in linux.required] == [
        ("torch", "2.9.1"),
        ("nvidia-nccl-cu12", "2.27.5"),
        ("pytest", "8.4.2"),
    ]
    assert _names(select(lock, MACOS).required) == ["pytest", "torch"]
    assert _names(select(lock, WINDOWS).required) == ["colorama", "pytest", "torch"]
    assert "proj" not in _names(linux.required + linux.allowed)  # the virtual root


UV_LOCK_DOCS = UV_LOCK.replace(
    'dev = [{ name = "pytest" }]', 'dev = [{ name = "pytest" }]\ndocs = [{ name = "colorama" }]'
)


@pytest.mark.parametrize(
    ("pyproject", "required"),
    [
        (None, ["nvidia-nccl-cu12", "pytest", "torch"]),  # uv installs "dev" by default
        ("[project]\nname = 'proj'\n", ["nvidia-nccl-cu12", "pytest", "torch"]),
        ("[tool.uv]\ndefault-groups = ['Docs']\n", ["colorama", "nvidia-nccl-cu12", "torch"]),
        ("[tool.uv]\ndefault-groups = []\n", ["nvidia-nccl-cu12", "torch"]),
        (
            "[tool.uv]\ndefault-groups = 'all'\n",
            ["colorama", "nvidia-nccl-cu12", "pytest", "torch"],
        ),
    ],
)
def test_uv_default_groups_come_from_the_pyproject_beside_the_lock(
    tmp_path: Path, pyproject: str | None, required: list[str]
) -> None:
    assert "docs = [" in UV_LOCK_DOCS
    (tmp_path / "uv.lock").write_text(UV_LOCK_DOCS, encoding="utf-8")
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    lock = load_uv_lock(tmp_path / "uv.lock")
    assert _names(select(lock, LINUX).required) == required
    assert not [n for n in lock.notes if "pyproject" in n]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("[tool.uv]\ndefault-groups = 'dev'\n", "tool.uv.default-groups: expected a list"),
        ("[tool.uv]\ndefault-groups = [1]\n", "tool.uv.default-groups: expected a list"),
        ("[tool.uv\n", "line 1"),
    ],
)
def test_a_bad_uv_default_groups_setting_keeps_uvs_default_with_a_note(
    tmp_path: Path, text: str, note: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    groups, message = project_default_groups(tmp_path / "pyproject.toml")
    assert groups == ("dev",)
    assert message is not None and note in message and "pyproject.toml" in message
    (tmp_path / "uv.lock").write_text(UV_LOCK, encoding="utf-8")
    assert message in load_uv_lock(tmp_path / "uv.lock").notes


POETRY_1 = f"""\
[[package]]
name = "pytest"
version = "6.2.4"
description = ""
category = "dev"
optional = false
python-versions = ">=3.6"

[package.dependencies]
atomicwrites = {{version = ">=1.0", markers = "sys_platform == \\"win32\\""}}
colorama = {{version = "*", markers = "sys_platform == \\"win32\\""}}
toml = "*"
tomli = {{version = ">=1", python = "<3.11"}}

[[package]]
name = "atomicwrites"
version = "1.4.0"
description = ""
category = "dev"
optional = false
python-versions = "*"

[[package]]
name = "colorama"
version = "0.4.4"
description = ""
category = "dev"
optional = false
python-versions = "*"

[[package]]
name = "toml"
version = "0.10.2"
description = ""
category = "dev"
optional = false
python-versions = "*"

[[package]]
name = "tomli"
version = "2.0.1"
description = ""
category = "dev"
optional = false
python-versions = "^3.7"

[metadata]
lock-version = "1.1"
python-versions = "^3.9"
content-hash = "x"

[metadata.files]
pytest = [{{file = "pytest-6.2.4-py3-none-any.whl", hash = "sha256:{SHA_A}"}}]
atomicwrites = []
colorama = []
toml = [{{file = "toml-0.10.2.tar.gz", hash = "sha256:{SHA_B}"}}]
tomli = []
"""


def test_poetry_1_walks_edge_markers_and_python_constraints() -> None:
    lock = parse_poetry_lock(POETRY_1, "poetry.lock")
    assert _names(select(lock, LINUX).required) == ["pytest", "toml"]
    assert _names(select(lock, PY310).required) == ["pytest", "toml", "tomli"]
    assert _names(select(lock, WINDOWS).required) == ["atomicwrites", "colorama", "pytest", "toml"]
    assert [d.hex for d in lock.packages[3].hashes] == [SHA_B]


@pytest.mark.parametrize(
    ("constraint", "marker"),
    [
        ("^3.9", "python_full_version >= '3.9' and python_full_version < '4'"),
        ("~3.9", "python_full_version >= '3.9' and python_full_version < '3.10'"),
        ("*", ""),
        (">=3.6,<3.8", "python_full_version >= '3.6' and python_full_version < '3.8'"),
        ("<3.8 || >=3.10", "(python_full_version < '3.8') or (python_full_version >= '3.10')"),
        ("nonsense", None),
    ],
)
def test_poetry_python_constraints_as_markers(constraint: str, marker: str | None) -> None:
    assert python_marker(constraint) == marker


def test_pipfile_sections_markers_and_dotted_names() -> None:
    text = json.dumps(
        {
            "_meta": {"pipfile-spec": 6, "requires": {"python_version": "3.10"}},
            "default": {
                "ruamel.yaml": {"version": "==0.17.21", "hashes": [f"sha256:{SHA_A}"]},
                "pywin32": {"version": "==306", "markers": "sys_platform == 'win32'"},
            },
            "develop": {"pytest": {"version": "==8.4.2"}},
        }
    )
    lock = parse_pipfile_lock(text, "Pipfile.lock")
    assert _names(select(lock, LINUX).required) == ["pytest", "ruamel-yaml"]
    assert _names(select(lock, WINDOWS).required) == ["pytest", "pywin32", "ruamel-yaml"]
    assert [p.group for p in lock.packages] == ["default", "default", "develop"]


# ---------------------------------------------------------------- versions and the rules


@pytest.mark.parametrize(
    ("installed", "locked", "arbitrary", "same"),
    [
        ("2.9.1", "2.9.1", False, True),
        ("2.9.1+cpu", "2.9.1+cpu", False, True),
        ("2.9.1", "2.9.1+cpu", False, False),  # the lock names a local build
        ("2.9.1+cu128", "2.9.1+cpu", False, False),
        ("2.9.1+cpu", "2.9.1", False, True),  # PEP 440: == without a label accepts any
        ("1.0", "1.0.0", False, True),
        ("1.0.0", "1.0", True, False),  # === compares strings
        ("2.0", "1.0", False, False),
    ],
)
def test_version_matching(installed: str, locked: str, arbitrary: bool, same: bool) -> None:
    assert version_matches(installed, locked, arbitrary=arbitrary) is same


def _snapshot(site: Path):
    return take_snapshot([str(site)])


def test_rules_against_a_uv_lock(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "torch", "2.9.1+cu128")  # the lock says 2.9.1 (PEP 440: matches)
    install_fake(site, "pytest", "8.4.1")  # version drift
    install_fake(site, "rich", "14.0.0")  # not locked
    install_fake(site, "pip", "25.2")  # installer baseline: never unexpected
    # nvidia-nccl-cu12 is missing; colorama (Windows only) must not be.
    lock = parse_uv_lock(UV_LOCK, "uv.lock")
    report = check_foreign_lock(_snapshot(site), lock, environment=LINUX)
    rows = [(f.kind, f.subject, f.expected, f.actual) for f in report.findings]
    assert rows == [
        (Kind.MISSING, "nvidia-nccl-cu12", "2.27.5", "not installed"),
        (Kind.VERSION_CHANGED, "pytest", "8.4.2", "8.4.1"),
        (Kind.UNEXPECTED, "rich", "not installed", "14.0.0"),
    ]
    assert NOTE_NO_CONTENT.format(title="uv.lock") in report.notes
    assert any("pip" in note and "not reported as unexpected" in note for note in report.notes)


def test_local_label_in_the_lock_must_match(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "torch", "2.9.1")
    lock = parse_requirements("torch==2.9.1+cpu\n")
    report = check_foreign_lock(_snapshot(site), lock, environment=LINUX)
    assert [(f.kind, f.expected, f.actual) for f in report.findings] == [
        (Kind.VERSION_CHANGED, "2.9.1+cpu", "2.9.1")
    ]


def test_source_checks_vcs_commit_and_archive_hash(tmp_path: Path) -> None:
    site = tmp_path / "site"
    commit, other = "c" * 40, "d" * 40
    install_fake(
        site,
        "mylib",
        "0.4.0",
        direct_url=json.dumps(
            {
                "url": "https://example.invalid/org/mylib.git",
                "vcs_info": {"vcs": "git", "commit_id": other},
            }
        ),
    )
    install_fake(
        site,
        "demo",
        "1.0",
        direct_url=json.dumps(
            {
                "url": "https://files.example.invalid/demo-1.0-py3-none-any.whl",
                "archive_info": {"hashes": {"sha256": SHA_B}},
            }
        ),
    )
    install_fake(site, "numpy", "2.2.6")
    lock = parse_requirements(
        f"mylib @ git+https://example.invalid/org/mylib.git@{commit}\n"
        f"demo==1.0 --hash=sha256:{SHA_A}\n"
        f"numpy==2.2.6 --hash=sha256:{SHA_A}\n"
    )
    report = check_foreign_lock(_snapshot(site), lock, environment=LINUX)
    rows = {f.subject: (f.kind, f.message) for f in report.findings}
    assert set(rows) == {"demo", "mylib"}
    assert rows["mylib"][0] is Kind.SOURCE_CHANGED
    assert f"locked at commit {commit}, installed at commit {other}" in rows["mylib"][1]
    assert rows["demo"][0] is Kind.SOURCE_CHANGED
    assert f"sha256:{SHA_B} is none of the 1 hashes the lock records" in rows["demo"][1]


def test_archive_with_a_locked_hash_is_clean(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(
        site,
        "demo",
        "1.0",
        direct_url=json.dumps(
            {"url": "file:///somewhere/demo-1.0.whl", "archive_info": {"hash": f"sha256={SHA_A}"}}
        ),
    )
    lock = parse_requirements(f"demo==1.0 --hash=sha256:{SHA_B} --hash=sha256:{SHA_A}\n")
    assert check_foreign_lock(_snapshot(site), lock, environment=LINUX).findings == ()


def test_lock_for_another_python_is_one_clear_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "numpy", "2.2.6")
    lock = parse_pylock(PYLOCK.replace(">=3.10", ">=3.13"), "pylock.toml")
    report = check_foreign_lock(_snapshot(site), lock, environment=LINUX)
    assert [(f.kind, f.severity) for f in report.findings] == [
        (Kind.LOCK_NOT_APPLICABLE, Severity.ERROR)
    ]
    assert "requires Python >=3.13, this is 3.11.7" in report.findings[0].message


def test_min_age_flags_recent_uploads_with_an_injected_now(tmp_path: Path) -> None:
    lock = parse_uv_lock(UV_LOCK, "uv.lock")
    now = datetime(2025, 11, 15, tzinfo=timezone.utc)
    findings = list(too_new(lock.packages, 7, now))
    assert [(f.kind, f.subject, f.actual) for f in findings] == [
        (Kind.TOO_NEW, "torch", "2025-11-12T15:20:00+00:00")
    ]
    assert "torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl" in findings[0].message
    assert "2.4 days before this run" in findings[0].message
    assert list(too_new(lock.packages, 2, now)) == []
    # A release's files come as one finding naming the newest file.
    fresh = datetime(2025, 11, 14, tzinfo=timezone.utc)
    release = LockedPackage(
        "torch",
        "2.9.1",
        artifacts=(
            LockedArtifact("torch-2.9.1-cp311-win_amd64.whl", upload_time=fresh),
            LockedArtifact("torch-2.9.1-cp312-win_amd64.whl", upload_time=fresh),
            LockedArtifact(
                "torch-2.9.1.tar.gz", upload_time=datetime(2025, 1, 1, tzinfo=timezone.utc)
            ),
        ),
    )
    [single] = too_new([release], 7, now)
    assert (
        "torch 2.9.1: torch-2.9.1-cp312-win_amd64.whl was uploaded 2025-11-14T00:00:00+00:00"
        in (single.message)
    )
    assert single.message.endswith("less than the minimum age of 7 days; 1 other file of it too")
    site = tmp_path / "site"
    install_fake(site, "torch", "2.9.1")
    install_fake(site, "nvidia-nccl-cu12", "2.27.5")
    install_fake(site, "pytest", "8.4.2")
    report = check_foreign_lock(_snapshot(site), lock, environment=LINUX, min_age_days=7, now=now)
    assert [(f.kind, f.subject) for f in report.findings] == [(Kind.TOO_NEW, "torch")]


def test_locked_artifacts_lists_every_file_hash() -> None:
    lock = parse_uv_lock(UV_LOCK, "uv.lock")
    rows = [(a.name, a.version, a.filename, a.digest.hex) for a in locked_artifacts(lock)]
    assert ("colorama", "0.4.6", "colorama-0.4.6-py2.py3-none-any.whl", SHA_A) in rows
    assert ("torch", "2.9.1+cpu", "torch-2.9.1+cpu-cp311-cp311-linux_x86_64.whl", SHA_A) in rows
    assert len(rows) == 5


# ---------------------------------------------------------------- any input: parsed or our error

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["", ".", "1.0", "==1.0", "sha256:" + SHA_A, "sys_platform == 'linux'", "x"]),
    st.text(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "version",
                    "source",
                    "registry",
                    "git",
                    "editable",
                    "virtual",
                    "url",
                    "path",
                    "hash",
                    "hashes",
                    "sha256",
                    "marker",
                    "markers",
                    "wheels",
                    "sdist",
                    "dependencies",
                    "extra",
                    "optional",
                    "groups",
                    "files",
                    "file",
                    "upload-time",
                    "vcs",
                    "ref",
                    "resolution-markers",
                    "optional-dependencies",
                    "dev-dependencies",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def _clean(value):
    """Drop None (TOML has no null) so the document can be written as TOML."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value if v is not None]
    return value


def _toml(document) -> str:
    import tomli_w

    return tomli_w.dumps(_clean(document))


@settings(max_examples=150, deadline=None)
@given(st.lists(_VALUES, max_size=3), st.sampled_from([1, 2, 3, 4, 5]))
def test_any_uv_lock_document_parses_or_raises_our_error(packages, revision) -> None:
    document = {"version": 1, "revision": revision, "package": packages}
    with contextlib.suppress(LockfileError):
        parse_uv_lock(_toml(document), "uv.lock")


@settings(max_examples=150, deadline=None)
@given(st.lists(_VALUES, max_size=3), _VALUES)
def test_any_poetry_lock_document_parses_or_raises_our_error(packages, files) -> None:
    document = {"package": packages, "metadata": {"lock-version": "2.1", "files": files}}
    with contextlib.suppress(LockfileError):
        parse_poetry_lock(_toml(document), "poetry.lock")


@settings(max_examples=150, deadline=None)
@given(_VALUES, _VALUES, _VALUES)
def test_any_pipfile_lock_document_parses_or_raises_our_error(meta, default, develop) -> None:
    text = json.dumps({"_meta": meta, "default": default, "develop": develop})
    with contextlib.suppress(LockfileError):
        parse_pipfile_lock(text, "Pipfile.lock")


@settings(max_examples=150, deadline=None)
@given(st.lists(_VALUES, max_size=3), _VALUES)
def test_any_pylock_document_parses_or_raises_our_error(packages, environments) -> None:
    document = {
        "lock-version": "1.0",
        "created-by": "hand",
        "environments": environments,
        "packages": packages,
    }
    try:
        lock = parse_pylock(_toml(document), "pylock.toml")
    except LockfileError:
        return
    select(lock, LINUX)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_in_any_format_parses_or_raises_our_error(text: str) -> None:
    for parse in (parse_uv_lock, parse_poetry_lock, parse_pipfile_lock, parse_pylock):
        with contextlib.suppress(LockfileError):
            parse(text, "lock")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="<>=!~^*|, .0123456789", max_size=20))
def test_poetry_python_constraint_is_a_marker_or_none(constraint: str) -> None:
    from packaging.markers import Marker

    marker = python_marker(constraint)
    if marker:
        Marker(marker).evaluate(LINUX)


def test_missing_development_group_entries_are_warnings(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "torch", "2.9.1")
    install_fake(site, "nvidia-nccl-cu12", "2.27.5")
    uv = check_foreign_lock(_snapshot(site), parse_uv_lock(UV_LOCK, "uv.lock"), environment=LINUX)
    assert [(f.kind, f.severity, f.subject) for f in uv.findings] == [
        (Kind.MISSING, Severity.WARNING, "pytest")
    ]
    assert "in uv.lock (a development group) but not installed" in uv.findings[0].message
    pipfile = parse_pipfile_lock(
        json.dumps(
            {
                "default": {"torch": {"version": "==2.9.1"}, "numpy": {"version": "==2.2.6"}},
                "develop": {"pytest": {"version": "==8.4.2"}},
            }
        ),
        "Pipfile.lock",
    )
    report = check_foreign_lock(_snapshot(site), pipfile, environment=LINUX)
    rows = [(f.kind, f.severity, f.subject) for f in report.findings]
    assert rows == [
        (Kind.MISSING, Severity.ERROR, "numpy"),
        (Kind.UNEXPECTED, Severity.WARNING, "nvidia-nccl-cu12"),
        (Kind.MISSING, Severity.WARNING, "pytest"),
    ]
    assert "(development group develop)" in report.findings[2].message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc/%2B+.-_?#=:", max_size=30))
def test_artifact_file_name_matches_the_url_parser(tail: str) -> None:
    from urllib.parse import unquote, urlsplit

    from pytest_mlsupply.locks.foreign import filename_of

    url = f"https://files.example.invalid/{tail}"
    expected = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "fallback"
    assert filename_of(url, "fallback") == expected


# Upload times: one RFC 3339 grammar on every Python (3.10's fromisoformat rejects the two-digit
# fractions uv writes; 3.11+ accepts forms RFC 3339 does not).
@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    digits=st.integers(0, 9),
    separator=st.sampled_from("Tt "),
    zone=st.sampled_from(["Z", "z", ""]) | st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
def test_upload_time_reads_every_rfc3339_spelling_alike(
    moment: datetime, digits: int, separator: str, zone: str | int
) -> None:
    fraction = f"{moment.microsecond:06d}".ljust(9, "7")[:digits]
    text = f"{moment.year:04d}-{moment:%m-%d}{separator}{moment:%H:%M:%S}"  # %Y does not pad
    text += f".{fraction}" if digits else ""
    if isinstance(zone, int):  # an offset in minutes, written +HH:MM
        hours, minutes = divmod(abs(zone), 60)
        text += f"{'-' if zone < 0 else '+'}{hours:02d}:{minutes:02d}"
        tz = timezone(timedelta(minutes=zone))
    else:  # Z, or no offset at all (a local date-time, taken as UTC)
        text += zone
        tz = timezone.utc
    problems = Problems("uv.lock")
    parsed = parse_upload_time(text, "w.upload-time", problems)
    micro = int(fraction[:6].ljust(6, "0")) if digits else 0
    expected = moment.replace(microsecond=micro, tzinfo=tz)
    assert problems.items == []
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "20250908T230759Z",  # basic format: 3.11+ fromisoformat reads it
        "2025-09-08T23:07:59,05Z",  # comma fraction: likewise
        "2025-09-08T23:07:59+0000",  # offset without a colon: likewise
        "2025-09-08",  # a date alone is no date-time
        "2025-09-08T23:07Z",  # seconds are required
        "2025-09-08T23:07:59.Z",  # an empty fraction (3.10 reads it)
        "2025-13-01T00:00:00Z",
        "2025-09-08T24:00:00Z",
        "2025-09-08T23:07:59+00:60",
        "2025-09-08T23:07:59+24:00",
        "2025-09-08T23:07:59Z junk",
        "\u0662\u0660\u0662\u0665-09-08T23:07:59Z",  # non-ASCII digits
        "yesterday",
        "",
    ],
)
def test_upload_time_outside_rfc3339_is_a_located_problem(text: str) -> None:
    problems = Problems("uv.lock")
    assert parse_upload_time(text, "package[0].wheels[0].upload-time", problems) is None
    assert problems.items == [
        f"package[0].wheels[0].upload-time: invalid upload-time {text!r} "
        "(expected an RFC 3339 date-time)"
    ]


def test_uv_lock_with_two_digit_fractions_loads_on_every_python() -> None:
    text = UV_LOCK.replace('"2022-10-25T02:36:20.889Z"', '"2022-10-25T02:36:20.05Z"')
    lock = parse_uv_lock(text, "uv.lock")
    [colorama] = [p for p in lock.packages if p.name == "colorama"]
    assert colorama.artifacts[0].upload_time == datetime(
        2022, 10, 25, 2, 36, 20, 50000, tzinfo=timezone.utc
    )


def test_a_url_urlsplit_rejects_is_read_not_a_crash() -> None:
    text = UV_LOCK.replace(
        "https://files.example.invalid/colorama-0.4.6-py2.py3-none-any.whl",
        "https://[files.example.invalid/colorama-0.4.6-py2.py3-none-any.whl?x=1#frag",
    )
    lock = parse_uv_lock(text, "uv.lock")
    [colorama] = [p for p in lock.packages if p.name == "colorama"]
    assert colorama.artifacts[0].filename == "colorama-0.4.6-py2.py3-none-any.whl"


@given(st.text())
def test_filename_of_never_raises(url: str) -> None:
    assert isinstance(filename_of(url, "fallback"), str)


@pytest.mark.parametrize(
    "locked", ["wheels/tool-1.0-py3-none-any.whl", "/abs/tool-1.0-py3-none-any.whl"]
)
def test_a_local_wheel_locked_by_path_is_not_matched_by_name(tmp_path: Path, locked: str) -> None:
    """``uv add ./wheels/x.whl`` locks ``{ path = ... }``; uv's direct_url.json has a file: URL
    and no hash. The same file name is not enough: the locked wheel is opened, and one that
    is not there cannot vouch for anything (tests/test_foreign_venv.py has the real wheels)."""
    site = tmp_path / "site"
    installed_url = "file:///home/alice/proj/wheels/tool-1.0-py3-none-any.whl"
    install_fake(
        site,
        "tool",
        "1.0",
        direct_url=json.dumps({"url": installed_url, "archive_info": {}}),
    )
    text = f"""\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "tool" }}]

[[package]]
name = "tool"
version = "1.0"
source = {{ path = "{locked}" }}
wheels = [{{ filename = "tool-1.0-py3-none-any.whl", hash = "sha256:{SHA_A}" }}]
"""
    report = check_foreign_lock(_snapshot(site), parse_uv_lock(text, "uv.lock"), environment=LINUX)
    [finding] = [f for f in report.findings if f.subject == "tool"]
    assert finding.kind is Kind.SOURCE_CHANGED
    assert "cannot be compared with it" in finding.message
    other = text.replace("tool-1.0-py3-none-any.whl", "tool-1.0-py2.py3-none-any.whl")
    report = check_foreign_lock(_snapshot(site), parse_uv_lock(other, "uv.lock"), environment=LINUX)
    assert [f.kind for f in report.findings if f.subject == "tool"] == [Kind.SOURCE_CHANGED]
