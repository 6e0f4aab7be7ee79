"""One module per CLI command, imported only when that command runs (keeps --help fast)."""

from __future__ import annotations

import argparse

CONFIG_HELP = "portfolio config (default: rebalancer.toml in the current folder)"


def config_arg(p: argparse.ArgumentParser, text: str = CONFIG_HELP) -> None:
    """``-c/--config FILE`` (default rebalancer.toml): one spelling for every command."""
    p.add_argument("-c", "--config", default="rebalancer.toml", metavar="FILE", help=text)
