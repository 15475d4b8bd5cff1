"""Reading TOML with errors that say where: ``line L, column C: not valid TOML: ...``."""

from __future__ import annotations

import re
import sys
from typing import Any

from pytest_mlsupply.limits import number_too_long

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded document, or None and the problem with its line and column.

    Deeply nested input makes the decoder recurse past Python's limit, and an
    integer of 5,000 digits makes it raise a plain ValueError; both are a
    malformed file too, not a crash.
    """
    try:
        return tomllib.loads(text), None
    except RecursionError:
        return None, "not valid TOML: nested too deeply"
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _POSITION.search(message)
        where = f"line {match.group(1)}, column {match.group(2)}: " if match else ""
        return None, f"{where}not valid TOML: {_POSITION.sub('', message).strip()}"
    except ValueError:  # int() of a literal past Python's 4,300-digit limit
        line, problem = number_too_long(text)
        where = f"line {line}: " if line else ""
        return None, f"{where}not valid TOML: {problem}"
