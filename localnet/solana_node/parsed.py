"""The ``jsonParsed`` encoding of transactions: account keys with their roles, and the
instructions of the programs a validator's parser knows shown as ``{"program", "parsed"}``
(System, SPL Token and Token-2022, Associated Token Account, Memo). Any other instruction is
shown partially decoded (``programId``, account keys, base58 data), as validators do.

Field names follow the validator's ``solana-transaction-status`` parsers; only the
instructions a wallet of this project meets are decoded (no nonce, multisig or extension
instructions: those appear partially decoded).
"""

from __future__ import annotations

import struct
from typing import Any

from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from rebalancer.localnet.solana_accounts import (
    _EXTENSION_NAMES,
    ASSOCIATED_TOKEN_PROGRAM,
    SYSTEM_PROGRAM,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    b58decode,
    b58encode,
    token_amount_json,
)
from rebalancer.localnet.solana_node.encoding import lookups_json

MEMO_PROGRAMS = {
    Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
    Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
}
_RENT_SYSVAR = "SysvarRent111111111111111111111111111111111"
_AUTHORITY_TYPES = ["mintTokens", "freezeAccount", "accountOwner", "closeAccount"]


class _Short(Exception):
    """Instruction data or accounts too short for the instruction: shown partially decoded."""


def account_keys_json(tx: VersionedTransaction, loaded: tuple[list[str], list[str]]) -> list[Any]:
    """``accountKeys`` of a parsed message: each key with signer, writable and source."""
    msg = tx.message
    h = msg.header
    static = [str(k) for k in msg.account_keys]
    n_sig = h.num_required_signatures
    out: list[dict[str, Any]] = []
    for i, key in enumerate(static):
        if i < n_sig:
            writable = i < n_sig - h.num_readonly_signed_accounts
        else:
            writable = i < len(static) - h.num_readonly_unsigned_accounts
        out.append({"pubkey": key, "signer": i < n_sig, "writable": writable})
    for keys, writable in ((loaded[0], True), (loaded[1], False)):
        out += [{"pubkey": k, "signer": False, "writable": writable} for k in keys]
    for i, entry in enumerate(out):
        entry["source"] = "transaction" if i < len(static) else "lookupTable"
    return out


def parsed_tx_json(tx: VersionedTransaction, loaded: tuple[list[str], list[str]]) -> dict[str, Any]:
    """A transaction in the ``jsonParsed`` encoding."""
    msg = tx.message
    keys = [str(k) for k in msg.account_keys] + [*loaded[0], *loaded[1]]
    message: dict[str, Any] = {
        "accountKeys": account_keys_json(tx, loaded),
        "instructions": [
            parse_instruction(
                keys[ix.program_id_index],
                [keys[i] for i in bytes(ix.accounts)],
                bytes(ix.data),
                None,
            )
            for ix in msg.instructions
        ],
        "recentBlockhash": str(msg.recent_blockhash),
    }
    if isinstance(msg, MessageV0):
        message["addressTableLookups"] = lookups_json(tx)
    return {"message": message, "signatures": [str(s) for s in tx.signatures]}


