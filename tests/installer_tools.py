"""The installers the real-installer tests drive (uv, Poetry, pdm), found on PATH.

Locally a missing installer skips those tests with the reason; CI sets
``MLSUPPLY_REQUIRE_INSTALLERS=1`` (after installing them) so that a missing one
fails instead of turning a whole class of tests into silent skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "MLSUPPLY_REQUIRE_INSTALLERS"


def installer(name: str) -> str:
    """The path of the *name* executable on PATH; skips (or, in CI, fails) without it."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not on PATH (install it with `pip install {name}` to run this test)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)
