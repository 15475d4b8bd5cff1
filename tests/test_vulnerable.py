"""A vulnerability is not malware (issue 12 item 11): kinds, fixed versions, CVSS, policy, cache.

Pure core tests on OSV records written in the real shape (PYSEC YAML, GHSA JSON) and on
the real ossf MAL- records; the plugin as users run it is in test_vulnerable_plugin.py.
"""

from __future__ import annotations

import json
import marshal
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_mlsupply import settings as settings_module
from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.knownbad import KnownBadConfig, VulnerabilityPolicy, load_feeds, run_known_bad
from pytest_mlsupply.knownbad.cvss import (
    METRICS,
    CvssError,
    format_vector,
    parse_vector,
    rating,
    roundup,
)
from pytest_mlsupply.knownbad.feeds import CACHE_FILE
from pytest_mlsupply.knownbad.match import (
    HINT_PACKAGE,
    NO_SEVERITY,
    VULNERABILITY_LEVELS,
    locked_findings,
)
from pytest_mlsupply.knownbad.model import CACHE_ENTRY_BROKEN, KnownBadIndex
from pytest_mlsupply.snapshot import take_snapshot

from wheelfactory import install_fake

ASSETS = Path(__file__).parent / "assets" / "known_bad" / "vulnerable"
PYSEC = ASSETS / "PYSEC-2026-9001.yaml"
GHSA = ASSETS / "GHSA-2c4m-9vq6-8x3p.json"
GHSA_V4 = ASSETS / "GHSA-7q9w-3m5h-rv2c.json"
GHSA_MALWARE = ASSETS / "GHSA-8p3x-5cvh-q4wm.json"

pytest.importorskip("yaml")


def _findings(
    tmp_path: Path,
    feeds: list[Path],
    *dists: tuple[str, str],
    policy: VulnerabilityPolicy | None = None,
) -> list[Finding]:
    site = tmp_path / "site"
    for name, version in dists:
        install_fake(site, name, version)
    snapshot = take_snapshot([str(site)], keep_rows=True)
    config = KnownBadConfig(tuple(feeds), builtin=False)
    if policy is not None:
        config = KnownBadConfig(tuple(feeds), builtin=False, vulnerabilities=policy)
    return run_known_bad(config, snapshot).findings


# ------------------------------------------------------------------ vulnerable, not malicious


def test_a_pysec_record_is_a_vulnerable_warning_with_its_fix(tmp_path: Path) -> None:
    [finding] = _findings(tmp_path, [PYSEC], ("demo-tokenizer", "2.3.0"))
    assert finding.kind is Kind.VULNERABLE
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        "demo-tokenizer 2.3.0 is vulnerable (PYSEC-2026-9001, CVE-2026-90001, "
        f"GHSA-2c4m-9vq6-8x3p; {NO_SEVERITY}): demo-tokenizer before 2.4.1, and 3.x before "
        "3.1.2, unpickles the vocabulary cache it finds next to a model, so a crafted model "
        "folder runs code when the tokenizer is loaded."
    )
    assert finding.hint == "upgrade to 2.4.1 (fixed in 2.4.1, 3.1.2)"
    assert finding.expected == "2.4.1 or later"
    assert finding.advisories == ("PYSEC-2026-9001", "CVE-2026-90001", "GHSA-2c4m-9vq6-8x3p")
    assert "known-bad" not in finding.message and "credentials" not in (finding.hint or "")


def test_the_fix_is_taken_from_the_branch_the_installed_version_is_on(tmp_path: Path) -> None:
    [finding] = _findings(tmp_path, [PYSEC, GHSA], ("demo-tokenizer", "3.1.0"))
    assert finding.hint == "upgrade to 3.1.2 (fixed in 3.1.2)"
    assert _findings(tmp_path / "b", [PYSEC, GHSA], ("demo-tokenizer", "3.1.2")) == []
    assert _findings(tmp_path / "c", [PYSEC, GHSA], ("demo-tokenizer", "2.4.1")) == []


def test_pysec_and_ghsa_of_one_cve_are_one_finding_scored_from_the_ghsa_vector(
    tmp_path: Path,
) -> None:
    [finding] = _findings(tmp_path, [PYSEC, GHSA], ("demo-tokenizer", "2.4.0"))
    assert finding.kind is Kind.VULNERABLE
    assert "CVSS 8.8 high" in finding.message
    assert "without a CVSS score" not in finding.message  # same CVE: the PYSEC record is scored
    assert finding.message.count("GHSA-2c4m-9vq6-8x3p") == 1


