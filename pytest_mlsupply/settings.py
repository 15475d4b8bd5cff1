"""One frozen Settings, resolved once: command line, then ini file, then default.

Every invalid value is reported with where it came from (the option, or the
ini key and file), so a user knows which line to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_mlsupply.errors import SettingsError

if TYPE_CHECKING:
    from pytest_mlsupply.locks import Choice

DEFAULT_LOCK_NAME = "mlsupply.lock"
DEFAULT_DATA_MANIFEST_NAME = "mlsupply-data.toml"  # verified data (fixtures.py, datasets.py)

#: ``--mlsupply-vulnerabilities``: how vulnerable (not malicious) releases are reported.
#: The same words as knownbad.match.VULNERABILITY_LEVELS, kept here so resolving the
#: settings imports nothing heavy.
VULNERABILITY_LEVELS = ("off", "warn", "error")
DEFAULT_VULNERABILITIES = "warn"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    enabled: bool
    lock_path: Path
    update_lock: bool
    strict: bool
    warn_only: bool
    report_path: Path | None
    rehash: bool = False
    waivers_path: Path | None = None
    # Foreign lockfiles (pylock.toml, requirements, uv.lock, poetry.lock, Pipfile.lock).
    lock_format: str | None = None
    min_age_days: float | None = None
    #: Extras and groups of a foreign lock to take; None: what its installer takes.
    lock_extras: Choice | None = None
    lock_groups: Choice | None = None
    known_bad: tuple[Path, ...] = ()
    builtin_known_bad: bool = True
    vulnerabilities: str = DEFAULT_VULNERABILITIES
    fail_on_cvss: float | None = None


@dataclass(frozen=True)
class SettingSources:
    """Where values come from, without tying this module to pytest.

    ``option(name)`` returns the command-line value or None when not given;
    ``ini(name)`` returns the ini value (``""`` when unset). Relative paths from
    the command line are taken from ``invocation_dir``, those from the ini file
    from the ini file's directory (``ini_dir``), the default from ``rootdir``.
    """

    option: Callable[[str], Any]
    ini: Callable[[str], Any]
    ini_file: str | None
    invocation_dir: Path
    ini_dir: Path
    rootdir: Path


def _ini_bool(sources: SettingSources, key: str) -> bool:
    raw = sources.ini(key)
    if isinstance(raw, bool):
        return raw
    text = str(raw or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    where = sources.ini_file or "the ini file"
    raise SettingsError(f"ini option {key!r} in {where}: expected true or false, got {raw!r}")


def _flag(sources: SettingSources, option: str, ini_key: str) -> bool:
    value = sources.option(option)
    if value:
        return True
    return _ini_bool(sources, ini_key)


def _path(sources: SettingSources, option: str, ini_key: str) -> Path | None:
    value = sources.option(option)
    if value:
        return (sources.invocation_dir / str(value)).resolve()
    raw = str(sources.ini(ini_key) or "").strip()
    if raw:
        return (sources.ini_dir / raw).resolve()
    return None


def _known_bad_paths(sources: SettingSources) -> tuple[Path, ...]:
    """``--mlsupply-known-bad`` (repeatable) replaces the ini list ``mlsupply_known_bad``."""
    given = sources.option("mlsupply_known_bad")
    if given:
        return tuple((sources.invocation_dir / str(p)).resolve() for p in given)
    raw = sources.ini("mlsupply_known_bad") or []
    lines = raw.splitlines() if isinstance(raw, str) else [str(item) for item in raw]
    return tuple((sources.ini_dir / line.strip()).resolve() for line in lines if line.strip())


def _builtin_known_bad(sources: SettingSources) -> bool:
    """On unless ``--mlsupply-no-builtin-known-bad`` or ``mlsupply_builtin_known_bad = false``."""
    if sources.option("mlsupply_no_builtin_known_bad"):
        return False
    if not str(sources.ini("mlsupply_builtin_known_bad") or "").strip():
        return True
    return _ini_bool(sources, "mlsupply_builtin_known_bad")


def resolve_settings(sources: SettingSources) -> Settings:
    update_lock = bool(sources.option("mlsupply_update_lock"))
    enabled = _flag(sources, "mlsupply", "mlsupply") or update_lock
    strict = _flag(sources, "mlsupply_strict", "mlsupply_strict")
    warn_only = _flag(sources, "mlsupply_warn_only", "mlsupply_warn_only")
    if strict and warn_only:
        raise SettingsError(
            "--mlsupply-strict and --mlsupply-warn-only contradict each other "
            "(set on the command line or as ini options mlsupply_strict / "
            "mlsupply_warn_only); choose one"
        )
    lock_path = _path(sources, "mlsupply_lock", "mlsupply_lock")
    return Settings(
        enabled=enabled,
        lock_path=lock_path or (sources.rootdir / DEFAULT_LOCK_NAME),
        update_lock=update_lock,
        strict=strict,
        warn_only=warn_only,
        report_path=_path(sources, "mlsupply_report", "mlsupply_report"),
        rehash=bool(sources.option("mlsupply_rehash")),
        waivers_path=_path(sources, "mlsupply_waivers", "mlsupply_waivers"),
        lock_format=_lock_format(sources),
        min_age_days=_min_age(sources),
        lock_extras=_choice(sources, "mlsupply_lock_extras", "--mlsupply-lock-extras"),
        lock_groups=_choice(sources, "mlsupply_lock_groups", "--mlsupply-lock-groups"),
        known_bad=_known_bad_paths(sources),
        builtin_known_bad=_builtin_known_bad(sources),
        vulnerabilities=_vulnerabilities(sources),
        fail_on_cvss=_fail_on_cvss(sources),
    )


def _lock_format(sources: SettingSources) -> str | None:
    value, where = sources.option("mlsupply_lock_format"), "--mlsupply-lock-format"
    if not value:
        value = str(sources.ini("mlsupply_lock_format") or "").strip()
        where = f"ini option 'mlsupply_lock_format' in {sources.ini_file or 'the ini file'}"
    if not value:
        return None
    from pytest_mlsupply.locks import LOCK_FORMATS

    if value not in LOCK_FORMATS:
        raise SettingsError(
            f"{where}: unknown lock format {value!r}; choose one of {', '.join(LOCK_FORMATS)}"
        )
    return str(value)


def _choice(sources: SettingSources, key: str, option: str) -> Choice | None:
    value = sources.option(key)
    if value is None and not str(sources.ini(key) or "").strip():
        return None
    from pytest_mlsupply.locks import parse_choice

    if value is not None:
        return parse_choice(str(value), option)
    raw = str(sources.ini(key) or "").strip()
    if raw:
        return parse_choice(raw, f"ini option {key!r} in {sources.ini_file or 'the ini file'}")
    return None


def parse_min_age(value: object, where: str) -> float:
    """A non-negative number of days; *where* names the option or ini key in the error."""
    try:
        days = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"{where}: expected a number of days, got {value!r}") from None
    if not days >= 0 or days == float("inf"):
        raise SettingsError(f"{where}: expected a non-negative number of days, got {value!r}")
    return days


def _min_age(sources: SettingSources) -> float | None:
    value = sources.option("mlsupply_min_age")
    if value is not None and str(value).strip() != "":
        return parse_min_age(value, "--mlsupply-min-age")
    raw = str(sources.ini("mlsupply_min_age") or "").strip()
    if raw:
        where = f"ini option 'mlsupply_min_age' in {sources.ini_file or 'the ini file'}"
        return parse_min_age(raw, where)
    return None


def _ini_where(sources: SettingSources, key: str) -> str:
    return f"ini option {key!r} in {sources.ini_file or 'the ini file'}"


def parse_vulnerabilities(value: object, where: str) -> str:
    """One of VULNERABILITY_LEVELS; *where* names the option or ini key in the error."""
    text = str(value).strip().lower()
    if text not in VULNERABILITY_LEVELS:
        raise SettingsError(
            f"{where}: expected one of {', '.join(VULNERABILITY_LEVELS)}, got {value!r}"
        )
    return text


def _vulnerabilities(sources: SettingSources) -> str:
    value = sources.option("mlsupply_vulnerabilities")
    if value is not None and str(value).strip() != "":
        return parse_vulnerabilities(value, "--mlsupply-vulnerabilities")
    raw = str(sources.ini("mlsupply_vulnerabilities") or "").strip()
    if raw:
        return parse_vulnerabilities(raw, _ini_where(sources, "mlsupply_vulnerabilities"))
    return DEFAULT_VULNERABILITIES


def parse_cvss_score(value: object, where: str) -> float:
    """A CVSS base score, 0.0 to 10.0; *where* names the option or ini key in the error."""
    try:
        score = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"{where}: expected a CVSS score (0 to 10), got {value!r}") from None
    if not 0.0 <= score <= 10.0:
        raise SettingsError(f"{where}: expected a CVSS score (0 to 10), got {value!r}")
    return score


def _fail_on_cvss(sources: SettingSources) -> float | None:
    value = sources.option("mlsupply_fail_on_cvss")
    if value is not None and str(value).strip() != "":
        return parse_cvss_score(value, "--mlsupply-fail-on-cvss")
    raw = str(sources.ini("mlsupply_fail_on_cvss") or "").strip()
    if raw:
        return parse_cvss_score(raw, _ini_where(sources, "mlsupply_fail_on_cvss"))
    return None
