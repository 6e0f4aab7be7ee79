"""Where the package's data lives: found with ``importlib.resources``, never from ``__file__``.

The wheel carries ``fixtures/``, ``examples/``, ``chains/data/`` and ``localnet/contracts/``
inside the ``rebalancer`` package. In a checkout (editable install) the same names are the root
folders, reached through the symlinks in ``rebalancer/``, so ``make fixtures`` rewrites the
checkout's ``fixtures/`` and an installed ``rebalancer demo`` reads the copy in the wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rebalancer.core.errors import ConfigError


def package_path(*parts: str) -> Path:
    """A file or folder inside the installed ``rebalancer`` package, as a real path (anvil and
    the local nodes are handed file names)."""
    found = resources.files("rebalancer").joinpath(*parts)
    if not isinstance(found, Path):
        # NOTE: only a zipped import gives something else; pip always unpacks a wheel.
        raise ConfigError(f"rebalancer is installed as an archive; {'/'.join(parts)} is not a file")
    return found.resolve()  # in a checkout: the root folder behind the symlink


def fixture_path(*parts: str) -> Path:
    """Data of the local worlds: chain states, account snapshots, recorded API answers."""
    return package_path("fixtures", *parts)


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None if installed.

    Only development tools need it: the pinned npm packages (anvil, solc, contract artifacts)
    live in the checkout's ``node_modules``.
    """
    root = package_path().parent
    return root if (root / "pyproject.toml").is_file() else None