def parsed_inner_json(inner: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Inner instructions (recorded compiled) in the parsed form."""
    return [
        {
            "index": group["index"],
            "instructions": [
                parse_instruction(
                    keys[ix["programIdIndex"]],
                    [keys[i] for i in ix["accounts"]],
                    b58decode(ix["data"]) if ix["data"] else b"",
                    ix.get("stackHeight"),
                )
                for ix in group["instructions"]
            ],
        }
        for group in inner
    ]


def parse_instruction(
    program: str, accounts: list[str], data: bytes, stack_height: int | None
) -> dict[str, Any]:
    """One instruction, parsed if its program is known, else partially decoded."""
    key = Pubkey.from_string(program)
    try:
        name, parsed = _parse(key, accounts, data)
    except (_Short, IndexError, struct.error, UnicodeDecodeError):
        name = None
    if name is None:
        return {
            "accounts": accounts,
            "data": b58encode(data),
            "programId": program,
            "stackHeight": stack_height,
        }
    return {"parsed": parsed, "program": name, "programId": program, "stackHeight": stack_height}


def _parse(program: Pubkey, accounts: list[str], data: bytes) -> tuple[str | None, Any]:
    if program == SYSTEM_PROGRAM:
        return _system(accounts, data)
    if program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
        name = "spl-token" if program == TOKEN_PROGRAM else "spl-token-2022"
        parsed = _token(accounts, data)
        return (name, parsed) if parsed is not None else (None, None)
    if program == ASSOCIATED_TOKEN_PROGRAM:
        return _associated(accounts, data)
    if program in MEMO_PROGRAMS:
        return "spl-memo", data.decode("utf-8")
    return None, None


def _need(accounts: list[str], n: int) -> None:
    if len(accounts) < n:
        raise _Short


def _u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def _pk(data: bytes, offset: int) -> str:
    if len(data) < offset + 32:
        raise _Short
    return str(Pubkey.from_bytes(data[offset : offset + 32]))


def _system(accounts: list[str], data: bytes) -> tuple[str | None, Any]:
    (tag,) = struct.unpack_from("<I", data, 0)
    if tag == 0:
        _need(accounts, 2)
        info = {
            "source": accounts[0],
            "newAccount": accounts[1],
            "lamports": _u64(data, 4),
            "space": _u64(data, 12),
            "owner": _pk(data, 20),
        }
        return "system", {"info": info, "type": "createAccount"}
    if tag == 1:
        _need(accounts, 1)
        info = {"account": accounts[0], "owner": _pk(data, 4)}
        return "system", {"info": info, "type": "assign"}
    if tag == 2:
        _need(accounts, 2)
        info = {"source": accounts[0], "destination": accounts[1], "lamports": _u64(data, 4)}
        return "system", {"info": info, "type": "transfer"}
    if tag == 8:
        _need(accounts, 1)
        info = {"account": accounts[0], "space": _u64(data, 4)}
        return "system", {"info": info, "type": "allocate"}
    return None, None


def _token(accounts: list[str], data: bytes) -> dict[str, Any] | None:
    tag = data[0]

    def amount_of(offset: int) -> dict[str, Any]:
        if len(data) < offset + 9:
            raise _Short
        return token_amount_json(_u64(data, offset), data[offset + 8])

    def plain(fields: list[str], kind: str, amount: bool = False) -> dict[str, Any]:
        _need(accounts, len(fields))
        info: dict[str, Any] = dict(zip(fields, accounts, strict=False))
        if amount:
            info["amount"] = str(_u64(data, 1))
        return {"info": info, "type": kind}

    def checked(fields: list[str], kind: str) -> dict[str, Any]:
        _need(accounts, len(fields))
        info: dict[str, Any] = dict(zip(fields, accounts, strict=False))
        info["tokenAmount"] = amount_of(1)
        return {"info": info, "type": kind}

    if tag in (0, 20):
        _need(accounts, 1)
        info: dict[str, Any] = {"mint": accounts[0], "decimals": data[1]}
        info["mintAuthority"] = _pk(data, 2)
        if len(data) >= 67 and data[34] == 1:
            info["freezeAuthority"] = _pk(data, 35)
        if tag == 0:
            _need(accounts, 2)
            info["rentSysvar"] = accounts[1]
        return {"info": info, "type": "initializeMint" if tag == 0 else "initializeMint2"}
    if tag == 1:
        return plain(["account", "mint", "owner", "rentSysvar"], "initializeAccount")
    if tag in (16, 18):
        _need(accounts, 2)
        info = {"account": accounts[0], "mint": accounts[1], "owner": _pk(data, 1)}
        if tag == 16:
            info["rentSysvar"] = accounts[2] if len(accounts) > 2 else _RENT_SYSVAR
        return {"info": info, "type": "initializeAccount2" if tag == 16 else "initializeAccount3"}
    if tag == 3:
        return plain(["source", "destination", "authority"], "transfer", amount=True)
    if tag == 4:
        return plain(["source", "delegate", "owner"], "approve", amount=True)
    if tag == 5:
        return plain(["source", "owner"], "revoke")
    if tag == 6:
        _need(accounts, 2)
        kind = _AUTHORITY_TYPES[data[1]] if data[1] < len(_AUTHORITY_TYPES) else str(data[1])
        target = "mint" if kind in ("mintTokens", "freezeAccount") else "account"
        new = _pk(data, 3) if len(data) >= 35 and data[2] == 1 else None
        info = {target: accounts[0], "authorityType": kind, "newAuthority": new}
        info["authority"] = accounts[1]
        return {"info": info, "type": "setAuthority"}
    if tag == 7:
        return plain(["mint", "account", "mintAuthority"], "mintTo", amount=True)
    if tag == 8:
        return plain(["account", "mint", "authority"], "burn", amount=True)
    if tag == 9:
        return plain(["account", "destination", "owner"], "closeAccount")
    if tag == 10:
        return plain(["account", "mint", "freezeAuthority"], "freezeAccount")
    if tag == 11:
        return plain(["account", "mint", "freezeAuthority"], "thawAccount")
    if tag == 12:
        return checked(["source", "mint", "destination", "authority"], "transferChecked")
    if tag == 13:
        return checked(["source", "mint", "delegate", "owner"], "approveChecked")
    if tag == 14:
        return checked(["mint", "account", "mintAuthority"], "mintToChecked")
    if tag == 15:
        return checked(["account", "mint", "authority"], "burnChecked")
    if tag == 17:
        return plain(["account"], "syncNative")
    if tag == 21:
        parsed = plain(["mint"], "getAccountDataSize")
        codes = [c for (c,) in struct.iter_unpack("<H", data[1 : 1 + (len(data) - 1) // 2 * 2])]
        if codes:
            names = [_EXTENSION_NAMES.get(c, str(c)) for c in codes]
            parsed["info"]["extensionTypes"] = names
        return parsed
    if tag == 22:
        return plain(["account"], "initializeImmutableOwner")
    return None


def _associated(accounts: list[str], data: bytes) -> tuple[str | None, Any]:
    kind = {b"": "create", b"\x00": "create", b"\x01": "createIdempotent"}.get(data)
    if kind is None:
        return None, None
    _need(accounts, 6)
    fields = ["source", "account", "wallet", "mint", "systemProgram", "tokenProgram"]
    info = dict(zip(fields, accounts, strict=False))
    return "spl-associated-token-account", {"info": info, "type": kind}
