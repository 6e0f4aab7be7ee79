"""Solana account encodings shared by the local node, its snapshots and the fixture generator.

An account travels as JSON exactly the way a validator's ``getMultipleAccounts`` shows it
(``{"data": [b64, "base64"], "executable", "lamports", "owner", "rentEpoch", "space"}``), so a
snapshot captured from a real RPC loads into the node unchanged. Token accounts and mints can
also be shown ``jsonParsed`` the way the validator's account decoder does.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from typing import Any

from solders.account import Account
from solders.pubkey import Pubkey

SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
TOKEN_PROGRAMS = (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)

# NOTE: validators report rentEpoch u64::MAX for every rent-exempt account since rent
# collection ended; clients parse it as an integer, so it must stay an exact int.
RENT_EPOCH_MAX = 2**64 - 1
TOKEN_ACCOUNT_LEN = 165
MINT_LEN = 82
# Token-2022 puts an account-type byte right after the 165-byte base, then TLV extensions.
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_EXTENSION_NAMES = {
    1: "transferFeeConfig",
    2: "transferFeeAmount",
    3: "mintCloseAuthority",
    4: "confidentialTransferMint",
    5: "confidentialTransferAccount",
    6: "defaultAccountState",
    7: "immutableOwner",
    8: "memoTransfer",
    9: "nonTransferable",
    10: "interestBearingConfig",
    11: "cpiGuard",
    12: "permanentDelegate",
    13: "nonTransferableAccount",
    14: "transferHook",
    15: "transferHookAccount",
    18: "metadataPointer",
    19: "tokenMetadata",
    20: "groupPointer",
    21: "tokenGroup",
    22: "groupMemberPointer",
    23: "tokenGroupMember",
}
_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}
# Legacy "binary" (base58 string) encoding refuses data longer than this, as validators do.
MAX_BASE58_BYTES = 128


class EncodingError(ValueError):
    """The requested encoding cannot show this account (the validator answers -32602)."""


# -- base58 (Bitcoin alphabet), needed for the legacy encodings ---------------------------------
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(raw: bytes) -> str:
    """Encode bytes as base58 (leading zero bytes become '1's)."""
    num = int.from_bytes(raw, "big")
    out = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58[rem])
    pad = len(raw) - len(raw.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Decode base58; raises ValueError on a character outside the alphabet."""
    num = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        num = num * 58 + idx
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


# -- account <-> JSON ---------------------------------------------------------------------------
def account_from_json(entry: Mapping[str, Any]) -> Account:
    """Build an Account from the ``getMultipleAccounts`` base64 shape (snapshot entries)."""
    data_field = entry["data"]
    if isinstance(data_field, list) and len(data_field) == 2 and data_field[1] == "base64":
        data = base64.b64decode(data_field[0], validate=True)
    elif isinstance(data_field, list) and len(data_field) == 2 and data_field[1] == "base58":
        data = b58decode(data_field[0])
    else:
        raise ValueError("account data must be [text, 'base64'] or [text, 'base58']")
    lamports = entry["lamports"]
    rent_epoch = entry.get("rentEpoch", RENT_EPOCH_MAX)
    if not isinstance(lamports, int) or isinstance(lamports, bool) or lamports < 0:
        raise ValueError(f"lamports must be a non-negative integer, got {lamports!r}")
    return Account(
        lamports=lamports,
        data=data,
        owner=Pubkey.from_string(entry["owner"]),
        executable=bool(entry.get("executable", False)),
        rent_epoch=int(rent_epoch),
    )


def account_to_json(
    account: Account,
    encoding: str = "base64",
    data_slice: tuple[int, int] | None = None,
    mint_decimals: Callable[[Pubkey], int | None] | None = None,
) -> dict[str, Any]:
    """Show an account the way a validator does for ``encoding`` (base64, base58, binary,
    jsonParsed). jsonParsed falls back to base64 for accounts no parser knows, like the
    validator; ``mint_decimals`` looks up a mint's decimals for parsed token accounts."""
    raw = bytes(account.data)
    owner = account.owner
    data: Any
    if encoding == "jsonParsed" and data_slice is None and owner in TOKEN_PROGRAMS:
        parsed = parse_token_program_account(raw, owner, mint_decimals)
        data = parsed if parsed is not None else [base64.b64encode(raw).decode(), "base64"]
    else:
        if data_slice is not None:
            offset, length = data_slice
            raw = raw[offset : offset + length]
        if encoding in ("base64", "jsonParsed"):
            data = [base64.b64encode(raw).decode(), "base64"]
        elif encoding in ("base58", "binary"):
            if len(raw) > MAX_BASE58_BYTES:
                raise EncodingError(
                    "Encoded binary (base 58) data should be less than 128 bytes, "
                    "please use Base64 encoding."
                )
            data = b58encode(raw) if encoding == "binary" else [b58encode(raw), "base58"]
        else:
            raise EncodingError(f"unsupported encoding {encoding!r}")
    return {
        "data": data,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(owner),
        "rentEpoch": account.rent_epoch,
        "space": len(account.data),
    }


