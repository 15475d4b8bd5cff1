"""pytest-mlsupply: a pytest gate for machine-learning supply chains.

This module stays tiny on purpose: pytest imports it for every run in which the
plugin is installed, enabled or not, so nothing heavy may be imported here. The
public data API (``verify_file``, ``verify_tree``, ``DataIntegrityError``) is
exported lazily, on first attribute access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["DataIntegrityError", "__version__", "verify_file", "verify_tree"]

if TYPE_CHECKING:
    from pytest_mlsupply.datasets import DataIntegrityError, verify_file, verify_tree

_LAZY = {"verify_file", "verify_tree", "DataIntegrityError"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from pytest_mlsupply import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