def test_a_cvss_v4_vector_is_shown_not_scored(tmp_path: Path) -> None:
    [finding] = _findings(tmp_path, [GHSA_V4], ("demo-loader", "1.2"))
    assert "severity CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H" in finding.message
    assert "not scored" in finding.message
    assert finding.hint == "upgrade to 1.5 (fixed in 1.5)"


def test_a_ghsa_malware_record_is_malicious_by_its_cwe(tmp_path: Path) -> None:
    [finding] = _findings(tmp_path, [GHSA_MALWARE], ("demo-evil", "0.1"))
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE
    assert finding.severity is Severity.ERROR
    assert finding.hint == HINT_PACKAGE


def test_real_mal_records_stay_malicious_errors_with_the_credentials_advice(
    realdata: Path, tmp_path: Path
) -> None:
    feed = realdata / "osv-malicious-pypi"
    found = _findings(
        tmp_path,
        [feed],
        ("litellm", "1.82.8"),
        ("0requests", "0.0.1"),
        ("191239aa", "10.87"),
        ("aliyun-ai-labs-snippets-sdk", "99.0"),
        policy=VulnerabilityPolicy("off"),
    )
    assert {f.subject for f in found} == {
        "litellm",
        "0requests",
        "191239aa",
        "aliyun-ai-labs-snippets-sdk",
    }
    for finding in found:
        assert finding.kind is Kind.KNOWN_BAD_PACKAGE, finding
        assert finding.severity is Severity.ERROR
        assert "treat credentials this environment could read as exposed" in (finding.hint or "")
    index = load_feeds([feed], builtin=False).index
    for name, version in [("litellm", "1.82.7"), ("deepseeek", "0.0.8"), ("3web-py", "1.0.0")]:
        assert all(a.malicious for a in index.match_distribution(name, version)), name
    # The pypa advisory-database records in the same tree are vulnerabilities.
    for name, version in [("py", "1.11.0"), ("torch", "1.13.0"), ("mlflow", "1.13")]:
        advisories = index.match_distribution(name, version)
        assert advisories and not any(a.malicious for a in advisories), name


def test_the_real_pysec_records_give_their_fixed_versions(realdata: Path, tmp_path: Path) -> None:
    tree = realdata / "osv-malicious-pypi" / "pypa-advisory-database"
    found = {
        f.subject: f
        for f in _findings(
            tmp_path, [tree], ("torch", "1.13.0"), ("mlflow", "2.9.0"), ("py", "1.11.0")
        )
    }
    assert found["torch"].hint == "upgrade to 1.13.1 (fixed in 1.13.1)"
    assert found["mlflow"].hint == "upgrade to 2.10.1 (fixed in 2.10.1)"
    # last_affected names no fixed release: the hint says so instead of inventing one.
    assert found["py"].hint is not None and "no fixed release is named by PYSEC-2022-42969" in (
        found["py"].hint
    )
    assert all(f.kind is Kind.VULNERABLE for f in found.values())


def test_a_release_both_malicious_and_vulnerable_is_reported_as_malicious(tmp_path: Path) -> None:
    malicious = tmp_path / "mal.json"
    malicious.write_text(
        json.dumps(
            {
                "id": "MAL-2026-9",
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "demo-tokenizer"},
                        "versions": ["2.3.0"],
                    }
                ],
            }
        )
    )
    [finding] = _findings(tmp_path, [PYSEC, malicious], ("demo-tokenizer", "2.3.0"))
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE
    assert finding.message.startswith("demo-tokenizer 2.3.0 is a known-bad release (MAL-2026-9, ")
    assert "PYSEC-2026-9001" in finding.message


#: What makes a record a vulnerability: its own id, a fix, a CVSS vector, an ordinary CWE.
FLAW_EVIDENCE: dict[str, Any] = {
    "id": "PYSEC-2026-1",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "my-pkg"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "database_specific": {"cwe_ids": ["CWE-79"]},
}


def _malicious(tmp_path: Path, record: dict[str, Any], name: str = "my-pkg") -> bool:
    """How the record is read from a feed file, for the release it names."""
    feed = tmp_path / "record.json"
    feed.write_text(json.dumps(record))
    [advisory] = load_feeds([feed], builtin=False).index.match_distribution(name, "1.0")
    return advisory.malicious


def _with_evidence(**parts: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(FLAW_EVIDENCE))
    record.update(parts)
    return record


