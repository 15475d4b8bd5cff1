"""Foreign locks as users run them: a real venv, real wheels, a hand-written lock of each format.

Each lock pins demo-model 1.0 (with the real sha256 of its wheel), and a
package for another platform that must never be reported missing here.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE
from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import findings, gate, install_demo
from installer_tools import installer
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow

OTHER_PLATFORM = "sys_platform == 'nonexistent-os'"
WHEEL = "demo_model-1.0-py3-none-any.whl"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _locks(sha: str, version: str = "1.0", upload: str = "2020-01-01T00:00:00Z") -> dict[str, str]:
    """File name -> text of a hand-written lock in each format."""
    marker_dq = OTHER_PLATFORM.replace("'", '\\"')
    return {
        "pylock.toml": f"""\
lock-version = "1.0"
created-by = "hand"
requires-python = ">=3.10"

[[packages]]
name = "demo-model"
version = "{version}"
wheels = [{{ name = "demo_model-{version}-py3-none-any.whl", upload-time = {upload}, url = "https://files.example.invalid/{WHEEL}", hashes = {{ sha256 = "{sha}" }} }}]

[[packages]]
name = "other-os-only"
version = "2.0"
marker = "{OTHER_PLATFORM}"
wheels = [{{ name = "other_os_only-2.0-py3-none-any.whl", url = "https://files.example.invalid/other_os_only-2.0-py3-none-any.whl", hashes = {{ sha256 = "{"0" * 64}" }} }}]
""",  # noqa: E501
        "requirements.txt": f"""\
# hand-written, pip-compile style
--index-url https://pypi.example.invalid/simple
demo-model=={version} \\
    --hash=sha256:{sha}
    # via -r requirements.in
other-os-only==2.0 ; {OTHER_PLATFORM} \\
    --hash=sha256:{"0" * 64}
""",
        "uv.lock": f"""\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "project"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "demo-model" }},
    {{ name = "other-os-only", marker = "{OTHER_PLATFORM}" }},
]

[[package]]
name = "demo-model"
version = "{version}"
source = {{ registry = "https://pypi.example.invalid/simple" }}
wheels = [{{ url = "https://files.example.invalid/{WHEEL}", hash = "sha256:{sha}", upload-time = "{upload}" }}]

[[package]]
name = "other-os-only"
version = "2.0"
source = {{ registry = "https://pypi.example.invalid/simple" }}
wheels = [{{ url = "https://files.example.invalid/other_os_only-2.0-py3-none-any.whl", hash = "sha256:{"0" * 64}" }}]
""",  # noqa: E501
        "poetry.lock": f"""\
[[package]]
name = "demo-model"
version = "{version}"
description = ""
optional = false
python-versions = ">=3.8"
groups = ["main"]
files = [{{file = "{WHEEL}", hash = "sha256:{sha}"}}]

