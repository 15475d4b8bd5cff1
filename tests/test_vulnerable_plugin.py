"""Vulnerable vs malicious releases through pytest and the command line, as users run them.

The feeds name packages installed in this very environment (pluggy, iniconfig), so the
runs below check the real installed releases; the lock is made by the plugin itself.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from pytest_mlsupply.cli import EXIT_FINDINGS, EXIT_OK, main
from pytest_mlsupply.knownbad.match import HINT_PACKAGE
from pytest_mlsupply.plugin import NOT_COLLECTED_NOTE

from gatehelpers import locked

VULN_ID = "GHSA-9f7m-4q2x-c3vw"
MAL_ID = "MAL-2026-90001"
VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"  # 8.8 high
#: A test module that leaves a marker when it is imported: it must not be when the gate fails.
PAYLOAD = (
    "import pathlib\n"
    "pathlib.Path(__file__).with_name('payload-ran').write_text('ran')\n"
    "def test_fit():\n    assert True\n"
)


def _fixed_after(installed: str) -> str:
    return f"{Version(installed).major + 1}.0"


def vulnerable_record(name: str) -> dict[str, object]:
    """A GHSA-shaped record: the installed release is inside its range, fixed one major on."""
    fixed = _fixed_after(version(name))
    return {
        "schema_version": "1.7.4",
        "id": VULN_ID,
        "modified": "2026-06-01T00:00:00Z",
        "published": "2026-06-01T00:00:00Z",
        "aliases": ["CVE-2026-90009"],
        "summary": f"{name} parses crafted input slowly (denial of service)",
        "severity": [{"type": "CVSS_V3", "score": VECTOR}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
        "references": [
            {"type": "ADVISORY", "url": f"https://advisories.example.invalid/{VULN_ID}"}
        ],
        "database_specific": {"cwe_ids": ["CWE-400"], "severity": "HIGH"},
    }


def malicious_record(name: str) -> dict[str, object]:
    """An ossf/malicious-packages-shaped record naming the installed release."""
    return {
        "schema_version": "1.7.4",
        "id": MAL_ID,
        "modified": "2026-06-02T00:00:00Z",
        "summary": f"Malicious code in {name} (PyPI)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": [version(name)]}],
        "database_specific": {
            "malicious-packages-origins": [{"source": "test", "versions": [version(name)]}]
        },
    }


def _feeds(pytester: pytest.Pytester, *, malicious: bool) -> None:
    feeds = pytester.mkdir("feeds")
    (feeds / f"{VULN_ID}.json").write_text(json.dumps(vulnerable_record("iniconfig")))
    if malicious:
        (feeds / f"{MAL_ID}.json").write_text(json.dumps(malicious_record("pluggy")))


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    locked(pytester)
    pytester.makepyfile(test_model=PAYLOAD)
    return pytester


def test_malicious_is_an_error_with_the_credentials_advice_and_vulnerable_a_warning(
    suite: pytest.Pytester,
) -> None:
    _feeds(suite, malicious=True)
    result = suite.runpytest_subprocess(
        "--mlsupply",
        "--mlsupply-known-bad=feeds",
        "--mlsupply-report=report.json",
        "--junitxml=junit.xml",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    pluggy, iniconfig = version("pluggy"), version("iniconfig")
    fixed = _fixed_after(iniconfig)
    result.stdout.fnmatch_lines(
        [
            f"ERROR [[]known-bad-package[]] pluggy {pluggy} is a known-bad release ({MAL_ID}): "
            f"Malicious code in pluggy (PyPI) -- {HINT_PACKAGE}",
            f"WARNING [[]vulnerable[]] iniconfig {iniconfig} is vulnerable ({VULN_ID}, "
            f"CVE-2026-90009; CVSS 8.8 high): iniconfig parses crafted input slowly (denial of "
            f"service) -- upgrade to {fixed} (fixed in {fixed})",
        ]
    )
    assert NOT_COLLECTED_NOTE in out
    assert not (suite.path / "payload-ran").exists()  # the gate failed before any test import
    assert "Traceback" not in out + result.stderr.str()

    report = json.loads((suite.path / "report.json").read_text())
    kinds = {f["kind"]: f for f in report["findings"] if f["kind"] != "not-verifiable"}
    assert kinds["known-bad-package"]["severity"] == "error"
    assert kinds["known-bad-package"]["advisories"] == [MAL_ID]
    vulnerable = kinds["vulnerable"]
    assert (vulnerable["severity"], vulnerable["subject"]) == ("warning", "iniconfig")
    assert vulnerable["advisories"] == [VULN_ID, "CVE-2026-90009"]
    assert vulnerable["expected"] == f"{fixed} or later"
    assert vulnerable["actual"] == f"iniconfig {iniconfig}"
    assert vulnerable["hint"] == f"upgrade to {fixed} (fixed in {fixed})"

    case = next(
        c
        for c in ET.parse(suite.path / "junit.xml").iter("testcase")
        if "mlsupply" in (c.get("classname", "") + c.get("name", ""))
    )
    text = ET.tostring(case, encoding="unicode")
    assert "[vulnerable] iniconfig" in text and "CVSS 8.8 high" in text
    assert "[known-bad-package] pluggy" in text


def test_sarif_lists_the_vulnerable_rule_at_the_chosen_level(suite: pytest.Pytester) -> None:
    _feeds(suite, malicious=False)
    result = suite.runpytest(
        "--mlsupply",
        "--mlsupply-known-bad=feeds",
        "--mlsupply-report=out.sarif",
        "--mlsupply-vulnerabilities=error",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    sarif = json.loads((suite.path / "out.sarif").read_text())
    run = sarif["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert "vulnerable" in rules
    assert "not malware" in rules["vulnerable"]["shortDescription"]["text"]
    [found] = [r for r in run["results"] if r["ruleId"] == "vulnerable"]
    assert found["level"] == "error"
    assert found["properties"]["advisories"] == [VULN_ID, "CVE-2026-90009"]
    assert "CVSS 8.8 high" in found["message"]["text"]


@pytest.mark.parametrize(
    ("args", "ini", "fails"),
    [
        ((), "", False),  # warn by default: the tests run
        (("--mlsupply-strict",), "", True),  # a warning fails in strict mode
        (("--mlsupply-vulnerabilities=error",), "", True),
        (("--mlsupply-vulnerabilities=off", "--mlsupply-strict"), "", False),
        (("--mlsupply-fail-on-cvss=9",), "", False),  # 8.8 is below the bar
        (("--mlsupply-fail-on-cvss=8.8",), "", True),  # at the bar fails
        ((), "mlsupply_fail_on_cvss = 7\n", True),
        ((), "mlsupply_vulnerabilities = error\n", True),
        (("--mlsupply-vulnerabilities=warn",), "mlsupply_vulnerabilities = error\n", False),
    ],
)
def test_the_user_chooses_what_a_vulnerability_does(
    suite: pytest.Pytester, args: tuple[str, ...], ini: str, fails: bool
) -> None:
    _feeds(suite, malicious=False)
    suite.makeini(f"[pytest]\nmlsupply_known_bad = feeds\n{ini}")
    result = suite.runpytest("--mlsupply", *args)
    out = result.stdout.str()
    if fails:
        assert result.ret == pytest.ExitCode.TESTS_FAILED, out
        assert not (suite.path / "payload-ran").exists()
    else:
        assert result.ret == pytest.ExitCode.OK, out
        assert (suite.path / "payload-ran").exists()
    shown = "--mlsupply-vulnerabilities=off" not in args
    assert ("[vulnerable] iniconfig" in out) is shown


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ("--mlsupply-vulnerabilities=loud",),
            "",
            "*--mlsupply-vulnerabilities: expected one of off, warn, error, got 'loud'*",
        ),
        (
            ("--mlsupply-fail-on-cvss=11",),
            "",
            "*--mlsupply-fail-on-cvss: expected a CVSS score (0 to 10), got '11'*",
        ),
        (
            (),
            "mlsupply_fail_on_cvss = high\n",
            "*ini option 'mlsupply_fail_on_cvss' in *tox.ini: expected a CVSS score*'high'*",
        ),
        (
            (),
            "mlsupply_vulnerabilities = maybe\n",
            "*ini option 'mlsupply_vulnerabilities' in *tox.ini: expected one of*'maybe'*",
        ),
    ],
)
def test_bad_values_name_their_source(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, message: str
) -> None:
    pytester.makepyfile(test_model="def test_fit():\n    assert True\n")
    pytester.makeini(f"[pytest]\n{ini}")
    result = pytester.runpytest("--mlsupply", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_help_lists_the_vulnerability_options(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for word in (
        "--mlsupply-vulnerabilities",
        "--mlsupply-fail-on-cvss",
        "mlsupply_vulnerabilities",
        "mlsupply_fail_on_cvss",
    ):
        assert word in text


def test_check_command_reads_the_same_policy(tmp_path: Path, capsys) -> None:
    from wheelfactory import install_fake

    site = tmp_path / "site-packages"
    install_fake(site, "iniconfig", version("iniconfig"))
    lock = str(tmp_path / "env.lock")
    assert main(["lock", "--lock", lock, "--path", str(site)]) == EXIT_OK
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps(vulnerable_record("iniconfig")))
    common = ["check", "--lock", lock, "--path", str(site), "--known-bad", str(feed)]
    capsys.readouterr()
    assert main(common) == EXIT_OK
    out = capsys.readouterr().out
    assert f"WARNING [vulnerable] iniconfig {version('iniconfig')} is vulnerable" in out
    assert main([*common, "--strict"]) == EXIT_FINDINGS
    assert main([*common, "--fail-on-cvss", "8.8"]) == EXIT_FINDINGS
    assert main([*common, "--fail-on-cvss", "9"]) == EXIT_OK
    assert main([*common, "--vulnerabilities", "error"]) == EXIT_FINDINGS
    capsys.readouterr()
    assert main([*common, "--vulnerabilities", "off", "--strict"]) == EXIT_OK
    assert "[vulnerable]" not in capsys.readouterr().out
    assert main([*common, "--fail-on-cvss", "ten"]) == 2
    assert "--fail-on-cvss: expected a CVSS score (0 to 10), got 'ten'" in capsys.readouterr().err


def test_a_waiver_for_a_cve_does_not_waive_malware_reported_later_for_that_release(
    suite: pytest.Pytester,
) -> None:
    """A team triaged CVE-2026-90009 in iniconfig; then the same release is named malware."""
    feeds = suite.mkdir("feeds")
    (feeds / f"{VULN_ID}.json").write_text(json.dumps(vulnerable_record("iniconfig")))
    suite.path.joinpath("waivers.toml").write_text(
        '[[waiver]]\nmatch = "CVE-2026-90009"\nreason = "triaged: we never parse untrusted '
        'input"\nexpires = 2999-06-30\n'
    )
    args = ("--mlsupply", "--mlsupply-strict", "--mlsupply-known-bad=feeds")
    args += ("--mlsupply-waivers=waivers.toml", "--mlsupply-report=report.json")
    waived = suite.runpytest_subprocess(*args)
    assert waived.ret == pytest.ExitCode.OK, waived.stdout.str()  # the waiver works for the CVE
    (suite.path / "payload-ran").unlink()

    (feeds / f"{MAL_ID}.json").write_text(json.dumps(malicious_record("iniconfig")))
    result = suite.runpytest_subprocess(*args)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert not (suite.path / "payload-ran").exists()
    result.stdout.fnmatch_lines(
        [
            f"ERROR [[]known-bad-package[]] iniconfig {version('iniconfig')} is a known-bad "
            f"release ({MAL_ID}, {VULN_ID}, CVE-2026-90009): *"
        ]
    )
    assert "WAIVED ERROR" not in out
    report = json.loads((suite.path / "report.json").read_text())
    [malware] = [f for f in report["findings"] if f["kind"] == "known-bad-package"]
    assert malware["advisories"] == [MAL_ID] and "waived" not in malware
    # ... while a waiver naming the malware itself is honoured (a reviewed false report).
    suite.path.joinpath("waivers.toml").write_text(
        f'[[waiver]]\nmatch = "{MAL_ID}"\nreason = "ossf withdrew it in review"\n'
        "expires = 2999-06-30\n"
    )
    assert suite.runpytest_subprocess(*args).ret == pytest.ExitCode.OK