@pytest.mark.parametrize(
    "malicious_part",
    [
        {"id": "mal-2026-1"},
        {"id": "MAL\u20112026\u20111"},  # a non-breaking hyphen
        {"aliases": ["MAL-2026-1"]},
        {"related": ["MAL-2025-1"]},
        {"related": "MAL-2025-1"},
        {"database_specific": {"malicious-packages-origins": "not even a list"}},
        {"database_specific": {"type": "Malware"}},
        {"database_specific": {"cwe_ids": ["cwe-506"]}},
        {"database_specific": {"cwe_ids": ["CWE-79", "CWE-506"]}},
        {"database_specific": {"cwe_ids": [506]}},
        {"database_specific": {"cwe_ids": ["506"]}},
        {"database_specific": {"cwe_ids": ["CWE-0506"]}},
        {"database_specific": {"cwe_ids": "CWE-506"}},
        {"database_specific": {"cwe_ids": [{"cweId": "CWE-506"}]}},
        {"database_specific": {"cwe_ids": ["CWE-506: Embedded Malicious Code"]}},
        {"database_specific": {"cwe_ids": ["CWE-912"]}},  # hidden functionality
        {"summary": "Malicious code in my-pkg (PyPI)"},
        {"summary": "Malware in my-pkg"},
        {"summary": "Malware in my_pkg"},
        {"summary": "Malicious code in my.pkg (PyPI)"},
        {"summary": "Malware\u00a0in  MY-PKG."},
        {"summary": "Malware in 'my-pkg'"},
        {"summary": "Malicious Package in my-pkg"},
        {"details": "Malicious code in my-pkg (PyPI)\n\n---\n_-= Per source details =-_"},
        # pypa/advisory-database marks hijacked and backdoored releases by their wording only.
        {
            "details": "The my-pkg project on PyPI was taken over via user account compromise "
            "via a phishing attack and a new malicious release made which contained code"
        },
        {
            "details": "The my-pkg package for Python, as distributed on PyPI, included a "
            "potential code-execution backdoor inserted by a third party."
        },
        {"details": "Malicious package. Exfiltrated secrets to a target server."},
        {"details": "my-pkg 0.5 contains credential harvesting code"},
        {"summary": "my-pkg 1.0 contains embedded malicious code"},
        {"summary": "Compromised my-pkg release exfiltrates credentials"},
        {"summary": "The compromised versions steal tokens"},
        {"details": "The maintainer account was compromised and 1.0 uploaded."},
        {"summary": "my-pkg 8.3.41 contains a cryptocurrency miner"},
        {"summary": "my-pkg ships a crypto miner"},
        {"details": "It downloaded and ran mining software."},
        {"summary": "Supply chain attack on my-pkg"},
        {"summary": "A supply-chain attack replaced my-pkg 1.0"},
        {"summary": "Typosquat of requests steals secrets"},
        {"summary": "Trojanized my-pkg release"},
        {"summary": "Unauthorized code in my-pkg PyPI releases"},
    ],
)
def test_every_malicious_signal_is_enough(tmp_path: Path, malicious_part: dict[str, Any]) -> None:
    """Each signal on a record that otherwise has every mark of a vulnerability."""
    assert not _malicious(tmp_path, FLAW_EVIDENCE)
    assert _malicious(tmp_path, _with_evidence(**malicious_part))


def test_the_ultralytics_advisory_is_malicious(tmp_path: Path) -> None:
    """GHSA's record of the 2024 compromised releases: CWE-94 and no MAL id or malware CWE."""
    record = {
        "id": "GHSA-7x29-qqmq-v6qc",
        "summary": "Unauthorized code in my-pkg PyPI releases",
        "details": "my-pkg has identified a supply chain attack affecting multiple versions of "
        "the my-pkg package. The compromised versions contained unauthorized code that "
        "downloaded and executed cryptocurrency mining software when instantiating models. "
        "This code was injected into the PyPI release artifacts.",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "my-pkg"},
                "versions": ["1.0"],
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.1"}]}
                ],
            }
        ],
        "database_specific": {"cwe_ids": ["CWE-94"], "severity": "CRITICAL"},
    }
    assert _malicious(tmp_path, record)


@pytest.mark.parametrize(
    "text",
    [
        "Malicious code in my-pkg-extras can be injected through crafted templates",
        "Malware in archives is not detected by my-pkg",
        "Code injection in my-pkg (PyPI)",
        "Attackers can inject malicious code in my-pkg's templates",
        # Words about what an attacker's input may do, not about the release itself.
        "my-pkg before 1.11.27 allows account takeover via a crafted email address",
        "my-pkg could be tricked into executing malicious code through a crafted file",
        "When a user installs a malicious package next to my-pkg, my-pkg imports it",
        "A crafted model leads to remote code execution in my-pkg",
        "my-pkg allows arbitrary code execution through pickle files",
        "my-pkg allows denial of service via a long header",
        "An SSRF allows attackers to exfiltrate data from the metadata service",
        "Data exfiltration is possible through an XXE in my-pkg",
        "The token leak could lead to a supply chain attack on projects using my-pkg",
        "A workflow injection in my-pkg's CI can result in a supply-chain attack",
        "my-pkg allows the execution of unauthorized code via a template",
        "If the index is compromised, my-pkg may install compromised packages",
        "Privilege escalation: an attacker who compromised a worker can run jobs",
    ],
)
@pytest.mark.parametrize("key", ["summary", "details"])
def test_vulnerability_wording_stays_vulnerable(tmp_path: Path, key: str, text: str) -> None:
    assert not _malicious(tmp_path, _with_evidence(**{key: text}))


