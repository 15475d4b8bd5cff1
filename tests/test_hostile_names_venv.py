"""Hostile bytes in RECORD and in file names, as users meet them: a located error, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gatehelpers import findings, gate, lock
from wheelfactory import build_wheel

pytestmark = pytest.mark.slow


@pytest.fixture
def locked_victim(venv, project, tmp_path):
    files = {"victim/__init__.py": "", "victim/core.py": "SAFE = True\n"}
    build_wheel(tmp_path / "victim-wheels", "victim", "1.0", files)
    venv.install("victim", extra=("--find-links", str(tmp_path / "victim-wheels")))
    lock(venv, project)
    return venv


def assert_no_traceback(result) -> None:
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "INTERNALERROR" not in stream, stream


def test_a_nul_byte_in_a_record_path(locked_victim, project) -> None:
    [record] = locked_victim.site.glob("victim-1.0.dist-info/RECORD")
    line = len(record.read_bytes().splitlines()) + 1
    with record.open("ab") as stream:
        stream.write(
            b"victim/__pycache__/a\x00b.txt,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
        )
    for options in ((), ("--mlsupply-rehash", "-p", "cacheprovider")):
        result = gate(locked_victim, project, *options)
        assert_no_traceback(result)
        assert result.returncode == 1, result.stdout
        [broken] = [f for f in findings(project, "error") if f["kind"] == "broken-distribution"]
        assert f"{record}:{line}: contains a NUL byte" in broken["message"]
    checked = locked_victim.run("-m", "pytest_mlsupply", "check", cwd=project)
    assert_no_traceback(checked)
    assert checked.returncode != 0


@pytest.mark.parametrize("report", ["r.sarif", "r.json"])
def test_an_undecodable_file_name_in_every_output(locked_victim, project, report) -> None:
    site = os.fsencode(locked_victim.site)
    with open(site + b"/victim/\xff\xfe.py", "w") as stream:
        stream.write("RAN = True\n")
    result = gate(
        locked_victim,
        project,
        f"--mlsupply-report={report}",
        "--junitxml=junit.xml",
        "-rA",
        env={"GITHUB_ACTIONS": "true", "PYTHONIOENCODING": "utf-8"},
    )
    assert_no_traceback(result)
    assert result.returncode == 1, result.stdout
    assert "victim/\\xff\\xfe.py is code inside the folder of victim" in result.stdout
    written = json.loads((project / report).read_text(encoding="utf-8"))
    assert "\\xff\\xfe.py" in json.dumps(written, ensure_ascii=False).replace("\\\\", "\\")
    assert "\\xff\\xfe.py" in Path(project / "junit.xml").read_text(encoding="utf-8")
