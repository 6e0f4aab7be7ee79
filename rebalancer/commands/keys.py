"""``rebalancer keys new|import|list|show|ledger``: manage local key files, read a Ledger's
addresses; never prints a secret.

``show`` and ``list`` print addresses only and need no passphrase. New and imported keys are
encrypted (EVM: keystore v3; Solana: scrypt + AES-256-GCM) unless ``--plain`` asks for the
solana-keygen format. Passphrases and imported secrets come from an environment variable whose
NAME is given (``--passphrase-env``, ``--secret-env``) or from a hidden prompt. ``ledger``
prints the addresses a Ledger holds (``--path P``, or the first ``--account N`` accounts of the
Ledger Live layout), so ``[[wallets]]`` can be filled without another tool.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rebalancer.wallet.local import KeyFileInfo, LocalSigner, LocalSolanaSigner


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rebalancer keys`` (kept here so the command's surface lives in one place)."""
    p.add_argument("action", choices=["new", "import", "list", "show", "ledger"], help="what to do")
    p.add_argument("name", nargs="?", help="key name (file <DIR>/<name>.json)")
    p.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="keys directory (default: $REBALANCER_KEYS_DIR or ~/.local/share/rebalancer/keys)",
    )
    p.add_argument(
        "--family", choices=["evm", "solana"], help="key family for new/import (EVM or Solana)"
    )
    p.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="environment variable holding the passphrase (default: ask on the terminal)",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="Solana only: write an unencrypted solana-keygen file (JSON array of 64 bytes)",
    )
    p.add_argument(
        "--from-file",
        metavar="FILE",
        help="import: a keystore v3 file (EVM), or a solana-keygen / encrypted keypair (Solana)",
    )
    p.add_argument(
        "--secret-env",
        metavar="VAR",
        help="import: environment variable holding a private key (EVM hex, Solana base58) or, "
        "with --mnemonic, a BIP39 phrase",
    )
    p.add_argument(
        "--mnemonic",
        action="store_true",
        help="import: derive from a BIP39 phrase (from --secret-env or a hidden prompt)",
    )
    p.add_argument(
        "--path",
        default=None,
        help="import --mnemonic, ledger: derivation path "
        "(default m/44'/60'/0'/0/0 or m/44'/501'/0'/0')",
    )
    p.add_argument(
        "--chain", metavar="CHAIN", help="ledger: the chain (ethereum, avalanche, solana)"
    )
    p.add_argument(
        "--account",
        type=int,
        default=None,
        metavar="N",
        help="ledger: print the first N accounts (m/44'/60'/i'/0/0 on EVM, "
        "m/44'/501'/i'/0' on Solana) instead of one path",
    )
    p.add_argument(
        "--transport",
        default="hid",
        metavar="T",
        help='ledger: "hid" (USB, the default) or "tcp://HOST:PORT" (Speculos, the emulator)',
    )
    p.add_argument(
        "--kdf-n",
        type=int,
        default=None,
        metavar="N",
        help="scrypt cost for new files (default 262144; lower values only for tests)",
    )


def run(args: argparse.Namespace) -> int:
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.local import default_keys_dir, find_key, list_keys, read_key_info

    if args.action == "ledger":
        return _ledger(args)
    directory = Path(args.dir).expanduser() if args.dir else default_keys_dir(os.environ)
    if args.action == "list":
        infos = list_keys(directory)
        if args.json:
            print(json.dumps({"dir": str(directory), "keys": [i.to_json() for i in infos]}))
        elif not infos:
            print(f"no keys in {directory}")
        else:
            for info in infos:
                print(_line(info))
        return 0
    if not args.name:
        raise ConfigError(f"keys {args.action}: needs a key name")
    if args.action == "show":
        info = read_key_info(find_key(directory, args.name))
        if args.json:
            print(json.dumps(info.to_json()))
        else:
            print(info.identity or "(address unknown until decrypted)")
        return 0
    if args.action == "new":
        return _new(args, directory)
    return _import(args, directory)


def _line(info: KeyFileInfo) -> str:
    lock = "encrypted" if info.encrypted else "PLAIN"
    return f"{info.name:<20} {info.family:<7} {info.identity or '?':<45} {lock}"


def _report(args: argparse.Namespace, verb: str, info: KeyFileInfo) -> int:
    if args.json:
        print(json.dumps(info.to_json()))
    else:
        print(f"{verb} {info.family} key {info.name!r}: {info.identity}")
        print(f"  file: {info.path}" + ("" if info.encrypted else " (unencrypted)"))
    return 0


def _family(args: argparse.Namespace) -> str:
    from rebalancer.core.errors import ConfigError

    if not args.family:
        raise ConfigError(f"keys {args.action}: --family evm or --family solana is required")
    if args.plain and args.family != "solana":
        raise ConfigError("--plain: only Solana keys can be written unencrypted")
    return str(args.family)


def _write(args: argparse.Namespace, directory: Path, signer: LocalSigner) -> KeyFileInfo:
    from rebalancer.wallet.local import (
        SCRYPT_N,
        LocalEvmSigner,
        check_name,
        resolve_passphrase,
        write_evm_keystore,
        write_solana_keypair,
    )

    name = check_name(args.name)
    n = args.kdf_n or SCRYPT_N
    passphrase = None
    if not args.plain:
        passphrase = resolve_passphrase(
            args.passphrase_env, environ=os.environ, what=f"new key {name!r}", confirm=True
        )
    if isinstance(signer, LocalEvmSigner):
        assert passphrase is not None
        return write_evm_keystore(directory, name, signer, passphrase, scrypt_n=n)
    return write_solana_keypair(directory, name, signer, passphrase, scrypt_n=n)