# -- token program accounts -------------------------------------------------------------------
def ui_amount_string(amount: int, decimals: int) -> str:
    """The validator's trimmed decimal string for a base-unit amount (exact, no float)."""
    digits = str(amount).rjust(decimals + 1, "0")
    if decimals == 0:
        return digits
    text = f"{digits[:-decimals]}.{digits[-decimals:]}".rstrip("0")
    return text.rstrip(".")


def token_amount_json(amount: int, decimals: int) -> dict[str, Any]:
    """``{"amount", "decimals", "uiAmount", "uiAmountString"}`` as the validator returns it."""
    text = ui_amount_string(amount, decimals)
    # NOTE: uiAmount is a float in the protocol itself; it is display-only and derived from
    # the exact string, never used for money here.
    ui_amount = float(text)
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": ui_amount,
        "uiAmountString": text,
    }


def token_account_fields(data: bytes) -> tuple[Pubkey, Pubkey, int] | None:
    """(mint, owner, amount) of a token account's base layout, or None if too short."""
    if len(data) < TOKEN_ACCOUNT_LEN:
        return None
    mint = Pubkey.from_bytes(data[0:32])
    owner = Pubkey.from_bytes(data[32:64])
    (amount,) = struct.unpack_from("<Q", data, 64)
    return mint, owner, amount


def is_token_account(data: bytes) -> bool:
    """Token accounts are exactly 165 bytes, or longer with the Account type byte (2022)."""
    if len(data) == TOKEN_ACCOUNT_LEN:
        return True
    return len(data) > TOKEN_ACCOUNT_LEN and data[TOKEN_ACCOUNT_LEN] == _ACCOUNT_TYPE_ACCOUNT


def is_mint(data: bytes) -> bool:
    """Mints are 82 bytes, or longer with the Mint type byte (Token-2022 extensions)."""
    if len(data) == MINT_LEN:
        return True
    return len(data) > TOKEN_ACCOUNT_LEN and data[TOKEN_ACCOUNT_LEN] == _ACCOUNT_TYPE_MINT


def mint_decimals_of(data: bytes) -> int | None:
    """A mint's decimals (byte 44), or None if ``data`` is not a mint."""
    return data[44] if is_mint(data) else None


def _extensions(data: bytes) -> list[dict[str, Any]]:
    """Names of the TLV extensions after a Token-2022 account's type byte."""
    out: list[dict[str, Any]] = []
    pos = TOKEN_ACCOUNT_LEN + 1
    while pos + 4 <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, pos)
        if ext_type == 0:
            break
        out.append({"extension": _EXTENSION_NAMES.get(ext_type, "unparseableExtension")})
        pos += 4 + length
    return out


def _coption_pubkey(data: bytes, offset: int) -> str | None:
    (tag,) = struct.unpack_from("<I", data, offset)
    return str(Pubkey.from_bytes(data[offset + 4 : offset + 36])) if tag == 1 else None


def parse_token_program_account(
    data: bytes,
    program: Pubkey,
    mint_decimals: Callable[[Pubkey], int | None] | None,
) -> dict[str, Any] | None:
    """The ``jsonParsed`` form of a mint or token account, or None when it cannot be parsed
    (the validator then falls back to base64)."""
    program_name = "spl-token-2022" if program == TOKEN_2022_PROGRAM else "spl-token"
    info: dict[str, Any]
    if is_token_account(data):
        fields = token_account_fields(data)
        assert fields is not None
        mint, owner, amount = fields
        decimals = mint_decimals(mint) if mint_decimals is not None else None
        if decimals is None:
            return None
        state = _STATES.get(data[108])
        if state is None or state == "uninitialized":
            return None
        (native_tag,) = struct.unpack_from("<I", data, 109)
        (native_reserve,) = struct.unpack_from("<Q", data, 113)
        (delegated,) = struct.unpack_from("<Q", data, 121)
        info = {
            "isNative": native_tag == 1,
            "mint": str(mint),
            "owner": str(owner),
            "state": state,
            "tokenAmount": token_amount_json(amount, decimals),
        }
        delegate = _coption_pubkey(data, 72)
        if delegate is not None:
            info["delegate"] = delegate
            info["delegatedAmount"] = token_amount_json(delegated, decimals)
        if native_tag == 1:
            info["rentExemptReserve"] = token_amount_json(native_reserve, decimals)
        close_authority = _coption_pubkey(data, 129)
        if close_authority is not None:
            info["closeAuthority"] = close_authority
        if program == TOKEN_2022_PROGRAM and len(data) > TOKEN_ACCOUNT_LEN:
            info["extensions"] = _extensions(data)
        kind = "account"
    elif is_mint(data):
        (supply,) = struct.unpack_from("<Q", data, 36)
        info = {
            "decimals": data[44],
            "freezeAuthority": _coption_pubkey(data, 46),
            "isInitialized": bool(data[45]),
            "mintAuthority": _coption_pubkey(data, 0),
            "supply": str(supply),
        }
        if program == TOKEN_2022_PROGRAM and len(data) > TOKEN_ACCOUNT_LEN:
            info["extensions"] = _extensions(data)
        kind = "mint"
    else:
        return None
    return {
        "program": program_name,
        "parsed": {"info": info, "type": kind},
        "space": len(data),
    }