@pytest.mark.parametrize(
    "evidence",
    [
        {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}]},
        {
            "versions": ["1.0"],
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "2.0.0"}]}],
        },
        {
            "versions": ["1.0"],
            "ranges": [
                {"type": "GIT", "repo": "x", "events": [{"introduced": "0"}, {"fixed": "ab"}]}
            ],
        },
        {
            "versions": ["1.0"],
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.0"}]}
            ],
        },
        {
            "versions": ["1.0"],
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
            ],
        },
        {"versions": ["1.0"], "database_specific": {"cwe_ids": ["CWE-502"]}},
    ],
)
def test_a_record_is_vulnerable_on_positive_evidence_only(
    tmp_path: Path, evidence: dict[str, Any]
) -> None:
    item = {"package": {"ecosystem": "PyPI", "name": "my-pkg"}, **evidence}
    record: dict[str, Any] = {"id": "GHSA-aaaa-bbbb-cccc", "affected": [item]}
    assert not _malicious(tmp_path, record)
    # The same evidence under a MAL id, or under no id of its own, proves no flaw.
    assert _malicious(tmp_path, {**record, "id": "MAL-2026-1"})
    assert _malicious(tmp_path, {"id": "", "aliases": ["MAL-2026-1"], "affected": [item]})


@pytest.mark.parametrize(
    "record",
    [
        # No fix, no score, no CWE: a bare list of releases is what a malware report looks like.
        {"id": "PYSEC-2026-1", "summary": "Issue in my-pkg", "versions": ["1.0"]},
        {
            "id": "GHSA-aaaa-bbbb-cccc",
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
        },
        {"id": "CVE-2026-1", "versions": ["1.0"], "database_specific": {"severity": "HIGH"}},
        {
            "id": "CVE-2026-1",
            "versions": ["1.0"],
            "database_specific": {"cwe_ids": ["NVD-CWE-Other"]},
        },
        {
            "id": "CVE-2026-1",
            "versions": ["1.0"],
            "severity": [{"type": "Ubuntu", "score": "high"}],
        },
        {"id": "CVE-2026-1", "versions": ["1.0"], "database_specific": {"cwe_ids": ["CWE-506"]}},
    ],
)
def test_a_record_without_evidence_of_a_flaw_is_malicious(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    item: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "my-pkg"}}
    for key in ("versions", "ranges"):
        if key in record:
            item[key] = record.pop(key)
    assert _malicious(tmp_path, {**record, "affected": [item]})


FLAW_KEYS = ("id", "aliases", "related", "summary", "details", "database_specific", "severity")
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(extra=st.dictionaries(st.sampled_from(FLAW_KEYS), _json, max_size=4))
@example(extra={"database_specific": {"cwe_ids": [{"cweId": None}]}})
@example(extra={"related": [None, 3, {"x": 1}]})
def test_the_classifier_takes_any_shape_and_never_lets_mal_through(extra: dict[str, Any]) -> None:
    """Free-form keys of any type never raise, and a MAL alias always wins."""
    from pytest_mlsupply.knownbad.osv import is_malicious, record_ids

    record = {**FLAW_EVIDENCE, **extra}
    is_malicious(record, ("PYSEC-2026-1",))
    marked = {**record, "aliases": ["MAL-2026-7"]}
    assert is_malicious(marked, record_ids(marked, "f"))


@pytest.mark.parametrize("key", ["database_specific", "ecosystem_specific"])
@pytest.mark.parametrize(
    "specific",
    [
        {"malicious-packages-origins": []},
        {"cwes": [{"cweId": "CWE-506", "name": "Embedded Malicious Code"}]},
        {"cwe_ids": ["CWE-506"]},
    ],
)
def test_affected_level_origins_and_cwes_are_malicious_too(
    tmp_path: Path, key: str, specific: dict[str, Any]
) -> None:
    record = _with_evidence()
    record["affected"][0][key] = specific
    assert _malicious(tmp_path, record)