def _new(args: argparse.Namespace, directory: Path) -> int:
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.local import check_name, new_signer

    family = _family(args)
    target = directory / f"{check_name(args.name)}.json"
    if target.exists():  # before asking for a passphrase
        raise ConfigError(f"key {args.name!r}: {target} already exists")
    signer = new_signer("evm" if family == "evm" else "solana")
    return _report(args, "created", _write(args, directory, signer))


def _secret(args: argparse.Namespace, what: str) -> str:
    """A secret from the named environment variable or a hidden prompt; never echoed."""
    from rebalancer.wallet.local import resolve_passphrase

    return resolve_passphrase(args.secret_env, environ=os.environ, what=what)


def _import(args: argparse.Namespace, directory: Path) -> int:
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.local import (
        LocalEvmSigner,
        LocalSolanaSigner,
        check_name,
        load_signer,
        read_key_info,
        resolve_passphrase,
        write_keystore_file,
    )

    family = _family(args)
    name = check_name(args.name)
    if args.from_file:
        source = Path(args.from_file).expanduser()
        info = read_key_info(source)
        if info.family != family:
            raise ConfigError(f"--from-file {source}: holds a {info.family} key, not {family}")

        def ask() -> str:
            return resolve_passphrase(
                args.passphrase_env, environ=os.environ, what=f"key file {source.name}"
            )

        signer = load_signer(source, ask)
        if info.kind == "keystore-v3":
            # NOTE: copied as is (it decrypts, so it is sound); it keeps its own passphrase.
            doc: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
            return _report(args, "imported", write_keystore_file(directory, name, doc))
        return _report(args, "imported", _write(args, directory, signer))
    if args.mnemonic:
        from rebalancer.wallet.hd import (
            EVM_DEFAULT_PATH,
            SOLANA_DEFAULT_PATH,
            evm_key_from_seed,
            seed_from_mnemonic,
            solana_key_from_seed,
        )

        seed = seed_from_mnemonic(_secret(args, "the BIP39 mnemonic"))
        if family == "evm":
            signer_: LocalSigner = LocalEvmSigner(
                evm_key_from_seed(seed, args.path or EVM_DEFAULT_PATH)
            )
        else:
            signer_ = LocalSolanaSigner.from_seed(
                solana_key_from_seed(seed, args.path or SOLANA_DEFAULT_PATH)
            )
        return _report(args, "imported", _write(args, directory, signer_))
    secret = _secret(args, f"the {family} private key").strip()
    if family == "evm":
        try:
            raw = bytes.fromhex(secret.removeprefix("0x"))
        except ValueError:
            raise ConfigError("evm private key: not hex (64 hex digits expected)") from None
        return _report(args, "imported", _write(args, directory, LocalEvmSigner(raw)))
    return _report(args, "imported", _write(args, directory, _solana_secret(secret)))


def _solana_secret(secret: str) -> LocalSolanaSigner:
    """A Solana secret as wallets export it: base58 of 64 bytes, or a JSON array of 64 ints."""
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.local import LocalSolanaSigner

    if secret.startswith("["):
        try:
            values = json.loads(secret)
            return LocalSolanaSigner(bytes(values))
        except (ValueError, TypeError):
            raise ConfigError("solana private key: not a JSON array of 64 bytes") from None
    from solders.keypair import Keypair

    try:
        return LocalSolanaSigner(bytes(Keypair.from_base58_string(secret)))
    except BaseException as exc:  # NOTE: solders panics (PanicException) on bad input
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ConfigError("solana private key: not base58 of a 64-byte keypair") from None


MAX_LEDGER_ACCOUNTS = 100


def ledger_paths(family: str, path: str | None, accounts: int | None) -> list[str]:
    """The paths ``keys ledger`` reads: ``path``, or account 0..N-1 of the Ledger Live layout."""
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.hd import EVM_DEFAULT_PATH, SOLANA_DEFAULT_PATH, format_path, parse_path

    if path is not None and accounts is not None:
        raise ConfigError("keys ledger: give --path or --account, not both")
    if path is not None:
        return [format_path(parse_path(path))]
    n = 1 if accounts is None else accounts
    if not 1 <= n <= MAX_LEDGER_ACCOUNTS:
        raise ConfigError(f"keys ledger --account: from 1 to {MAX_LEDGER_ACCOUNTS}, not {n}")
    if n == 1:
        return [EVM_DEFAULT_PATH if family == "evm" else SOLANA_DEFAULT_PATH]
    if family == "evm":
        return [f"m/44'/60'/{i}'/0/0" for i in range(n)]
    return [f"m/44'/501'/{i}'/0'" for i in range(n)]


def _ledger(args: argparse.Namespace) -> int:
    """Read the Ledger's address at each path, silently (nothing to confirm on the device)."""
    from rebalancer.chains.registry import Registry
    from rebalancer.core.errors import ConfigError
    from rebalancer.wallet.ledger import LedgerClient, make_transport

    registry = Registry.load()
    if not args.chain:
        raise ConfigError("keys ledger: --chain is required (" + ", ".join(registry.chains) + ")")
    info = registry.chains.get(args.chain)
    if info is None:
        raise ConfigError(
            f"keys ledger --chain {args.chain}: unknown (one of {', '.join(registry.chains)})"
        )
    paths = ledger_paths(info.family, args.path, args.account)
    client = LedgerClient(make_transport(args.transport))
    try:
        if info.family == "evm":
            found = [(p, client.eth_address(p)) for p in paths]
        else:
            found = [(p, client.sol_pubkey(p)) for p in paths]
    finally:
        client.close()
    if args.json:
        accounts = [{"path": p, "address": a} for p, a in found]
        print(json.dumps({"chain": info.name, "family": info.family, "accounts": accounts}))
    else:
        for p, a in found:
            print(f"{p:<22} {a}")
    return 0
