"""History methods of the local Solana node, through the unmodified solana-py AsyncClient:
getTransaction in ``jsonParsed`` (System, SPL Token, Associated Token Account and Memo forms,
the ones solana-py's own suite reads), getSignaturesForAddress, getBlock, getBlockTime,
getBlocks, getFirstAvailableBlock, getTransactionCount."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import ParsedInstruction, UiPartiallyDecodedInstruction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from rebalancer.chains.anvil import NodeProcess
from rebalancer.localnet.solana_accounts import SYSTEM_PROGRAM, TOKEN_PROGRAM, b58encode
from rebalancer.localnet.solana_fixtures import maker_keypair

SOL = 10**9
USDC = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
MEMO = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
LANDED = TxOpts(skip_confirmation=False, preflight_commitment=Confirmed)


def call(url: str, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    return httpx.post(url, json=body, timeout=10).json()


async def funded(client: AsyncClient) -> Keypair:
    kp = Keypair()
    sig = (await client.request_airdrop(kp.pubkey(), 10 * SOL)).value
    await client.confirm_transaction(sig, Confirmed, sleep_seconds=0.02)
    return kp


def memo(signer: Pubkey, text: str) -> Instruction:
    return Instruction(MEMO, text.encode(), [AccountMeta(signer, True, False)])


async def send(
    client: AsyncClient, payer: Keypair, ixs: list[Instruction], *others: Keypair, v0: bool = False
) -> Signature:
    bh = (await client.get_latest_blockhash()).value.blockhash
    msg = (
        MessageV0.try_compile(payer.pubkey(), ixs, [], bh)
        if v0
        else Message.new_with_blockhash(ixs, payer.pubkey(), bh)
    )
    return (
        await client.send_transaction(VersionedTransaction(msg, [payer, *others]), LANDED)
    ).value


async def test_sol_transfer_and_memo_parsed(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice, bob = await funded(client), Keypair().pubkey()
        ixs = [
            transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL)),
            memo(alice.pubkey(), "test"),
        ]
        sig = await send(client, alice, ixs)
        got = (await client.get_transaction(sig, "jsonParsed", Finalized)).value
        assert got is not None and got.transaction.meta is not None
        message = got.transaction.transaction.message
        sys_ix, memo_ix = message.instructions
        assert isinstance(sys_ix, ParsedInstruction) and sys_ix.program == "system"
        assert sys_ix.program_id == SYSTEM_PROGRAM
        assert sys_ix.parsed == {
            "info": {"source": str(alice.pubkey()), "destination": str(bob), "lamports": SOL},
            "type": "transfer",
        }
        assert isinstance(memo_ix, ParsedInstruction) and memo_ix.parsed == "test"
        assert memo_ix.program_id == MEMO
        keys = {k.pubkey: k for k in message.account_keys}
        assert keys[alice.pubkey()].signer and keys[alice.pubkey()].writable
        assert not keys[bob].signer and keys[bob].writable
        assert not keys[SYSTEM_PROGRAM].writable
        assert got.transaction.meta.fee == 5000
        logs = got.transaction.meta.log_messages or []
        assert "Program log: Memo (len 4)" in logs


async def test_token_transfer_and_ata_parsed_in_a_v0_transaction(solana_node: NodeProcess) -> None:
    maker = maker_keypair()
    async with AsyncClient(solana_node.url) as client:
        bob = await funded(client)
        src = get_associated_token_address(maker.pubkey(), USDC, TOKEN_PROGRAM)
        dst = get_associated_token_address(bob.pubkey(), USDC, TOKEN_PROGRAM)
        ixs = [
            create_idempotent_associated_token_account(
                bob.pubkey(), bob.pubkey(), USDC, TOKEN_PROGRAM
            ),
            transfer_checked(
                TransferCheckedParams(
                    program_id=TOKEN_PROGRAM,
                    source=src,
                    mint=USDC,
                    dest=dst,
                    owner=maker.pubkey(),
                    amount=2_500_000,
                    decimals=6,
                )
            ),
        ]
        sig = await send(client, bob, ixs, maker, v0=True)
        # A v0 transaction needs maxSupportedTransactionVersion, in every encoding.
        with pytest.raises(RPCException):
            await client.get_transaction(sig, "jsonParsed")
        got = (await client.get_transaction(sig, "jsonParsed", None, 0)).value
        assert got is not None and got.transaction.meta is not None
        ata_ix, token_ix = got.transaction.transaction.message.instructions
        assert isinstance(ata_ix, ParsedInstruction)
        assert ata_ix.program == "spl-associated-token-account"
        assert ata_ix.program_id == ATA_PROGRAM
        assert ata_ix.parsed["type"] == "createIdempotent"
        assert ata_ix.parsed["info"]["account"] == str(dst)
        assert ata_ix.parsed["info"]["wallet"] == str(bob.pubkey())
        assert isinstance(token_ix, ParsedInstruction) and token_ix.program == "spl-token"
        assert token_ix.parsed == {
            "info": {
                "source": str(src),
                "mint": str(USDC),
                "destination": str(dst),
                "authority": str(maker.pubkey()),
                "tokenAmount": {
                    "amount": "2500000",
                    "decimals": 6,
                    "uiAmount": 2.5,
                    "uiAmountString": "2.5",
                },
            },
            "type": "transferChecked",
        }
        # The ATA program's inner instructions are parsed too (system and token calls).
        inner = got.transaction.meta.inner_instructions
        assert inner is not None and inner[0].index == 0
        kinds = {
            ix.parsed["type"] for ix in inner[0].instructions if isinstance(ix, ParsedInstruction)
        }
        assert kinds == {
            "getAccountDataSize",
            "createAccount",
            "initializeImmutableOwner",
            "initializeAccount3",
        }


async def test_unknown_programs_are_partially_decoded(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        budget = Instruction(
            Pubkey.from_string("ComputeBudget111111111111111111111111111111"),
            bytes([3]) + (1).to_bytes(8, "little"),
            [],
        )
        sig = await send(client, alice, [budget, memo(alice.pubkey(), "x")])
        got = (await client.get_transaction(sig, "jsonParsed")).value
        assert got is not None
        first = got.transaction.transaction.message.instructions[0]
        assert isinstance(first, UiPartiallyDecodedInstruction)
        assert first.data == b58encode(bytes([3]) + (1).to_bytes(8, "little"))
        assert first.accounts == []


async def test_signatures_for_address_are_the_wallet_history(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        sigs = []
        for i in range(3):
            dst = Keypair().pubkey()
            ix = transfer(
                TransferParams(from_pubkey=alice.pubkey(), to_pubkey=dst, lamports=SOL // 100 + i)
            )
            sigs.append(await send(client, alice, [ix, memo(alice.pubkey(), f"pay {i}")]))
        history = (await client.get_signatures_for_address(alice.pubkey())).value
        # Newest first: three payments, then the airdrop that funded the wallet.
        assert [h.signature for h in history[:3]] == sigs[::-1]
        assert len(history) == 4 and history[3].memo is not None
        assert history[0].memo == "[5] pay 2"
        assert all(h.err is None and h.block_time is not None for h in history)
        assert str(history[0].confirmation_status) == "TransactionConfirmationStatus.Finalized"
        page = await client.get_signatures_for_address(alice.pubkey(), before=sigs[2], limit=1)
        assert [h.signature for h in page.value] == [sigs[1]]
        until = await client.get_signatures_for_address(alice.pubkey(), until=sigs[0])
        assert [h.signature for h in until.value] == sigs[:0:-1]
        assert (await client.get_signatures_for_address(Keypair().pubkey())).value == []
        too_many = call(
            solana_node.url, "getSignaturesForAddress", str(alice.pubkey()), {"limit": 1001}
        )
        assert too_many["error"]["code"] == -32602


async def test_blocks_of_produced_slots(solana_node: NodeProcess) -> None:
    async with AsyncClient(solana_node.url) as client:
        alice = await funded(client)
        ix = transfer(
            TransferParams(from_pubkey=alice.pubkey(), to_pubkey=alice.pubkey(), lamports=1)
        )
        sig = await send(client, alice, [ix])
        tx = (await client.get_transaction(sig)).value
        assert tx is not None and tx.block_time is not None
        block = (await client.get_block(tx.slot, max_supported_transaction_version=0)).value
        assert sig in [t.transaction.signatures[0] for t in block.transactions]
        assert block.block_time == tx.block_time
        first = (await client.get_first_available_block()).value
        assert block.parent_slot == max(tx.slot - 1, first)  # the node's first block is its own
        assert (await client.get_block_time(tx.slot)).value == tx.block_time
        parent = (
            await client.get_block(block.parent_slot, max_supported_transaction_version=0)
        ).value
        assert block.previous_blockhash == parent.blockhash
        sigs_only = call(
            solana_node.url, "getBlock", tx.slot, {"transactionDetails": "signatures"}
        )["result"]
        assert str(sig) in sigs_only["signatures"] and "transactions" not in sigs_only
        parsed = (await client.get_block(tx.slot, "jsonParsed", 0)).value
        assert parsed.transactions
        now = (await client.get_slot()).value
        assert first <= tx.slot <= now
        blocks = (await client.get_blocks(tx.slot - 2, tx.slot)).value
        assert blocks == [s for s in range(tx.slot - 2, tx.slot + 1) if s >= first]
        assert (await client.get_transaction_count()).value >= 2
        # Slots the node has not produced: the validator's errors.
        future = call(solana_node.url, "getBlock", now + 10_000)
        assert future["error"]["code"] == -32004
        assert call(solana_node.url, "getBlockTime", first - 1)["error"]["code"] == -32009
        with pytest.raises(RPCException):
            await client.get_block_time(now + 10_000)
