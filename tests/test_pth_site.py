"""``.pth`` files read exactly as each Python's own ``site.addpackage`` reads them.

The differential tests hand the same files to the real ``site`` module of every
supported interpreter found on this machine (with ``exec`` replaced by a
recorder, so nothing runs) and compare what it would execute with what the
check reports for that version.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlsupply.findings import Severity
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import (
    _executable_pth_lines,
    find_unowned_code,
    site_python_version,
    verify_installed_files,
)

from wheelfactory import build_wheel, install_fake, pip, site_packages

SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))
BOM = b"\xef\xbb\xbf"

#: Run by another interpreter: what its site.addpackage would exec for each file.
RECORDER = r"""
import io, json, os, site, sys
executed = []
site.exec = lambda line, *args: executed.append(line)  # a module global shadows the builtin
results = []
for path in json.loads(sys.stdin.read()):
    executed.clear()
    saved, sys.stderr = sys.stderr, io.StringIO()
    try:
        site.addpackage(os.path.dirname(path), os.path.basename(path), set())
        partial = bool(sys.stderr.getvalue())
    except Exception:  # an undecodable file stops site (3.10-3.13 alike)
        partial = True
    finally:
        sys.stderr = saved
    lines = [line[:-1] if line.endswith("\n") else line for line in executed]
    results.append({"lines": lines, "partial": partial})
print(json.dumps(results))
"""


def interpreter(version: tuple[int, int]) -> str | None:
    """A CPython of *version* on this machine (pyenv's or on PATH), or None."""
    name = f"python{version[0]}.{version[1]}"
    pattern = str(Path.home() / ".pyenv" / "versions" / f"{version[0]}.{version[1]}.*")
    candidates = [os.path.join(d, "bin", name) for d in sorted(glob.glob(pattern))]
    candidates.append(shutil.which(name) or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            probe = subprocess.run([candidate, "-S", "-c", "pass"], capture_output=True)
            if probe.returncode == 0:
                return candidate
    return None


def what_site_executes(python: str, paths: list[Path]) -> list[dict[str, object]]:
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    env.pop("PYTHONUTF8", None)
    run = subprocess.run(
        [python, "-S", "-E", "-c", RECORDER],
        input=json.dumps([str(p) for p in paths]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    results: list[dict[str, object]] = json.loads(run.stdout)
    return results


TOKENS = [
    b"import os",
    b"import\tsys",
    b"import ",
    b"import",
    b"imports",
    b" import x",
    b"#import y",
    b"/some/path",
    b"x",
    b" ",
    b"\t",
    BOM,
    b"\n",
    b"\r",
    b"\r\n",
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x1e",
    "\x85".encode(),
    "\u2028".encode(),
    "\u00e9".encode(),
    b"\xff",  # not UTF-8: site stops there on a UTF-8 locale
    b"\x85",
]
documents = st.lists(st.sampled_from(TOKENS), max_size=12).map(b"".join)
maybe_bom = st.tuples(st.booleans(), documents).map(lambda t: (BOM if t[0] else b"") + t[1])


@pytest.mark.parametrize("version", SUPPORTED, ids=lambda v: f"{v[0]}.{v[1]}")
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(maybe_bom, min_size=1, max_size=25))
def test_the_same_lines_as_the_real_site_module(
    version: tuple[int, int], batch: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no python{version[0]}.{version[1]} on this machine")
    folder = tmp_path_factory.mktemp("pth")
    paths = []
    for number, data in enumerate(batch):
        path = folder / f"f{number}.pth"
        path.write_bytes(data)
        paths.append(path)
    for path, real in zip(paths, what_site_executes(python, paths), strict=True):
        ours = _executable_pth_lines(str(path), version)
        if real["partial"]:
            # site stopped part-way (undecodable bytes): we report at least what it ran
            assert set(real["lines"]) <= set(ours), path.read_bytes()
        else:
            assert ours == real["lines"], path.read_bytes()


@pytest.mark.parametrize(
    ("version", "expected"),
    [((3, 12), []), ((3, 13), ["import os; open('marker', 'w')"])],
)
def test_a_bom_before_an_import_line(
    tmp_path: Path, version: tuple[int, int], expected: list[str]
) -> None:
    path = tmp_path / "zz.pth"
    path.write_bytes(BOM + b"import os; open('marker', 'w')\n")
    assert _executable_pth_lines(str(path), version) == expected


def test_a_form_feed_splits_lines_only_on_3_13(tmp_path: Path) -> None:
    path = tmp_path / "zz.pth"
    path.write_bytes(b"/opt/models\x0cimport os\n")
    assert _executable_pth_lines(str(path), (3, 12)) == []
    assert _executable_pth_lines(str(path), (3, 13)) == ["import os"]


def test_the_version_comes_from_the_checked_environment(tmp_path: Path) -> None:
    assert site_python_version(str(tmp_path / "lib" / "python3.13" / "site-packages")) == (3, 13)
    assert site_python_version(str(tmp_path / "lib" / "python3.13t" / "site-packages")) == (3, 13)
    windows_like = tmp_path / "env" / "Lib" / "site-packages"
    windows_like.mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = x\nversion = 3.12.4\n")
    assert site_python_version(str(windows_like)) == (3, 12)
    bare = tmp_path / "bare"
    bare.mkdir()
    assert site_python_version(str(bare)) == sys.version_info[:2]


@pytest.mark.parametrize(("minor", "flagged"), [(12, False), (13, True)])
def test_the_check_follows_the_site_directory_version(
    tmp_path: Path, minor: int, flagged: bool
) -> None:
    site = tmp_path / "lib" / f"python3.{minor}" / "site-packages"
    install_fake(site, "helper", "1.0")
    (site / "zz_bom.pth").write_bytes(BOM + b"import os\n")
    snapshot = take_snapshot([str(site)])
    findings, _, ownership = verify_installed_files(snapshot, quirks=())
    findings.extend(find_unowned_code(snapshot, ownership))
    kinds = [(f.kind.value, f.subject) for f in findings if f.severity is Severity.ERROR]
    assert kinds == ([("unowned-startup-code", "zz_bom.pth")] if flagged else [])


@pytest.mark.slow
@pytest.mark.parametrize(("version", "runs"), [((3, 13), True), ((3, 12), False)])
def test_a_bom_prefixed_pth_in_a_real_venv(
    tmp_path: Path, version: tuple[int, int], runs: bool
) -> None:
    """A venv of another Python, checked from this one with --path: the check follows it."""
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no python{version[0]}.{version[1]} on this machine")
    root = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(root)], check=True)
    venv_python = root / "bin" / "python"
    build_wheel(tmp_path / "wheels", "victim", "1.0")
    pip(venv_python, "install", "--no-index", "--find-links", tmp_path / "wheels", "victim")
    site = site_packages(venv_python)
    check = [sys.executable, "-m", "pytest_mlsupply"]
    locked = subprocess.run([*check, "lock", "--path", str(site)], cwd=tmp_path, check=False)
    assert locked.returncode == 0
    marker = tmp_path / "marker"
    (site / "zz_bom.pth").write_bytes(BOM + f"import os; open({str(marker)!r}, 'w')\n".encode())
    result = subprocess.run(
        [*check, "check", "--path", str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    subprocess.run([str(venv_python), "-c", "pass"], check=True)  # the real interpreter starts
    assert marker.exists() is runs  # the attack is real on 3.13 only
    assert (result.returncode != 0) is runs, result.stdout
    assert ("zz_bom.pth runs code at every interpreter start" in result.stdout) is runs
