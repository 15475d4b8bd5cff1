"""``python -m pytest_mlsupply``, called in-process on fake site directories (``--path``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, EXIT_UNUSABLE, main

from wheelfactory import install_fake


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install_fake(folder, "numpy", "2.2.6")
    install_fake(folder, "torch", "2.13.0+cpu")
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_lock_then_check_then_drift(site: Path, tmp_path: Path, capsys) -> None:
    lock = str(tmp_path / "env.lock")
    code, out, _ = run(capsys, "lock", "--lock", lock, "--path", str(site))
    assert code == EXIT_OK
    assert "2 distributions" in out
    assert run(capsys, "check", "--lock", lock, "--path", str(site))[0] == EXIT_OK
    install_fake(site, "torchtriton", "2.0.0")
    code, out, _ = run(capsys, "check", "--lock", lock, "--path", str(site))
    assert code == EXIT_OK  # an unexpected extra is a warning
    assert "WARNING [unexpected] torchtriton 2.0.0 is installed but not locked" in out
    report = tmp_path / "report.json"
    code, out, _ = run(
        capsys, "check", "--lock", lock, "--path", str(site), "--strict", "--report", str(report)
    )
    assert code == EXIT_FINDINGS
    document = json.loads(report.read_text())
    assert document["policy"] == {"strict": True, "warn_only": False}
    assert document["result"] == "failed"


def test_unusable_input_exits_2_with_one_clear_line(site: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "check", "--lock", str(tmp_path / "none.lock"), "--path", str(site))
    assert code == EXIT_UNUSABLE
    assert err.startswith("mlsupply: error: ") and "lockfile not found" in err
    assert err.count("\n") == 1
    assert run(capsys, "frobnicate")[0] == EXIT_UNUSABLE
    assert run(capsys)[0] == EXIT_UNUSABLE


def test_report_that_cannot_be_written_is_unusable_input(site: Path, tmp_path: Path, capsys):
    lock = str(tmp_path / "env.lock")
    run(capsys, "lock", "--lock", lock, "--path", str(site))
    code, _, err = run(
        capsys,
        "check",
        "--lock",
        lock,
        "--path",
        str(site),
        "--report",
        str(tmp_path / "env.lock" / "r.json"),
    )
    assert code == EXIT_UNUSABLE
    assert "cannot write the report" in err