def test_the_builtin_list_is_malicious_whatever_its_ids_say() -> None:
    index = load_feeds([], builtin=True).index
    for name, version in [("torchtriton", "3.0.0"), ("ultralytics", "8.3.41")]:
        [advisory] = index.match_distribution(name, version)
        assert advisory.malicious and not advisory.display_id.startswith("MAL-")


def test_a_withdrawn_vulnerability_matches_nothing(tmp_path: Path) -> None:
    record = json.loads(GHSA.read_text())
    record["withdrawn"] = "2026-03-05T00:00:00Z"
    feed = tmp_path / "withdrawn.json"
    feed.write_text(json.dumps(record))
    assert _findings(tmp_path, [feed], ("demo-tokenizer", "2.3.0")) == []


# ------------------------------------------------------------------ the policy


@pytest.mark.parametrize(
    ("policy", "feeds", "severity"),
    [
        (VulnerabilityPolicy("off"), [GHSA], None),
        (VulnerabilityPolicy("warn"), [GHSA], Severity.WARNING),
        (VulnerabilityPolicy("error"), [GHSA], Severity.ERROR),
        (VulnerabilityPolicy("warn", 8.8), [GHSA], Severity.ERROR),  # at the bar fails
        (VulnerabilityPolicy("warn", 8.9), [GHSA], Severity.WARNING),
        (VulnerabilityPolicy("off", 9.0), [GHSA], None),
        (VulnerabilityPolicy("off", 9.0), [PYSEC], Severity.ERROR),  # no score: not below
        (VulnerabilityPolicy("warn", 9.0), [GHSA_V4], Severity.ERROR),  # v4: not scored
    ],
)
def test_the_policy_decides_the_severity(
    tmp_path: Path, policy: VulnerabilityPolicy, feeds: list[Path], severity: Severity | None
) -> None:
    dists = [("demo-tokenizer", "2.3.0"), ("demo-loader", "1.0")]
    found = _findings(tmp_path, feeds, *dists, policy=policy)
    assert [f.severity for f in found] == ([severity] if severity else [])
    assert all(f.kind is Kind.VULNERABLE for f in found)


def test_the_policy_never_softens_malware(tmp_path: Path) -> None:
    [finding] = _findings(
        tmp_path, [GHSA_MALWARE], ("demo-evil", "1.0"), policy=VulnerabilityPolicy("off")
    )
    assert (finding.kind, finding.severity) == (Kind.KNOWN_BAD_PACKAGE, Severity.ERROR)


def test_the_level_words_are_the_same_in_settings_and_the_core() -> None:
    assert settings_module.VULNERABILITY_LEVELS == VULNERABILITY_LEVELS
    with pytest.raises(ValueError, match="is not one of"):
        VulnerabilityPolicy("loud")


def test_a_lock_pinning_a_vulnerable_release_says_re_lock(tmp_path: Path) -> None:
    from pytest_mlsupply.locks import detect_format
    from pytest_mlsupply.locks.foreign import load_foreign_lock

    lock_path = tmp_path / "requirements.txt"
    lock_path.write_text("demo-tokenizer==3.0 ; sys_platform == 'win32'\n")
    lock = load_foreign_lock(lock_path, detect_format(lock_path, None))
    index = load_feeds([GHSA], builtin=False).index
    [finding] = locked_findings(index, lock, "requirements.txt", [], VulnerabilityPolicy())
    assert finding.kind is Kind.VULNERABLE and finding.severity is Severity.WARNING
    assert finding.message.startswith(
        "requirements.txt pins demo-tokenizer 3.0, a vulnerable release (GHSA-2c4m-9vq6-8x3p, "
        "CVE-2026-90001; CVSS 8.8 high)"
    )
    assert finding.hint == "re-lock to 3.1.2 (fixed in 3.1.2)"


def _waive(findings: list[Finding], match: str) -> list[Finding]:
    import datetime

    from pytest_mlsupply.findings import Report
    from pytest_mlsupply.waivers import apply_waivers, parse_waivers

    waivers = parse_waivers(
        {"waiver": [{"match": match, "reason": "triaged", "expires": datetime.date(2099, 1, 1)}]},
        "waivers.toml",
    )
    report = apply_waivers(Report.build(findings), waivers, today=datetime.date(2026, 6, 1))
    return [f for f in report.findings if f.kind is not Kind.WAIVER_UNUSED]


