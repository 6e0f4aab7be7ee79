"""Jupiter Swap API v2 ``/build``, the default Jupiter path, through the whole engine on the local
worlds: the tool compiles the v0 transaction from the stand-in's instructions (lookup tables
resolved from the node, unit limit from the simulation, priority fee from
``getRecentPrioritizationFees`` within the policy), checks, simulates, signs, and it lands.
A ``/build`` answer with an unexpected program or account is refused (exit 3, nothing signed)."""

from __future__ import annotations

import base64
import copy
import struct
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from rebalancer.dex.jupiter import Jupiter
from rebalancer.dex.jupiter_v2 import BuildResponse
from rebalancer.journal import Journal
from rebalancer.localnet.solana_fixtures import maker_keypair
from rebalancer.services import injected
from tests.conftest import rpc_call
from tests.dex.test_jupiter import fresh_wallet, fund, holding
from tests.rebalancer.test_execution import run_json
from tests.rebalancer.test_external import trade, write_plan
from tests.solana_config import write_solana_config

COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
WSOL = "So11111111111111111111111111111111111111112"
JUPITER_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"


def _config(tmp_path: Path, node: str, wallet: str, *, jupiter: str, extra: str = "") -> Path:
    return write_solana_config(tmp_path, node, wallet, jupiter=jupiter, name="v2", aggregator=extra)


