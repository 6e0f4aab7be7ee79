"""One entry point from a wallet's config to its :class:`~wallet.base.Signer`.

Takes plain values (not the config model) so the config can evolve without touching this. Suggested
config form per wallet::

    signer = { kind = "ledger", path = "m/44'/60'/0'/0/0", transport = "hid" }
    signer = { kind = "ledger", transport = "tcp://127.0.0.1:9999" }      # Speculos / emulator
    signer = { kind = "keyfile", file = "~/.local/share/rebalancer/keys/hot.json",
               passphrase_env = "HOT_PASS" }

Either way the key's identity must equal the wallet's configured address, so a wrong path, file
or device is a config error before anything is built or signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from rebalancer.core.errors import ConfigError
from rebalancer.core.types import Family
from rebalancer.wallet.base import Signer
from rebalancer.wallet.ledger import Prompt, open_ledger_signer, print_to_stderr
from rebalancer.wallet.local import load_signer, resolve_passphrase

SignerKind = Literal["ledger", "keyfile"]


async def open_signer(
    *,
    kind: SignerKind,
    family: Family,
    address: str,
    environ: Mapping[str, str],
    path: str | None = None,
    transport: str = "hid",
    file: str | None = None,
    passphrase_env: str | None = None,
    prompt: Prompt = print_to_stderr,
) -> Signer:
    """The signer for one wallet; ``address`` is the configured one and must match the key."""
    if kind == "ledger":
        return await open_ledger_signer(
            family, transport=transport, path=path, expected=address, prompt=prompt
        )
    if kind != "keyfile":
        raise ConfigError(f'signer.kind = {kind!r}: use "ledger" or "keyfile"')
    if not file:
        raise ConfigError('signer.file: required for kind = "keyfile"')
    key_path = Path(file).expanduser()

    def ask() -> str:
        return resolve_passphrase(passphrase_env, environ=environ, what=f"key file {key_path}")

    signer = load_signer(key_path, ask)
    if signer.family != family:
        raise ConfigError(f"signer.file = {file!r}: holds a {signer.family} key, not {family}")
    same = (
        signer.identity.lower() == address.lower()
        if family == "evm"
        else (signer.identity == address)
    )
    if not same:
        raise ConfigError(
            f"signer.file = {file!r}: holds {signer.identity}, not the wallet's address {address}"
        )
    return signer