def _mal_record(tmp_path: Path, name: str, version: str) -> Path:
    feed = tmp_path / "MAL-2026-9.json"
    feed.write_text(
        json.dumps(
            {
                "id": "MAL-2026-9",
                "aliases": ["GHSA-mmmm-mmmm-mmmm"],
                "affected": [
                    {"package": {"ecosystem": "PyPI", "name": name}, "versions": [version]}
                ],
            }
        )
    )
    return feed


@pytest.mark.parametrize("match", ["CVE-2026-90001", "GHSA-2c4m-9vq6-8x3p", "PYSEC-2026-9001"])
def test_a_waiver_for_a_vulnerability_never_waives_malware_of_the_same_release(
    tmp_path: Path, match: str
) -> None:
    feeds = [PYSEC, GHSA, _mal_record(tmp_path, "demo-tokenizer", "2.3.0")]
    [finding] = _waive(_findings(tmp_path, feeds, ("demo-tokenizer", "2.3.0")), match)
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE and finding.waived is None
    assert match in finding.message  # still named, so the reader sees what was triaged
    assert finding.advisories == ("MAL-2026-9", "GHSA-mmmm-mmmm-mmmm")


@pytest.mark.parametrize("match", ["MAL-2026-9", "GHSA-mmmm-mmmm-mmmm"])
def test_the_malicious_record_or_its_alias_waives_the_malware_finding(
    tmp_path: Path, match: str
) -> None:
    feeds = [GHSA, _mal_record(tmp_path, "demo-tokenizer", "2.3.0")]
    [finding] = _waive(_findings(tmp_path, feeds, ("demo-tokenizer", "2.3.0")), match)
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE and finding.waived is not None


def test_a_locked_malicious_release_carries_only_the_malicious_ids(tmp_path: Path) -> None:
    from pytest_mlsupply.locks import detect_format
    from pytest_mlsupply.locks.foreign import load_foreign_lock

    lock_path = tmp_path / "requirements.txt"
    lock_path.write_text("demo-tokenizer==3.0\n")
    lock = load_foreign_lock(lock_path, detect_format(lock_path, None))
    feeds = [GHSA, _mal_record(tmp_path, "demo-tokenizer", "3.0")]
    index = load_feeds(feeds, builtin=False).index
    [finding] = locked_findings(index, lock, "requirements.txt", [], VulnerabilityPolicy())
    assert finding.kind is Kind.KNOWN_BAD_PACKAGE
    assert "CVE-2026-90001" in finding.message
    assert finding.advisories == ("MAL-2026-9", "GHSA-mmmm-mmmm-mmmm")
    [kept] = _waive([finding], "CVE-2026-90001")
    assert kept.waived is None


# ------------------------------------------------------------------ bad severity: fail closed