def _landed(node: str, sig: str) -> VersionedTransaction:
    got = rpc_call(
        node,
        "getTransaction",
        sig,
        {"encoding": "base64", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
    )
    assert got is not None and got["meta"]["err"] is None
    return VersionedTransaction.from_bytes(base64.b64decode(got["transaction"][0]))


def _budget(tx: VersionedTransaction) -> tuple[int, int]:
    """(unit limit, unit price) of a landed transaction."""
    keys = tx.message.account_keys
    limit = price = -1
    for ix in tx.message.instructions:
        data = bytes(ix.data)
        if str(keys[ix.program_id_index]) != COMPUTE_BUDGET:
            continue
        if data[0] == 2:
            limit = struct.unpack_from("<I", data, 1)[0]
        if data[0] == 3:
            price = struct.unpack_from("<Q", data, 1)[0]
    return limit, price


@pytest.fixture
def env(evm_worlds: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")
    return str(evm_worlds["solana"]["url"]), str(evm_worlds["jupiter"]["url"])


@pytest.mark.parametrize(
    ("sell", "buy", "amount"),
    [("SOL", "USDC", Decimal(1)), ("USDC", "SOL", Decimal(50))],
)
def test_build_is_the_default_and_lands(
    env: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sell: str,
    buy: str,
    amount: Decimal,
) -> None:
    node, _ = env
    signer = fresh_wallet(f"v2 build {sell}")
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), 5 * 10**9, {"USDC": 100 * 10**6})
    plan = write_plan(tmp_path / "plan.json", [trade("v2", "solana", wallet, sell, buy, amount)])
    cfg = _config(tmp_path, node, wallet, jupiter="localnet:jupiter")
    before = holding(node, Pubkey.from_string(wallet), "USDC")
    with injected(signers={("solana", wallet.lower()): signer}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed" and int(t["realised_out"]) >= int(t["min_out"]) > 0
    if buy == "USDC":
        assert holding(node, Pubkey.from_string(wallet), "USDC") - before == int(t["realised_out"])
    landed = _landed(node, t["tx"])
    # the wallet alone signed a transaction the tool compiled: no co-signer, its own compute
    # budget with the limit from the simulation (well under the 1.4M placeholder)
    assert len(landed.signatures) == 1
    assert landed.message.account_keys[0] == Pubkey.from_string(wallet)
    limit, price = _budget(landed)
    assert 0 < limit < 100_000 and price >= 0
    assert landed.message.address_table_lookups  # accounts loaded through the maker's table


def test_v1_stays_selectable(
    env: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node, _ = env
    signer = fresh_wallet("v1 selectable")
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), 3 * 10**9, {})
    plan = write_plan(
        tmp_path / "plan.json", [trade("v1", "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    cfg = _config(tmp_path, node, wallet, jupiter="localnet:jupiter", extra='api = "v1"')
    with injected(signers={("solana", wallet.lower()): signer}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    assert t["status"] == "confirmed"
    assert len(_landed(node, t["tx"]).signatures) == 2  # v1: the maker co-signed its fill


def test_priority_fee_is_capped_by_the_policy(
    env: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node, _ = env
    signer = fresh_wallet("v2 build priority")
    wallet = signer.identity
    key = Pubkey.from_string(wallet)
    fund(node, key, 3 * 10**9, {})
    funded = int(rpc_call(node, "getSlot"))
    while int(rpc_call(node, "getSlot")) == funded:  # a slot of its own (the airdrop paid 0)
        time.sleep(0.05)
    # someone paid a very high price to write the wallet a moment ago
    blockhash = rpc_call(node, "getLatestBlockhash")["value"]["blockhash"]
    ixs = [
        set_compute_unit_limit(1_000),
        set_compute_unit_price(10**9),
        transfer(TransferParams(from_pubkey=key, to_pubkey=key, lamports=1)),
    ]
    msg = MessageV0.try_compile(key, ixs, [], Hash.from_string(blockhash))
    tx = VersionedTransaction(msg, [Keypair.from_bytes(signer.keypair_bytes())])
    rpc_call(node, "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"})
    fees = rpc_call(node, "getRecentPrioritizationFees", [wallet])
    assert max(f["prioritizationFee"] for f in fees) == 10**9
    plan = write_plan(
        tmp_path / "plan.json", [trade("fee", "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    cfg = _config(tmp_path, node, wallet, jupiter="localnet:jupiter")
    # NOTE: a cap under any going rate on the shared node (other tests land at 10,000 per CU)
    cfg.write_text(cfg.read_text() + "max_priority_fee_lamports = 100\n")
    with injected(signers={("solana", wallet.lower()): signer}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 0, out
    (t,) = out["trades"]
    limit, price = _budget(_landed(node, t["tx"]))
    assert 0 < price < 10**9  # the going rate, lowered to the cap
    assert price * limit <= 100 * 10**6 < (price + 1) * limit


def _tamper(edit: Callable[[dict[str, Any]], None]) -> httpx.AsyncClient:
    """A client whose ``/build`` answers come from the stand-in, edited by ``edit`` (made
    outside the command's event loop, so each request uses a client of its own)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        async with httpx.AsyncClient(timeout=30) as real:
            r = await real.request(
                request.method, url, headers=dict(request.headers), content=request.content
            )
        if "/build" not in url or r.status_code != 200:
            return httpx.Response(r.status_code, content=r.content)
        body = r.json()
        edit(body)
        return httpx.Response(200, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=30)


def _foreign_program(body: dict[str, Any]) -> None:
    body["swapInstruction"]["programId"] = str(Pubkey.new_unique())


def _other_destination(body: dict[str, Any]) -> None:
    body["swapInstruction"]["accounts"][2]["pubkey"] = str(Pubkey.new_unique())


def _jupiter_route(body: dict[str, Any]) -> None:
    swap = copy.deepcopy(body["swapInstruction"])
    swap["programId"] = JUPITER_V6
    swap["data"] = base64.b64encode(b"\x01" * 40).decode()
    body["otherInstructions"] = [swap]


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (_foreign_program, "is not on the allow-list"),
        (_other_destination, "not the fill to the wallet"),
        (_jupiter_route, "not an ExactIn route"),
    ],
)
def test_a_tampered_build_answer_is_refused_and_nothing_signed(
    env: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[dict[str, Any]], None],
    why: str,
) -> None:
    node, jupiter = env
    signer = fresh_wallet("v2 build tampered")
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), 3 * 10**9, {})
    before = holding(node, Pubkey.from_string(wallet), "SOL")
    plan = write_plan(
        tmp_path / "plan.json", [trade("bad", "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    cfg = _config(tmp_path, node, wallet, jupiter="localnet:jupiter")
    agg = Jupiter(_tamper(edit), base_url=jupiter, api_key="local", api="v2")
    with injected(signers={("solana", wallet.lower()): signer}, aggregators={"jupiter": agg}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 3, out
    (t,) = out["trades"]
    assert t["status"] == "refused" and why in t["reason"]
    assert holding(node, Pubkey.from_string(wallet), "SOL") == before
    _nothing_signed(tmp_path / "journal.sqlite")


def _nothing_signed(path: Path) -> None:
    j = Journal(path)
    try:
        rows = j.trades()
        assert rows and all(r.raw_tx is None and r.tx_hash is None for r in rows)
    finally:
        j.close()


def test_delegated_fills_are_refused_where_the_config_is_not_localnet(
    env: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same honest local answer, with Jupiter configured by URL instead of ``localnet:``:
    a transfer out of the maker's account is not a fill the checks know (exit 3)."""
    node, jupiter = env
    signer = fresh_wallet("v2 build not local")
    wallet = signer.identity
    fund(node, Pubkey.from_string(wallet), 3 * 10**9, {})
    plan = write_plan(
        tmp_path / "plan.json", [trade("url", "solana", wallet, "SOL", "USDC", Decimal(1))]
    )
    cfg = _config(tmp_path, node, wallet, jupiter=jupiter)
    with injected(signers={("solana", wallet.lower()): signer}):
        code, out = run_json(capsys, "apply", str(plan), "-c", str(cfg), "--yes")
    assert code == 3, out
    assert (
        "moves tokens out of" in out["trades"][0]["reason"]
        or "sends tokens from" in (out["trades"][0]["reason"])
    )
    _nothing_signed(tmp_path / "journal.sqlite")


async def test_stand_in_build_answers_instructions_the_taker_alone_signs(
    env: tuple[str, str],
) -> None:
    """``GET /swap/v2/build`` has Jupiter's shape, every instruction is signed by the taker
    alone, and the maker has approved the taker for exactly ``outAmount`` on its own output
    account (SPL Token account: delegate at 72, delegated amount at 121)."""
    node, base = env
    taker = fresh_wallet("v2 build shape").identity
    params = {"inputMint": WSOL, "outputMint": USDC, "amount": str(10**8), "taker": taker}
    headers = {"x-api-key": "local"}
    async with httpx.AsyncClient(timeout=30) as client:
        no_taker = await client.get(
            f"{base}/build",
            params={k: v for k, v in params.items() if k != "taker"},
            headers=headers,
        )
        assert no_taker.status_code == 400
        r = await client.get(f"{base}/build", params=params, headers=headers)
    assert r.status_code == 200, r.text
    b = BuildResponse.model_validate(r.json())
    assert b.inAmount == 10**8 and b.swapMode == "ExactIn" and b.outAmount > 0
    assert b.blockhashWithMetadata is not None and b.addressesByLookupTableAddress
    assert [i.programId for i in b.computeBudgetInstructions] == [COMPUTE_BUDGET]
    for ix in b.instructions():
        assert {a.pubkey for a in ix.accounts if a.isSigner} <= {taker}
    swap = b.swapInstruction
    assert swap.programId == TOKEN_PROGRAM and swap.data[0] == 12  # TransferChecked
    source = swap.accounts[0].pubkey
    acc = rpc_call(node, "getAccountInfo", source, {"encoding": "base64"})["value"]
    data = base64.b64decode(acc["data"][0])
    assert Pubkey.from_bytes(data[32:64]) == maker_keypair().pubkey()  # the maker's own
    assert data[72:76] == b"\x01\x00\x00\x00" and str(Pubkey.from_bytes(data[76:108])) == taker
    assert struct.unpack_from("<Q", data, 121)[0] == b.outAmount
