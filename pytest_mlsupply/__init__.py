"""pytest-mlsupply: a pytest gate for machine-learning supply chains.

This module stays tiny on purpose: pytest imports it for every run in which the
plugin is installed, enabled or not, so nothing heavy may be imported here.
"""

__version__ = "0.1.0"