@pytest.mark.parametrize(
    ("severity", "problem"),
    [
        (
            [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"}],
            "severity[0].score: base metrics A missing in CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
        ),
        (
            [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "severity[0].score: AV:Q is not a CVSS 3.1 value (one of N, A, L, P)",
        ),
        (
            [
                {
                    "type": "CVSS_V3",
                    "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                }
            ],
            "severity[0].score: CVSS_V3 holds a CVSS 4.0 vector",
        ),
        ([{"type": "CVSS_V3", "score": 9.8}], "severity[0].score must be a string, got 9.8"),
        ("CVSS:3.1/AV:N", "severity must be a list, got 'CVSS:3.1/AV:N'"),
        ([{"score": "x"}], "severity[0].type must be a string, got None"),
    ],
)
def test_a_severity_we_cannot_read_is_a_located_feed_problem(
    tmp_path: Path, severity: Any, problem: str
) -> None:
    record = json.loads(GHSA.read_text())
    record["severity"] = severity
    feed = tmp_path / "GHSA.json"
    feed.write_text(json.dumps(record))
    loaded = load_feeds([feed], builtin=False)
    [found] = loaded.problems
    assert found.path == str(feed)
    assert problem in found.message, found.message
    # The problem is an error of its own: a record we cannot read does not pass quietly.
    site = tmp_path / "site"
    install_fake(site, "demo", "1.0")
    result = run_known_bad(
        KnownBadConfig((feed,), builtin=False), take_snapshot([str(site)], keep_rows=True)
    )
    assert [(f.kind, f.severity) for f in result.findings] == [
        (Kind.KNOWN_BAD_FEED, Severity.ERROR)
    ]


def test_an_affected_level_severity_counts_and_is_checked(tmp_path: Path) -> None:
    record = json.loads(GHSA.read_text())
    del record["severity"]
    record["affected"][0]["severity"] = [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}
    ]
    feed = tmp_path / "GHSA.json"
    feed.write_text(json.dumps(record))
    [finding] = _findings(tmp_path, [feed], ("demo-tokenizer", "2.3.0"))
    assert "CVSS 10.0 critical" in finding.message
    record["affected"][0]["severity"] = [{"type": "CVSS_V3", "score": "nope"}]
    feed.write_text(json.dumps(record))
    [problem] = load_feeds([feed], builtin=False).problems
    assert (
        "affected[0].severity[0].score: a CVSS_V3 vector starts with CVSS:3.0/ or CVSS:3.1/, "
        "got 'nope'" in problem.message
    )


# ------------------------------------------------------------------ the cache


def test_the_cache_keeps_malicious_and_severity(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    feeds = [GHSA, GHSA_MALWARE]
    cold = load_feeds(feeds, builtin=False, cache_dir=cache)
    warm = load_feeds(feeds, builtin=False, cache_dir=cache)
    assert warm.from_cache and not cold.from_cache
    for name, version in [("demo-tokenizer", "2.3.0"), ("demo-evil", "1.0")]:
        assert warm.index.match_release(name, version) == cold.index.match_release(name, version)
    [(advisory, fixes)] = warm.index.match_release("demo-tokenizer", "2.3.0")
    assert not advisory.malicious and fixes == ("2.4.1", "3.1.2")
    assert advisory.severity == (("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H"),)


def test_a_cache_of_the_previous_format_is_not_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    load_feeds([GHSA], builtin=False, cache_dir=cache)
    path = cache / CACHE_FILE
    raw = path.read_bytes()
    # Rewrite it as format 3 would have stamped it: same payload, old version number.
    from pytest_mlsupply.knownbad import feeds

    header = len(feeds._CACHE_MAGIC) + feeds._CACHE_HEADER.size
    data = marshal.loads(raw[header:])
    data["version"] = 3
    payload = marshal.dumps(data)
    header = feeds._CACHE_MAGIC + feeds._CACHE_HEADER.pack(len(payload), zlib.crc32(payload))
    path.write_bytes(header + payload)
    again = load_feeds([GHSA], builtin=False, cache_dir=cache)
    assert not again.from_cache


def test_a_cache_compiled_by_another_classifier_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install updated by ``git pull`` must not keep the old code's verdicts."""
    from pytest_mlsupply.knownbad import feeds

    cache = tmp_path / "cache"
    cache.mkdir()
    load_feeds([GHSA], builtin=False, cache_dir=cache)
    assert load_feeds([GHSA], builtin=False, cache_dir=cache).from_cache
    real = Path.read_bytes

    def edited(path: Path) -> bytes:  # osv.py as a `git pull` would leave it
        data = real(path)
        return data + b"\n# changed\n" if path.name == "osv.py" else data

    before = feeds._classifier_digest()
    monkeypatch.setattr(Path, "read_bytes", edited)
    assert feeds._classifier_digest() not in (None, before)
    again = load_feeds([GHSA], builtin=False, cache_dir=cache)
    assert not again.from_cache
    assert load_feeds([GHSA], builtin=False, cache_dir=cache).from_cache  # rewritten for it


def test_without_the_classifier_source_nothing_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_mlsupply.knownbad import feeds

    monkeypatch.setattr(feeds, "CLASSIFIER_MODULES", ("osv", "no_such_module"))
    cache = tmp_path / "cache"
    cache.mkdir()
    load_feeds([GHSA], builtin=False, cache_dir=cache)
    assert not load_feeds([GHSA], builtin=False, cache_dir=cache).from_cache
    assert not (cache / CACHE_FILE).exists()


def test_an_old_four_field_cache_entry_fails_closed_as_malicious() -> None:
    old = ((("GHSA-2c4m-9vq6-8x3p",), "summary", "feed", None), (), (("introduced", "0"),))
    index = KnownBadIndex(lazy_packages={"demo": marshal.dumps([old])})
    [advisory] = index.match_distribution("demo", "1.0")
    assert advisory.summary == CACHE_ENTRY_BROKEN
    assert advisory.malicious


# ------------------------------------------------------------------ CVSS


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        # Scores as FIRST's calculators give them.
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:L/A:N", 3.3),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C", 9.8),  # base only
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("(AV:N/AC:M/Au:N/C:N/I:P/A:N)", 4.3),
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
        ("AV:L/AC:L/Au:N/C:C/I:C/A:C", 7.2),
    ],
)
def test_base_scores(vector: str, score: float) -> None:
    assert parse_vector(vector).score == score