[[package]]
name = "other-os-only"
version = "2.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "{marker_dq}"
files = []

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "0"
""",
        "Pipfile.lock": json.dumps(
            {
                "_meta": {"pipfile-spec": 6, "requires": {}, "sources": []},
                "default": {
                    "demo-model": {"version": f"=={version}", "hashes": [f"sha256:{sha}"]},
                    "other-os-only": {"version": "==2.0", "markers": OTHER_PLATFORM},
                },
                "develop": {},
            },
            indent=4,
        ),
    }


FORMATS = sorted(_locks("0" * 64))


@pytest.fixture
def demo_sha(wheels: Path) -> str:
    return _sha256(wheels / WHEEL)


@pytest.mark.parametrize("lock_name", FORMATS)
def test_matching_environment_passes_with_each_format(venv, project, wheels, demo_sha, lock_name):
    install_demo(venv, wheels)
    (project / lock_name).write_text(_locks(demo_sha)[lock_name])
    result = gate(venv, project, "--mlsupply-lock", lock_name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert problems == []  # no "missing" for the other platform's package, no unexpected pytest
    assert "records no digest of installed files" in result.stdout


@pytest.mark.parametrize("lock_name", FORMATS)
def test_version_drift_fails_with_each_format(venv, project, wheels, demo_sha, lock_name):
    install_demo(venv, wheels, "1.1")
    (project / lock_name).write_text(_locks(demo_sha)[lock_name])
    result = gate(venv, project, "--mlsupply-lock", lock_name)
    assert result.returncode == 1, result.stdout
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert [(p["kind"], p["subject"], p["expected"], p["actual"]) for p in problems] == [
        ("version-changed", "demo-model", "1.0", "1.1")
    ]
    assert NOT_COLLECTED_NOTE in result.stdout


def test_missing_package_is_reported(venv, project, demo_sha):
    (project / "uv.lock").write_text(_locks(demo_sha)["uv.lock"])
    result = gate(venv, project, "--mlsupply-lock", "uv.lock")
    assert result.returncode == 1
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert [(p["kind"], p["subject"]) for p in problems] == [("missing", "demo-model")]
    assert "demo-model 1.0 is locked for this interpreter in uv.lock but not installed" in (
        result.stdout
    )


def test_a_rebuilt_wheel_installed_from_a_file_is_a_source_change(
    venv, project, wheels, demo_sha, tmp_path
):
    (project / "requirements.txt").write_text(_locks(demo_sha)["requirements.txt"])
    venv.install(wheels / WHEEL)  # the locked wheel, by path: its archive hash is in the lock
    clean = gate(venv, project, "--mlsupply-lock", "requirements.txt")
    assert clean.returncode == 0, clean.stdout
    rebuilt = build_wheel(tmp_path / "evil", "demo-model", "1.0", {"demo_model.py": "X = 666\n"})
    venv.install(rebuilt, extra=("--force-reinstall",))
    result = gate(venv, project, "--mlsupply-lock", "requirements.txt")
    assert result.returncode == 1, result.stdout
    problem = next(f for f in findings(project) if f["severity"] == "error")
    assert (problem["kind"], problem["subject"]) == ("source-changed", "demo-model")
    assert f"sha256:{_sha256(rebuilt)}" in problem["message"]
    assert "is none of the 1 hashes the lock records" in problem["message"]


def test_update_lock_never_rewrites_a_foreign_lock(venv, project, wheels, demo_sha, tmp_path):
    install_demo(venv, wheels)
    text = _locks(demo_sha)["poetry.lock"]
    (project / "poetry.lock").write_text(text)
    result = venv.run(
        "-m",
        "pytest",
        "--mlsupply-update-lock",
        "--mlsupply-lock",
        "poetry.lock",
        "-p",
        "no:cacheprovider",
        cwd=project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "poetry.lock").read_text() == text
    assert (project / "mlsupply.lock").is_file()
    assert "mlsupply: wrote mlsupply.lock from this environment" in result.stdout
    assert "poetry.lock is a poetry.lock and is never rewritten" in result.stdout
    own = gate(venv, project, "--mlsupply-lock", "mlsupply.lock")
    assert own.returncode == 0, own.stdout
    # Beside the foreign lock, mlsupply.lock adds the byte-level check it cannot make.
    rebuilt = build_wheel(tmp_path / "evil", "demo-model", "1.0", {"demo_model.py": "X = 666\n"})
    venv.install(
        "demo-model==1.0", extra=("--force-reinstall", "--find-links", str(rebuilt.parent))
    )
    result = gate(venv, project, "--mlsupply-lock", "poetry.lock")
    assert result.returncode == 1, result.stdout
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert [(p["kind"], p["subject"]) for p in problems] == [("content-changed", "demo-model")]
    assert "content digests compared with mlsupply.lock, beside the foreign lock" in result.stdout


def test_cli_check_with_min_age_and_lock_format(venv, project, wheels, demo_sha):
    install_demo(venv, wheels)
    recent = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (project / "deps.lock").write_text(_locks(demo_sha, upload=recent)["uv.lock"])
    args = ["-m", "pytest_mlsupply", "check", "--lock", "deps.lock", "--lock-format", "uv"]
    ok = venv.run(*args, cwd=project)
    assert ok.returncode == EXIT_OK, ok.stdout + ok.stderr
    young = venv.run(*args, "--min-age", "7", cwd=project)
    assert young.returncode == EXIT_FINDINGS, young.stdout + young.stderr
    assert f"ERROR [too-new] demo-model 1.0: {WHEEL} was uploaded {recent[:-1]}+00:00" in (
        young.stdout
    )
    assert "days before this run), less than the minimum age of 7 days" in young.stdout
    bad = venv.run(*args, "--min-age", "soon", cwd=project)
    assert bad.returncode == EXIT_UNUSABLE
    assert "--min-age: expected a number of days, got 'soon'" in bad.stderr
    (project / "broken.txt").write_text("numpy>=2\n")
    broken = venv.run("-m", "pytest_mlsupply", "check", "--lock", "broken.txt", cwd=project)
    assert broken.returncode == EXIT_UNUSABLE
    assert "broken.txt: line 1: 'numpy>=2' is not pinned" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_min_age_from_the_ini_file_fails_a_fresh_upload(venv, project, wheels, demo_sha):
    install_demo(venv, wheels)
    recent = (datetime.now(timezone.utc) - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (project / "pylock.toml").write_text(_locks(demo_sha, upload=recent)["pylock.toml"])
    (project / "pytest.ini").write_text(
        "[pytest]\nmlsupply_lock = pylock.toml\nmlsupply_min_age = 7\n"
    )
    result = gate(venv, project)
    assert result.returncode == 1, result.stdout
    problems = [f for f in findings(project) if f["severity"] != "info"]
    assert [(p["kind"], p["subject"]) for p in problems] == [("too-new", "demo-model")]
    expected = (
        rf"{re.escape(WHEEL)} was uploaded {recent[:-1]}\+00:00 \(0\.\d days before this run\)"
    )
    assert re.search(expected, result.stdout), result.stdout
    (project / "pytest.ini").write_text("[pytest]\nmlsupply_lock = pylock.toml\n")
    assert gate(venv, project).returncode == 0


LOCAL_WHEEL_LOCK = """\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "project"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "demo-model" }}]

