"""``rebalancer init``: write a first, commented config that validates.

Everything can be given as flags (scriptable); what is missing is asked on the terminal, unless
``--no-input`` or stdin is not a terminal. RPC URLs and API keys are only ever written as
``env:VAR`` / ``api_key_env`` placeholders: the secret itself never reaches the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rebalancer.commands import config_arg
from rebalancer.core.errors import ConfigError
from rebalancer.output import emit_json

CHAINS = ("ethereum", "avalanche", "solana")
FAMILY = {"ethereum": "evm", "avalanche": "evm", "solana": "solana"}
DEFAULT_TARGETS = "BTC=40,ETH=30,ALTS=20,STABLES=10"
DEFAULT_AGGREGATORS = {
    "1inch": ("https://api.1inch.com/swap/v6.0", "ONEINCH_API_KEY"),
    "jupiter": ("https://api.jup.ag/swap/v2", "JUPITER_API_KEY"),
}
FAMILY_AGGREGATOR = {"evm": "1inch", "solana": "jupiter"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    config_arg(p, "the config to write (default: rebalancer.toml in the current folder)")
    p.add_argument("--force", action="store_true", help="overwrite an existing config")
    p.add_argument(
        "--no-input", action="store_true", help="never ask; take flags and defaults only"
    )
    p.add_argument(
        "--chains",
        metavar="LIST",
        help=f"comma-separated chains to use (default: {','.join(CHAINS)})",
    )
    for fam, label in (("evm", "EVM (Ethereum, Avalanche)"), ("solana", "Solana")):
        p.add_argument(f"--{fam}-address", metavar="ADDR", help=f"{label} wallet address")
        p.add_argument(
            f"--{fam}-keyfile",
            metavar="FILE",
            help=f"{label}: sign with this key file (`rebalancer keys new`); address read from it",
        )
        p.add_argument(
            f"--{fam}-passphrase-env",
            metavar="VAR",
            help=f"{label}: the environment variable holding the key file's passphrase",
        )
        p.add_argument(
            f"--{fam}-ledger",
            metavar="PATH",
            help=f"{label}: sign with a Ledger at this BIP32 path (give the address too)",
        )
    p.add_argument(
        "--ledger-transport",
        default="hid",
        metavar="T",
        help="hid (USB, default) or tcp://HOST:PORT (an emulator)",
    )
    p.add_argument(
        "--rpc",
        action="append",
        default=[],
        metavar="CHAIN=SPEC",
        help="a chain's node: env:VAR (default env:<CHAIN>_RPC_URL) or localnet:NAME",
    )
    p.add_argument(
        "--aggregator-url",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="an aggregator's base URL (1inch, jupiter; https://... or localnet:NAME)",
    )
    p.add_argument(
        "--api-key-env",
        action="append",
        default=[],
        metavar="NAME=VAR",
        help="the environment variable holding an aggregator's API key",
    )
    p.add_argument(
        "--targets",
        metavar="LIST",
        help=f"target weights in percent (default: {DEFAULT_TARGETS})",
    )
    p.add_argument("--band", metavar="PP", help="band in percentage points (default: 5)")
    p.add_argument("--journal", metavar="FILE", help="the journal (default: the data folder)")


@dataclass
class Wallet:
    family: str
    address: str
    signer: str = ""  # the TOML inline table, or "" for a read-only wallet


@dataclass
class Answers:
    chains: list[str]
    wallets: list[Wallet]
    rpc: dict[str, str]
    aggregators: dict[str, tuple[str, str]]
    targets: dict[str, str]
    band: str
    journal: str | None
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it holds


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


class _Asker:
    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, question: str, default: str = "") -> str:
        if not self.interactive:
            return default
        shown = f" [{default}]" if default else ""
        try:
            answer = input(f"{question}{shown}: ").strip()
        except EOFError:
            answer = ""
        return answer or default


def _env_name(text: str, what: str) -> str:
    if not text.replace("_", "").isalnum() or text[0].isdigit():
        raise ConfigError(f"{what} {text!r}: not an environment variable name")
    return text


def _rpc_spec(chain: str, spec: str) -> str:
    """``env:VAR`` or ``localnet:NAME`` only: a URL written into a file may carry a key."""
    if spec.startswith("localnet:") and len(spec) > len("localnet:"):
        return spec
    if spec.startswith("env:"):
        _env_name(spec[4:], f"--rpc {chain}")
        return spec
    raise ConfigError(
        f"--rpc {chain}: give env:VAR (the URL goes in that environment variable, since node "
        "URLs often carry an API key) or localnet:NAME, not the URL itself"
    )


def _wallet(args: argparse.Namespace, fam: str, asker: _Asker) -> Wallet | None:
    label = {"evm": "EVM (Ethereum/Avalanche)", "solana": "Solana"}[fam]
    address = getattr(args, f"{fam}_address")
    keyfile = getattr(args, f"{fam}_keyfile")
    ledger = getattr(args, f"{fam}_ledger")
    pass_env = getattr(args, f"{fam}_passphrase_env")
    if keyfile and ledger:
        raise ConfigError(f"--{fam}-keyfile and --{fam}-ledger: choose one signer")
    if not (address or keyfile or ledger) and asker.interactive:
        how = asker.ask(f"{label} wallet: address, ledger, keyfile or none", "none").lower()
        if how == "keyfile":
            keyfile = asker.ask(f"{label} key file")
        elif how == "ledger":
            ledger = asker.ask(f"{label} Ledger path", _LEDGER_PATH[fam])
            address = asker.ask(f"{label} address shown by the Ledger")
        elif how not in ("none", ""):
            address = how
    if keyfile:
        from rebalancer.wallet.local import read_key_info

        path = Path(keyfile).expanduser()
        try:
            info = read_key_info(path)
        except OSError as exc:
            raise ConfigError(f"--{fam}-keyfile {keyfile!r}: {exc.strerror}") from None
        if info.family != fam:
            raise ConfigError(f"--{fam}-keyfile {keyfile!r}: a {info.family} key, not {fam}")
        address = address or info.identity
        if not address:
            raise ConfigError(
                f"--{fam}-keyfile {keyfile!r}: no address in it; give --{fam}-address"
            )
        signer = f'{{ kind = "keyfile", file = "{path.resolve()}"'
        if info.encrypted:
            default_var = f"{fam.upper()}_KEY_PASSPHRASE"
            pass_env = pass_env or asker.ask(
                f"{label} key file passphrase: the environment variable holding it", default_var
            )
            var = _env_name(pass_env or default_var, f"--{fam}-passphrase-env")
            signer += f', passphrase_env = "{var}"'
        return Wallet(fam, address, signer + " }")
    if ledger:
        if not address:
            raise ConfigError(
                f"--{fam}-ledger: give --{fam}-address (the address the Ledger shows)"
            )
        transport = args.ledger_transport
        return Wallet(
            fam, address, f'{{ kind = "ledger", path = "{ledger}", transport = "{transport}" }}'
        )
    return Wallet(fam, address) if address else None


_LEDGER_PATH = {"evm": "m/44'/60'/0'/0/0", "solana": "m/44'/501'/0'/0'"}


def gather(args: argparse.Namespace, interactive: bool) -> Answers:
    """The answers from flags, and from the terminal for what flags leave open."""
    asker = _Asker(interactive)
    chain_text = args.chains or asker.ask("chains", ",".join(CHAINS))
    chains = [c.strip() for c in chain_text.split(",") if c.strip()]
    for c in chains:
        if c not in CHAINS:
            raise ConfigError(f"--chains: unknown chain {c!r} (known: {', '.join(CHAINS)})")
    if not chains:
        raise ConfigError("--chains: at least one chain")
    families = sorted({FAMILY[c] for c in chains})
    wallets = [w for fam in families if (w := _wallet(args, fam, asker)) is not None]
    if not wallets:
        raise ConfigError(
            "no wallet: give --evm-address/--evm-keyfile/--evm-ledger or the --solana-... ones"
        )
    given_rpc = _pairs(args.rpc, "--rpc")
    rpc = {}
    for c in chains:
        default = f"env:{c.upper()}_RPC_URL"
        rpc[c] = _rpc_spec(c, given_rpc.get(c) or asker.ask(f"{c} node (env:VAR)", default))
    urls = _pairs(args.aggregator_url, "--aggregator-url")
    keys = _pairs(args.api_key_env, "--api-key-env")
    aggregators = {}
    for fam in families:
        name = FAMILY_AGGREGATOR[fam]
        url, key = DEFAULT_AGGREGATORS[name]
        url = urls.get(name) or asker.ask(f"{name} API (https://... or localnet:NAME)", url)
        key = keys.get(name) or asker.ask(f"{name} API key: the environment variable", key)
        if not url.startswith(("https://", "http://127.0.0.1", "localnet:")):
            raise ConfigError(f"--aggregator-url {name}: give https://... or localnet:NAME")
        aggregators[name] = (url, _env_name(key, f"--api-key-env {name}"))
    targets_text = args.targets or asker.ask("targets (NAME=PERCENT,...)", DEFAULT_TARGETS)
    targets = _pairs([t for t in targets_text.split(",") if t.strip()], "--targets")
    band = args.band or asker.ask("band (percentage points)", "5")
    journal = args.journal or asker.ask("journal (a SQLite file; empty: the data folder)")
    answers = Answers(chains, wallets, rpc, aggregators, targets, band, journal or None)
    for c, spec in rpc.items():
        if spec.startswith("env:"):
            answers.env[spec[4:]] = f"the {c} node's URL (https://...)"
    for name, (_url, var) in aggregators.items():
        answers.env[var] = f"your {name} API key"
    for w in wallets:
        if "passphrase_env" in w.signer:
            var = w.signer.split('passphrase_env = "')[1].split('"')[0]
            answers.env[var] = f"the passphrase of the {w.family} key file"
    return answers


def render(a: Answers) -> str:
    """The config text, commented for the person who will edit it next."""
    lines = [
        "# rebalancer config written by `rebalancer init`. Check it with `rebalancer doctor`.",
        "# Secrets are never written here: node URLs and API keys come from the environment",
        "# variables named below (env:VAR); key file passphrases likewise.",
        "",
    ]
    if a.journal:
        lines += [
            "# The SQLite journal (relative paths are relative to this file).",
            f'journal = "{a.journal}"',
            "",
        ]
    for c in a.chains:
        lines += [f"[chains.{c}]", f'rpc = "{a.rpc[c]}"', ""]
    lines.append("# Wallets: the address is public; the signer says how trades are signed.")
    for w in a.wallets:
        chains = ", ".join(f'"{c}"' for c in a.chains if FAMILY[c] == w.family)
        lines += [
            "[[wallets]]",
            f'name = "{w.family}"',
            f'address = "{w.address}"',
            f"chains = [{chains}]",
        ]
        if w.signer:
            lines.append(f"signer = {w.signer}")
        else:
            lines.append("# no signer: read-only (plans, no trades); add signer = { ... } to trade")
        lines.append("")
    targets = ", ".join(f"{k} = {v}" for k, v in a.targets.items())
    lines += [
        "# Target weights in percent (classes or assets; must sum to 100) and the band: a weight",
        "# further than band_pp points from its target triggers a rebalance.",
        "[strategy]",
        f"targets = {{ {targets} }}",
        f"band_pp = {a.band}",
        "",
        "# Prices in USD per unit, for drift and plans (until oracles or quotes price them):",
        "# [prices]",
        "# BTC = 95000",
        "# ETH = 3200",
        "",
    ]
    for name, (url, var) in a.aggregators.items():
        lines += [f'[aggregators."{name}"]', f'base_url = "{url}"', f'api_key_env = "{var}"', ""]
    lines += [
        "# Checks every trade must pass before it is signed (defaults shown).",
        "[policy]",
        "max_slippage_bps = 100",
        "max_trade_usd = 50000",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rebalancer.config import load_config

    path = Path(args.config)
    if path.exists() and not args.force:
        raise ConfigError(f"{str(path)!r} exists; use --force to overwrite it")
    interactive = not args.no_input and not args.json and sys.stdin.isatty()
    answers = gather(args, interactive)
    text = render(answers)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            load_config(tmp)
        except ConfigError as exc:
            raise ConfigError(f"the answers make an invalid config: {exc.message}") from None
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"{str(path)!r}: cannot write: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    unset = {k: v for k, v in answers.env.items() if k not in os.environ}
    if args.json:
        emit_json({"config": str(path), "env": answers.env, "unset": sorted(unset)})
        return 0
    print(f"wrote {path}")
    if answers.env:
        print("\nset in the environment (never in the file):")
        for var, what in answers.env.items():
            print(f"  {var:<24} {what}{'' if var in unset else '  (set)'}")
    print(f"\nthen check everything with: rebalancer doctor -c {path}")
    return 0