def test_v4_is_parsed_not_scored_and_types_must_match() -> None:
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A"
    parsed = parse_vector(v4, "CVSS_V4")
    assert (parsed.version, parsed.score, str(parsed)) == ("4.0", None, v4)
    with pytest.raises(CvssError, match=r"CVSS_V2 holds a CVSS 3\.1 vector"):
        parse_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS_V2")
    with pytest.raises(CvssError, match="given twice"):
        parse_vector("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    with pytest.raises(CvssError, match="unknown CVSS version"):
        parse_vector("CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")


def test_roundup_and_ratings() -> None:
    assert roundup(4.02) == 4.1
    assert roundup(4.0) == 4.0
    assert roundup(4.000000000000001) == 4.0  # the v3.1 fix for floating-point noise
    assert [rating(s) for s in (0.0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        "none", "low", "low", "medium", "medium", "high", "high", "critical", "critical",
    ]  # fmt: skip


@st.composite
def vectors(draw: st.DrawFn) -> tuple[str, tuple[tuple[str, str], ...]]:
    version = draw(st.sampled_from(sorted(METRICS)))
    base, other = METRICS[version]
    metrics = [(name, draw(st.sampled_from(values))) for name, values in base.items()]
    extra = draw(st.lists(st.sampled_from(sorted(other)), unique=True, max_size=4))
    metrics += [(name, draw(st.sampled_from(other[name]))) for name in extra]
    return version, tuple(draw(st.permutations(metrics)))


@given(vectors())
def test_any_valid_vector_round_trips_and_scores_in_range(
    drawn: tuple[str, tuple[tuple[str, str], ...]],
) -> None:
    version, metrics = drawn
    text = format_vector(version, metrics)
    parsed = parse_vector(text)
    assert (parsed.version, parsed.metrics) == (version, metrics)
    assert str(parsed) == text
    if version == "4.0":
        assert parsed.score is None
    else:
        assert parsed.score is not None and 0.0 <= parsed.score <= 10.0
        assert parsed.score == round(parsed.score, 1)


_WORSE = {"3.1": ("C", "N", "H"), "3.0": ("I", "N", "H"), "2.0": ("A", "N", "C")}


@given(vectors())
def test_a_worse_impact_never_lowers_the_score(
    drawn: tuple[str, tuple[tuple[str, str], ...]],
) -> None:
    version, metrics = drawn
    if version not in _WORSE:
        return
    name, low, high = _WORSE[version]
    as_dict = dict(metrics)
    lower = parse_vector(format_vector(version, tuple({**as_dict, name: low}.items())))
    higher = parse_vector(format_vector(version, tuple({**as_dict, name: high}.items())))
    assert lower.score is not None and higher.score is not None
    assert higher.score >= lower.score


@given(
    st.text(max_size=120)
    | st.from_regex(r"(CVSS:[0-9.]{1,4}/)?([A-Za-z]{1,4}:[A-Za-z]{1,3}/?){0,14}")
)
@example("CVSS:3.1/")
@example("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/")
@example("CVSS:3.1/" + "E:X/" * 500)
@example("AV:N/AC:L/Au:N/C:P/I:P/A:P/CVSS:3.1")
def test_any_text_parses_or_is_a_cvss_error(text: str) -> None:
    try:
        parsed = parse_vector(text)
    except CvssError as exc:
        assert str(exc)
        return
    assert parsed.version in METRICS


def test_a_waiver_naming_a_cve_alias_accepts_the_vulnerable_finding(tmp_path: Path) -> None:
    import datetime

    from pytest_mlsupply.findings import Report
    from pytest_mlsupply.waivers import apply_waivers, parse_waivers

    found = _findings(tmp_path, [GHSA], ("demo-tokenizer", "2.3.0"))
    waivers = parse_waivers(
        {
            "waiver": [
                {
                    "match": "CVE-2026-90001",
                    "kind": "vulnerable",
                    "reason": "no untrusted model folders in CI",
                    "expires": datetime.date(2099, 1, 1),
                }
            ]
        },
        "waivers.toml",
    )
    report = apply_waivers(Report.build(found), waivers, today=datetime.date(2026, 6, 1))
    [finding] = report.findings
    assert finding.kind is Kind.VULNERABLE and finding.waived is not None
    assert not report.fails(strict=True)


def test_a_record_about_other_ecosystems_only_is_not_judged_by_its_severity(
    tmp_path: Path,
) -> None:
    """OSV's all-ecosystem exports hold npm and Maven records too: their vectors are not ours."""
    record = json.loads(GHSA.read_text())
    record["severity"] = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]
    record["affected"][0]["package"]["ecosystem"] = "npm"
    feed = tmp_path / "npm.json"
    feed.write_text(json.dumps(record))
    loaded = load_feeds([feed], builtin=False)
    assert loaded.problems == [] and loaded.stats[0].records == 1
