"""Address validation per chain family, done once when config and registry are loaded."""

from __future__ import annotations

import re

from rebalancer.core.errors import ConfigError

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58decode(text: str) -> bytes:
    """Decode base58 (Bitcoin alphabet); raises ValueError on a character outside it."""
    num = 0
    for ch in text:
        try:
            num = num * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid base58 character {ch!r}") from None
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


_HEX_ADDRESS = re.compile(r"(?:0[xX])?[0-9a-fA-F]{40}")


def to_checksum(address: str) -> str:
    """The EIP-55 form of a 40-hex-digit address (with or without 0x): a letter is upper case
    where the keccak-256 of the lower-case hex has a nibble >= 8.

    NOTE: pycryptodome's keccak instead of eth_utils, which costs ~50 ms of import on every
    command that reads a config.
    """
    from Crypto.Hash import keccak

    body = address[-40:].lower()
    digest = keccak.new(data=body.encode("ascii"), digest_bits=256).hexdigest()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c for c, d in zip(body, digest[:40], strict=True)
    )


def checksum_evm(address: str, field: str) -> str:
    """Return the EIP-55 form of ``address``; refuse malformed ones and bad mixed-case checksums."""
    if not isinstance(address, str) or not _HEX_ADDRESS.fullmatch(address):
        raise ConfigError(f"{field} = {address!r}: not an EVM address (0x + 40 hex digits)")
    body = address[2:]
    expected = to_checksum(address)
    if body != body.lower() and body != body.upper() and address != expected:
        raise ConfigError(f"{field} = {address!r}: wrong EIP-55 checksum (expected {expected})")
    return expected


def check_solana(address: str, field: str) -> str:
    """Return ``address`` if it is base58 of exactly 32 bytes (a Solana public key)."""
    if not isinstance(address, str) or not 32 <= len(address) <= 44:
        raise ConfigError(f"{field} = {address!r}: not a Solana address (base58, 32 bytes)")
    try:
        raw = b58decode(address)
    except ValueError as exc:
        raise ConfigError(f"{field} = {address!r}: not a Solana address ({exc})") from None
    if len(raw) != 32:
        raise ConfigError(
            f"{field} = {address!r}: decodes to {len(raw)} bytes, a Solana key has 32"
        )
    return address


def normalise(family: str, address: str, field: str) -> str:
    """Validate and normalise an address for a chain family."""
    if family == "evm":
        return checksum_evm(address, field)
    return check_solana(address, field)
