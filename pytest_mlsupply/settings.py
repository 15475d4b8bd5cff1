"""One frozen Settings, resolved once: command line, then ini file, then default.

Every invalid value is reported with where it came from (the option, or the
ini key and file), so a user knows which line to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_mlsupply.errors import SettingsError

DEFAULT_LOCK_NAME = "mlsupply.lock"
DEFAULT_DATA_MANIFEST_NAME = "mlsupply-data.toml"  # verified data (fixtures.py, datasets.py)

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
    )
