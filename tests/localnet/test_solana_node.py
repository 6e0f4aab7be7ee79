"""The local Solana node, driven by the unmodified solana-py AsyncClient (and raw JSON-RPC
where the exact wire shape is the point)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TokenAccountOpts, TxOpts
from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from rebalancer.chains.anvil import NodeProcess, start_listening, stop_pid
from rebalancer.localnet.solana_accounts import NATIVE_MINT, TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from rebalancer.localnet.solana_fixtures import (
    DEMO_PATH,
    PYUSD_MINT,
    build_demo_snapshot,
    demo_keypair,
    maker_keypair,
)
from rebalancer.localnet.solana_node import MAINNET_GENESIS_HASH, fee_for_message
from rebalancer.localnet.solana_snapshot import capture_snapshot, dump_snapshot, load_snapshot
from rebalancer.localnet.solana_snapshot import main as snapshot_main

SOL = 10**9
USDC = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
REAL_MINTS = {  # address -> decimals, from the registry and two public sources
    "So11111111111111111111111111111111111111112": 9,
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v": 6,
    "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB": 6,
    "cbbtcf3aa214zXHbiAZQwf4122FBYbraNdFqgw4iMij": 8,
    "3NZ9JMVBmGAqocybic2c7LQCJScmgsAZ6vQqTDzcqmJh": 8,
    "7vfCXTUXx5WJV5JADk17DUJ4ksgau7utNKj4b963voxs": 8,
    "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN": 6,
    "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263": 5,
}


# -- helpers -----------------------------------------------------------------------------------
def rpc(url: str, payload: Any) -> Any:
    """Raw JSON-RPC, for checking wire shapes exactly."""
    return httpx.post(url, json=payload, timeout=10).json()


def call(url: str, method: str, *params: Any) -> Any:
    return rpc(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})


def signed(
    payer: Keypair, ixs: list[Instruction], blockhash: Hash, *others: Keypair
) -> VersionedTransaction:
    return VersionedTransaction(
        Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), [payer, *others]
    )


def sol_transfer(src: Keypair, dst: Pubkey, lamports: int, blockhash: Hash) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=src.pubkey(), to_pubkey=dst, lamports=lamports))
    return signed(src, [ix], blockhash)


def is_valid(url: str, blockhash: Hash) -> bool:
    """isBlockhashValid (not wrapped by AsyncClient)."""
    answer = call(url, "isBlockhashValid", str(blockhash), {"commitment": "processed"})
    return bool(answer["result"]["value"])


async def blockhash(client: AsyncClient) -> Hash:
    return (await client.get_latest_blockhash()).value.blockhash


async def confirm(client: AsyncClient, sig: Signature) -> None:
    await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.02)


async def funded(client: AsyncClient, lamports: int = 10 * SOL) -> Keypair:
    kp = Keypair()
    sig = (await client.request_airdrop(kp.pubkey(), lamports)).value
    await confirm(client, sig)
    return kp


def preflight_error(exc: RPCException) -> Any:
    """The solders error object solana-py raises for a -32002 answer."""
    return exc.args[0]


# -- identity, time, shapes --------------------------------------------------------------------
def test_fixture_rebuilds_byte_identically() -> None:
    assert dump_snapshot(build_demo_snapshot()) == DEMO_PATH.read_text()


async def test_node_says_it_is_mainnet_and_slots_advance(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        assert await client.is_connected()
        assert str((await client.get_genesis_hash()).value) == MAINNET_GENESIS_HASH
        assert (await client.get_version()).value.solana_core
        slot = (await client.get_slot()).value
        height = (await client.get_block_height()).value
        assert height < slot  # block height is not the slot, as on mainnet
        await asyncio.sleep(0.5)  # 400 ms slots
        assert (await client.get_slot()).value > slot
        for commitment in (Processed, Confirmed, Finalized):
            assert (await client.get_balance(demo_keypair().pubkey(), commitment)).value > 0


async def test_real_mints_and_demo_portfolio(solana_node: NodeProcess) -> None:
    demo = demo_keypair().pubkey()
    async with AsyncClient(solana_node.url) as client:
        for mint, decimals in REAL_MINTS.items():
            supply = (await client.get_token_supply(Pubkey.from_string(mint))).value
            assert supply.decimals == decimals, mint
        assert (await client.get_balance(demo)).value == 95 * SOL
        usdc = (await client.get_account_info(USDC)).value
        assert usdc is not None and usdc.owner == TOKEN_PROGRAM and len(usdc.data) == 82
        many = (await client.get_multiple_accounts([USDC, PYUSD_MINT, Keypair().pubkey()])).value
        assert [a.owner if a else None for a in many] == [TOKEN_PROGRAM, TOKEN_2022_PROGRAM, None]
        classic = await client.get_token_accounts_by_owner_json_parsed(
            demo, TokenAccountOpts(program_id=TOKEN_PROGRAM)
        )
        by_mint: dict[str, int] = {}
        for keyed in classic.value:
            info: Any = keyed.account.data.parsed["info"]
            by_mint[info["mint"]] = by_mint.get(info["mint"], 0) + int(
                info["tokenAmount"]["amount"]
            )
        assert set(by_mint) == set(REAL_MINTS)
        assert len(classic.value) == len(REAL_MINTS) + 1  # two USDC accounts
        assert by_mint[str(USDC)] == 500 * 10**6
        assert by_mint[str(NATIVE_MINT)] == 5 * SOL
        t22 = await client.get_token_accounts_by_owner(
            demo, TokenAccountOpts(program_id=TOKEN_2022_PROGRAM, encoding="base64")
        )
        assert len(t22.value) == 1 and t22.value[0].account.owner == TOKEN_2022_PROGRAM
        ata = get_associated_token_address(demo, PYUSD_MINT, TOKEN_2022_PROGRAM)
        assert (await client.get_token_account_balance(ata)).value.ui_amount_string == "100"


# -- transactions ------------------------------------------------------------------------------
async def test_sol_transfer_lands_with_its_history(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        bob = Keypair()
        tx = sol_transfer(alice, bob.pubkey(), SOL, await blockhash(client))
        sig = (await client.send_transaction(tx)).value
        await confirm(client, sig)
        assert (await client.get_balance(bob.pubkey())).value == SOL
        assert (await client.get_balance(alice.pubkey())).value == 9 * SOL - 5000
        status = (await client.get_signature_statuses([sig])).value[0]
        assert status is not None and status.err is None
        got = (await client.get_transaction(sig)).value
        assert got is not None and got.transaction.meta is not None
        meta = got.transaction.meta
        assert meta.fee == 5000 and meta.err is None
        assert meta.pre_balances[:2] == [10 * SOL, 0]
        assert meta.post_balances[:2] == [9 * SOL - 5000, SOL]


async def test_token_and_token2022_transfers_from_the_maker(solana_node: NodeProcess) -> None:
    maker = maker_keypair()
    async with AsyncClient(solana_node.url) as client:
        bob = await funded(client)
        for mint, program, decimals in (
            (USDC, TOKEN_PROGRAM, 6),
            (PYUSD_MINT, TOKEN_2022_PROGRAM, 6),
        ):
            src = get_associated_token_address(maker.pubkey(), mint, program)
            dst = get_associated_token_address(bob.pubkey(), mint, program)
            ixs = [
                create_idempotent_associated_token_account(
                    bob.pubkey(), bob.pubkey(), mint, program
                ),
                transfer_checked(
                    TransferCheckedParams(
                        program_id=program,
                        source=src,
                        mint=mint,
                        dest=dst,
                        owner=maker.pubkey(),
                        amount=1_234_567,
                        decimals=decimals,
                    )
                ),
            ]
            tx = signed(bob, ixs, await blockhash(client), maker)
            sig = (
                await client.send_transaction(
                    tx, TxOpts(skip_confirmation=False, preflight_commitment=Confirmed)
                )
            ).value
            assert (await client.get_token_account_balance(dst)).value.amount == "1234567"
            got = (await client.get_transaction(sig)).value
            assert got is not None and got.transaction.meta is not None
            meta = got.transaction.meta
            assert meta.post_token_balances is not None
            post = {
                b.mint: b.ui_token_amount.amount
                for b in meta.post_token_balances
                if b.owner == bob.pubkey()
            }
            assert post == {mint: "1234567"}


async def test_blockhash_expires_after_150_slots(solana_fast_node: NodeProcess) -> None:
    async with AsyncClient(solana_fast_node.url) as client:
        alice = await funded(client)
        latest = (await client.get_latest_blockhash()).value
        old = sol_transfer(alice, Keypair().pubkey(), SOL, latest.blockhash)
        # Still valid after many newer blockhashes were issued: a window, not just the newest.
        await asyncio.sleep(0.25)  # ~50 slots at 5 ms
        assert (await client.get_latest_blockhash()).value.blockhash != latest.blockhash
        assert is_valid(solana_fast_node.url, latest.blockhash)
        sig = (await client.send_transaction(old)).value
        await confirm(client, sig)
        # Past lastValidBlockHeight it is refused, as a validator refuses it.
        stale = sol_transfer(alice, Keypair().pubkey(), 2 * SOL, latest.blockhash)
        while (await client.get_block_height()).value <= latest.last_valid_block_height:
            await asyncio.sleep(0.05)
        assert not is_valid(solana_fast_node.url, latest.blockhash)
        with pytest.raises(RPCException) as err:
            await client.send_transaction(stale)
        assert "Blockhash not found" in preflight_error(err.value).message
        assert (
            str(preflight_error(err.value).data.err)
            == "TransactionErrorFieldless.BlockhashNotFound"
        )
        # Without preflight it is accepted by the RPC but never lands.
        sig = (await client.send_transaction(stale, TxOpts(skip_preflight=True))).value
        assert (await client.get_signature_statuses([sig])).value == [None]
        fresh = (await client.get_latest_blockhash()).value.blockhash
        stale_msg = MessageV0.try_compile(alice.pubkey(), [], [], latest.blockhash)
        assert (await client.get_fee_for_message(stale_msg)).value is None
        fresh_msg = MessageV0.try_compile(alice.pubkey(), [], [], fresh)
        assert (await client.get_fee_for_message(fresh_msg)).value == 5000


async def test_replay_is_rejected(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        bob = Keypair().pubkey()
        tx = sol_transfer(alice, bob, SOL, await blockhash(client))
        await confirm(client, (await client.send_transaction(tx)).value)
        with pytest.raises(RPCException) as err:
            await client.send_transaction(tx)
        assert "already been processed" in preflight_error(err.value).message
        await client.send_transaction(tx, TxOpts(skip_preflight=True))
        assert (await client.get_balance(bob)).value == SOL  # paid once


async def test_simulate_reports_post_state_and_changes_nothing(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        bob = Keypair().pubkey()
        tx = sol_transfer(alice, bob, 3 * SOL, await blockhash(client))
        sim = (
            await client.simulate_transaction(tx, accounts_addresses=[alice.pubkey(), bob])
        ).value
        assert sim.err is None and sim.units_consumed and sim.logs
        assert sim.accounts is not None
        assert [a.lamports if a else None for a in sim.accounts] == [7 * SOL - 5000, 3 * SOL]
        assert (await client.get_balance(bob)).value == 0
        # sigVerify catches a forged signature; without it the same transaction simulates.
        forged = VersionedTransaction.populate(tx.message, [Signature.default()])
        with pytest.raises(RPCException):
            await client.simulate_transaction(forged, sig_verify=True)
        assert (await client.simulate_transaction(forged)).value.err is None
        # An unknown blockhash fails, unless the node replaces it.
        unknown = sol_transfer(alice, bob, SOL, Hash.new_unique())
        assert "BlockhashNotFound" in str((await client.simulate_transaction(unknown)).value.err)
        replaced = (await client.simulate_transaction(unknown, replace_recent_blockhash=True)).value
        assert replaced.err is None and replaced.replacement_blockhash is not None


async def test_preflight_failure_has_the_validator_shape(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client, SOL)
        tx = sol_transfer(alice, Keypair().pubkey(), 5 * SOL, await blockhash(client))
        with pytest.raises(RPCException):
            await client.send_transaction(tx)
    raw = base64.b64encode(bytes(tx)).decode()
    answer = call(solana_node.url, "sendTransaction", raw, {"encoding": "base64"})
    error = answer["error"]
    assert error["code"] == -32002
    assert error["message"] == (
        "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1"
    )
    assert error["data"]["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert any("insufficient lamports" in line for line in error["data"]["logs"])


async def test_priority_fee_matches_what_is_charged(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        ixs = [
            set_compute_unit_price(50_000),
            transfer(
                TransferParams(
                    from_pubkey=alice.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL
                )
            ),
        ]
        bh = await blockhash(client)
        msg = MessageV0.try_compile(alice.pubkey(), ixs, [], bh)
        quoted = (await client.get_fee_for_message(msg)).value
        assert quoted == fee_for_message(msg) > 5000
        tx = VersionedTransaction(msg, [alice])
        sig = (await client.send_transaction(tx)).value
        await confirm(client, sig)
        # A v0 transaction needs maxSupportedTransactionVersion, as on a validator.
        with pytest.raises(RPCException):
            await client.get_transaction(sig)
        got = (await client.get_transaction(sig, max_supported_transaction_version=0)).value
        assert got is not None and got.transaction.meta is not None
        assert got.transaction.meta.fee == quoted
        assert got.transaction.version == 0


# -- JSON-RPC robustness -----------------------------------------------------------------------
def test_batches_and_bad_requests(solana_node: NodeProcess) -> None:
    url = solana_node.url
    demo = str(demo_keypair().pubkey())
    batch = rpc(
        url,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": [demo]},
            {
                "jsonrpc": "2.0",
                "id": "two",
                "method": "getSlot",
                "params": [{"commitment": "confirmed"}],
            },
            {"jsonrpc": "2.0", "id": 3, "method": "noSuchMethod"},
            {"jsonrpc": "2.0", "id": 4, "method": "getBalance", "params": ["not-base58!"]},
            {"jsonrpc": "2.0", "method": "getSlot"},  # a notification: no answer
            17,
        ],
    )
    assert [b["id"] for b in batch] == [1, "two", 3, 4, None]
    assert batch[0]["result"]["value"] == 95 * SOL
    assert isinstance(batch[1]["result"], int)
    assert batch[2]["error"] == {"code": -32601, "message": "Method not found"}
    assert batch[3]["error"]["code"] == -32602
    assert batch[4]["error"]["code"] == -32600
    parse = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert parse.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }
    assert rpc(url, [])["error"]["code"] == -32600
    assert rpc(url, {"id": 9, "method": "getSlot"})["error"]["code"] == -32600  # no jsonrpc
    assert call(url, "getSlot", {"commitment": "bogus"})["error"]["code"] == -32602
    assert call(url, "getSlot", {"minContextSlot": 10**12})["error"]["code"] == -32016
    assert call(url, "getMultipleAccounts", [demo] * 101)["error"]["code"] == -32602
    assert call(
        url,
        "getAccountInfo",
        demo,
        {"encoding": "base64", "dataSlice": None, "minContextSlot": None},
    )["result"]["value"]
    assert call(url, "sendTransaction", "AAAA", {"encoding": "base64"})["error"]["code"] == -32602
    assert call(url, "getHealth") == {"jsonrpc": "2.0", "result": "ok", "id": 1}


def test_snapshot_capture_round_trip(solana_node: NodeProcess, tmp_path: Path) -> None:
    keys = [*REAL_MINTS, str(PYUSD_MINT), str(Keypair().pubkey())]
    snap = capture_snapshot(solana_node.url, keys)
    fixture = json.loads(DEMO_PATH.read_text())["accounts"]
    for key in [*REAL_MINTS, str(PYUSD_MINT)]:
        assert snap["accounts"][key] == fixture[key]
    assert snap["meta"]["missing"] == [keys[-1]]
    out = tmp_path / "captured.json"
    assert snapshot_main(["--rpc", solana_node.url, "--out", str(out), *keys[:3]]) == 0
    assert len(load_snapshot(out)["accounts"]) == 3
    assert snapshot_main(["--rpc", "http://127.0.0.1:9", "--out", str(out), keys[0]]) == 4


def test_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "rebalancer.localnet.solana_node", "--port", "0"]
    node = start_listening("solana-term", argv, tmp_path / "node.log", timeout=20.0)
    try:
        assert node.popen is not None
        node.popen.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert node.popen.wait(timeout=5) == 0
        assert time.monotonic() - started < 2
    except subprocess.TimeoutExpired:
        pytest.fail(f"node ignored SIGTERM; log:\n{node.log_tail()}")
    finally:
        stop_pid(node.pid)