[[package]]
name = "demo-model"
version = "1.0"
source = {{ path = "{path}" }}
wheels = [{{ filename = "{wheel}", hash = "sha256:{sha}" }}]
"""


def _uv_install(venv, wheel: Path) -> None:
    """Install *wheel* with uv: its direct_url.json names the file and records no hash."""
    uv = installer("uv")
    command = [uv, "pip", "install", "--offline", "--no-deps", "--reinstall"]
    result = subprocess.run(
        [*command, "--python", str(venv.python), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [direct] = venv.site.glob("demo_model-1.0.dist-info/direct_url.json")
    assert json.loads(direct.read_text())["archive_info"] == {}, "uv now records a hash"


def test_a_local_wheel_locked_by_path_is_compared_with_the_wheel_itself(
    venv, project, wheels, demo_sha, tmp_path
):
    """``uv add ./wheels/x.whl`` locks ``{ path = ... }`` and a hash; uv records no hash of
    what it installed. The wheel the lock names is opened: the same wheel passes, another
    wheel with the same file name fails, and so does a locked wheel swapped on disk."""
    (project / "wheels").mkdir()
    locked = project / "wheels" / WHEEL
    locked.write_bytes((wheels / WHEEL).read_bytes())
    text = LOCAL_WHEEL_LOCK.format(path=f"wheels/{WHEEL}", wheel=WHEEL, sha=demo_sha)
    (project / "uv.lock").write_text(text)
    _uv_install(venv, locked)
    clean = gate(venv, project, "--mlsupply-lock", "uv.lock", "--mlsupply-strict")
    assert clean.returncode == 0, clean.stdout
    rebuilt = build_wheel(tmp_path / "evil", "demo-model", "1.0", {"demo_model.py": "X = 666\n"})
    assert rebuilt.name == WHEEL
    _uv_install(venv, rebuilt)
    result = gate(venv, project, "--mlsupply-lock", "uv.lock")
    assert result.returncode == 1, result.stdout
    [problem] = [f for f in findings(project) if f["severity"] == "error"]
    assert (problem["kind"], problem["subject"]) == ("source-changed", "demo-model")
    assert "RECORD differs from the archive's at demo_model.py" in problem["message"]
    locked.write_bytes(rebuilt.read_bytes())  # the lock's own wheel swapped as well
    result = gate(venv, project, "--mlsupply-lock", "uv.lock")
    assert result.returncode == 1, result.stdout
    [problem] = [f for f in findings(project) if f["severity"] == "error"]
    assert f"has hash sha256:{_sha256(rebuilt)}, none of the 1 hashes" in problem["message"]
    locked.unlink()
    result = gate(venv, project, "--mlsupply-lock", "uv.lock")
    assert result.returncode == 1, result.stdout
    assert "cannot be compared with it" in result.stdout
