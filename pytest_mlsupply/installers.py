"""Which tool manages an environment, and the commands a hint tells the user to run.

A hint that says ``pip install ...`` in a venv ``uv sync`` built (it has no
pip) or in a Poetry project (pip would leave the environment out of step with
poetry.lock) is a hint nobody can follow. The tool is told by the lock format
(uv.lock, poetry.lock) and else by the ``INSTALLER`` files of the installed
distributions (PEP 627: pip writes ``pip``, uv ``uv``, Poetry ``poetry``, pdm
``pdm``); whether pip is installed decides whether pip's wording may appear.
Pure: it takes what it judges and returns strings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from pytest_mlsupply.locks import FORMAT_POETRY, FORMAT_PYLOCK, FORMAT_UV
from pytest_mlsupply.snapshot import Snapshot

PIP = "pip"
UV = "uv"
POETRY = "poetry"
PDM = "pdm"
#: The tools whose wording a hint can take, in the order that breaks a tie of INSTALLER counts.
MANAGERS = (UV, POETRY, PDM, PIP)

#: Lock formats that name the tool managing the project: that tool restores the environment.
LOCK_TOOLS = {FORMAT_UV: UV, FORMAT_POETRY: POETRY}

#: Restores an environment from the project's own lock, removing what it does not list.
SYNC = {UV: "uv sync", POETRY: "poetry sync", PDM: "pdm sync --clean"}
#: Installs the project under test from its working tree (never from an index).
INSTALL_PROJECT = {
    UV: "uv sync",
    POETRY: "poetry install",
    PDM: "pdm install",
    PIP: "pip install -e .",
}
ADD = {UV: "uv add", POETRY: "poetry add", PDM: "pdm add"}

#: When neither pip nor uv can install one package: the user's tool is named instead.
HINT_OTHER_TOOL = "{action} with the tool that manages this environment ({manager})"
#: Installed by pip, yet no pip inside: a pip outside (``pip --python``) built it.
HINT_OUTSIDE_PIP = (
    "{action} with the pip that built this environment from outside it "
    "(`pip --python <this interpreter> ...`; it has no pip of its own)"
)


@dataclass(frozen=True)
class Commands:
    """The command wording for one environment: *manager* and whether pip is there."""

    manager: str = PIP
    has_pip: bool = True
    #: The checked lock is the manager's own (uv.lock with uv, poetry.lock with Poetry,
    #: pylock.toml with pdm): its sync command restores exactly what the lock says.
    lock_is_managers: bool = False

    @property
    def _pip(self) -> str | None:
        """The per-package installer prefix, or None when there is none to name."""
        if self.manager == UV:
            return "uv pip"
        return "pip" if self.has_pip else None

    def sync(self) -> str | None:
        """The command that restores the environment from the checked lock, if one does."""
        command = SYNC.get(self.manager) if self.lock_is_managers else None
        return f"`{command}`" if command else None

    def install(self, name: str, version: str | None) -> str:
        """Install *name* at *version* (a quoted command)."""
        if (sync := self.sync()) is not None:
            return sync
        spec = f"'{name}=={version}'" if version else name
        if (pip := self._pip) is not None:
            return f"`{pip} install {spec}`"
        return self._other(f"install {spec}")

    def uninstall(self, name: str) -> str:
        """Remove *name*, installed but not locked."""
        if (sync := self.sync()) is not None:
            return f"{sync} (it removes what the lock does not list)"
        if (pip := self._pip) is not None:
            return f"`{pip} uninstall {name}`"
        return self._other(f"uninstall {name}")

    def reinstall(self, name: str, version: str) -> str:
        """Reinstall the same release of *name*, replacing its installed files."""
        spec = f"'{name}=={version}'"
        if self.manager == UV:
            return f"`uv pip install --reinstall --no-deps {spec}`"
        if self.has_pip:
            return f"`pip install --force-reinstall --no-deps {spec}`"
        if self.manager == PDM and self.lock_is_managers:
            return "`pdm sync --reinstall`"
        return self._other(f"reinstall {spec}")

    def restore_source(self, name: str) -> str:
        """Reinstall *name* from the source the checked lock names."""
        if self.manager == UV and self.lock_is_managers:
            return f"`uv sync --reinstall-package {name}`"
        return f"reinstall {name} from the locked source"

    def add_to_lock(self, name: str) -> str:
        """Lock *name* with the tool that writes the lock."""
        if self.lock_is_managers and self.manager in ADD:
            return f"`{ADD[self.manager]} {name}`"
        return "add it to the lock with the tool that writes it"

    def install_project(self) -> str:
        """Install the project under test from its working tree, never from an index."""
        if self.manager == PIP and not self.has_pip:
            return self._other("`install -e .` in the project's folder")
        return f"`{INSTALL_PROJECT[self.manager]}` in the project's folder"

    def _other(self, action: str) -> str:
        if self.manager == PIP:
            return HINT_OUTSIDE_PIP.format(action=action)
        return HINT_OTHER_TOOL.format(action=action, manager=self.manager)


def choose(
    installers: Iterable[str | None], *, has_pip: bool, lock_format: str | None = None
) -> Commands:
    """The wording for an environment whose distributions name *installers*.

    The lock's tool wins (a uv.lock project is restored with ``uv sync`` even
    when pip built the venv); else the tool most distributions name; pip when
    none is known (conda and unknown installers are not ours to word).
    """
    counts = Counter(
        text.strip().lower() for text in installers if text and text.strip().lower() in MANAGERS
    )
    lock_tool = LOCK_TOOLS.get(lock_format or "")
    if lock_tool is not None:
        return Commands(lock_tool, has_pip, lock_is_managers=True)
    if not counts:
        return Commands(PIP, has_pip)
    manager = max(MANAGERS, key=lambda tool: (counts[tool], -MANAGERS.index(tool)))
    own = manager == PDM and lock_format == FORMAT_PYLOCK
    return Commands(manager, has_pip, lock_is_managers=own)


def commands_for(snapshot: Snapshot, lock_format: str | None = None) -> Commands:
    """``choose`` for an environment snapshot and the format of the lock it is checked with."""
    names = {canonicalize_name(d.name) for d in snapshot.distributions}
    return choose(
        (d.installer for d in snapshot.distributions),
        has_pip=PIP in names,
        lock_format=lock_format,
    )
