"""Jupiter adapter: parsers on recorded real-shaped answers, transport faults, hostile
transactions refused by ``check_jupiter_swap``, and end-to-end quote -> build -> check -> sign
-> send on the local Solana node through the local stand-in (RFQ fills by the local maker).

End-to-end tests trade from fresh wallets (airdropped SOL, tokens minted by the public mint
authority) so the demo wallet's balances, which other tests read, never change.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.message import MessageAddressTableLookup, MessageV0
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from rebalancer.chains.registry import Registry
from rebalancer.chains.solana import SolanaChain
from rebalancer.core.errors import (
    AggregatorError,
    ChainError,
    SimulationError,
    SuspiciousResponseError,
)
from rebalancer.core.types import Token
from rebalancer.dex.base import BuiltSwap, NoRouteError, SolanaTx, SwapPolicy, SwapRequest
from rebalancer.dex.jupiter import Jupiter, JupiterQuote, QuoteResponse, SwapResponse
from rebalancer.dex.jupiter_checks import check_jupiter_swap
from rebalancer.localnet.jupiter_server import create_ata_idempotent, sol_transfer, transfer_checked
from rebalancer.localnet.solana_accounts import TOKEN_PROGRAM
from rebalancer.localnet.solana_fixtures import maker_keypair, mint_authority_keypair
from rebalancer.wallet.base import sign_versioned_transaction
from rebalancer.wallet.local import LocalSolanaSigner
from tests.conftest import rpc_call

REG = Registry.load()
FIX = Path(__file__).parents[2] / "fixtures" / "aggregators" / "jupiter"
MAKER = maker_keypair()
POLICY = SwapPolicy(rfq_makers=frozenset({str(MAKER.pubkey())}))
BASE = "https://api.jup.example/swap/v1"
DEMO = "6mEAPbHcy66wK4T2iyhJnZhaZuY4mjqa3P8rBZSU18td"
SOL = 10**9


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def token(symbol: str) -> Token:
    t = REG.native("solana") if symbol == "SOL" else REG.by_symbol("solana", symbol)
    assert t is not None
    return t


def request(
    sell: str, buy: str, amount: int, wallet: str = DEMO, slippage_bps: int = 50
) -> SwapRequest:
    return SwapRequest("solana", None, wallet, token(sell), token(buy), amount, slippage_bps)


def mock(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# -- parsers and transport ----------------------------------------------------------------------
def test_recorded_answers_parse() -> None:
    q = QuoteResponse.model_validate(recorded("quote_observed.json")["body"])
    assert (q.outAmount, q.otherAmountThreshold, q.slippageBps) == (10392472, 10288548, 100)
    assert q.routePlan[0].swapInfo.feeAmount == 115588 and q.routePlan[0].bps == 10_000
    split = QuoteResponse.model_validate(recorded("quote_split.json")["body"])
    assert [s.swapInfo.label for s in split.routePlan] == ["HumidiFi", "Meteora DLMM"]
    assert split.routePlan[1].percent is None and split.routePlan[1].swapInfo.feeMint is None
    s = SwapResponse.model_validate(recorded("swap.json")["body"])
    tx = VersionedTransaction.from_bytes(base64.b64decode(s.swapTransaction))
    assert str(tx.message.account_keys[0]) == DEMO and s.computeUnitLimit == 60_000


async def test_quote_and_build_against_recorded_answers() -> None:
    organic = dataclasses.replace(
        token("USDC"), symbol="ORGANIC", address="DeySaoLoSppcriZAtjUzWjFrUgK3jZhbsK4ifipw9777"
    )
    req = dataclasses.replace(
        request("USDC", "SOL", 10_000_000_000_000, slippage_bps=100), sell=organic
    )
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        name = {"/swap/v1/quote": "quote_observed.json", "/swap/v1/swap": "swap.json"}
        a = recorded(name[r.url.path])
        return httpx.Response(a["status"], json=a["body"])

    async with mock(handler) as client:
        api = Jupiter(client, base_url=BASE, api_key="SECRET-KEY", max_priority_lamports=12345)
        q = await api.quote(req)
        assert isinstance(q, JupiterQuote)
        assert (q.expected_out, q.other_amount_threshold, q.route) == (
            10392472,
            10288548,
            ("Heaven",),
        )
        built = await api.build(q)
    assert isinstance(built.tx, SolanaTx) and built.tx.last_valid_block_height == 364519823
    assert built.expected_out == 10392472
    params = dict(seen[0].url.params)
    assert params["swapMode"] == "ExactIn" and params["slippageBps"] == "100"
    assert params["outputMint"] == "So11111111111111111111111111111111111111112"
    body = json.loads(seen[1].content)
    assert body["quoteResponse"] == recorded("quote_observed.json")["body"]  # unchanged
    assert body["wrapAndUnwrapSol"] is True and body["dynamicComputeUnitLimit"] is True
    assert body["prioritizationFeeLamports"] == {
        "priorityLevelWithMaxLamports": {"priorityLevel": "medium", "maxLamports": 12345}
    }
    assert all(r.headers["x-api-key"] == "SECRET-KEY" for r in seen)
    assert "SECRET-KEY" not in repr(api)


def _answer(status: int, content: bytes, ctype: str = "application/json") -> Any:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": ctype})

    return handler


def _body(name: str) -> bytes:
    return json.dumps(recorded(name)["body"]).encode()


@pytest.mark.parametrize(
    ("status", "content", "ctype", "error", "message"),
    [
        (400, _body("error_no_route.json"), "application/json", NoRouteError, "Could not find"),
        (400, _body("error_not_tradable.json"), "application/json", NoRouteError, "TRADABLE"),
        (400, _body("error_no_routes_found.json"), "application/json", NoRouteError, "NO_ROUTES"),
        (
            400,
            b'{"error":"amount: invalid","errorCode":"X"}',
            "application/json",
            AggregatorError,
            "HTTP 400: amount: invalid \\(X\\)",
        ),
        (502, b"<html><body>Bad gateway</body></html>", "text/html", AggregatorError, "HTTP 502"),
        (400, b"<html><body>Bad request</body></html>", "text/html", AggregatorError, "non-JSON"),
        (200, b"{not json", "application/json", AggregatorError, "non-JSON"),
        (200, b'{"inputMint": "x"}', "application/json", AggregatorError, "Field required"),
        (401, b'{"error":"Unauthorized"}', "application/json", AggregatorError, "JUPITER_API_KEY"),
    ],
)
async def test_bad_answers_are_clear_errors(
    status: int, content: bytes, ctype: str, error: type[Exception], message: str
) -> None:
    async with mock(_answer(status, content, ctype)) as client:
        api = Jupiter(client, base_url=BASE, api_key="K", retries=1, backoff=0.001)
        with pytest.raises(error, match=message):
            await api.quote(request("SOL", "USDC", SOL))


async def test_amounts_must_be_strings_and_match_the_request() -> None:
    body = recorded("quote_observed.json")["body"]
    async with mock(_answer(200, json.dumps({**body, "outAmount": 5}).encode())) as client:
        with pytest.raises(AggregatorError, match=r"outAmount: .*decimal string"):
            await Jupiter(client, base_url=BASE).quote(request("SOL", "USDC", SOL))
    async with mock(_answer(200, json.dumps(body).encode())) as client:
        with pytest.raises(SuspiciousResponseError, match="not 1000000000"):
            await Jupiter(client, base_url=BASE).quote(request("SOL", "USDC", SOL))


async def test_429_storm_gives_up_and_429_then_ok_retries() -> None:
    storm = recorded("error_rate_limited.json")

    def always_429(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "0"}, json=storm["body"])

    async with mock(always_429) as client:
        api = Jupiter(client, base_url=BASE, retries=3, backoff=0.001)
        with pytest.raises(AggregatorError, match="failed after 4 tries: HTTP 429"):
            await api.quote(request("SOL", "USDC", SOL))

    codes = iter([429, 503, 200])
    quote = recorded("quote_observed.json")["body"]
    quote = {**quote, "inputMint": "So11111111111111111111111111111111111111112"}
    quote |= {"outputMint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "inAmount": str(SOL)}

    def flaky(req: httpx.Request) -> httpx.Response:
        code = next(codes)
        return httpx.Response(code, json=quote if code == 200 else {"error": "busy"})

    async with mock(flaky) as client:
        q = await Jupiter(client, base_url=BASE, backoff=0.001).quote(request("SOL", "USDC", SOL))
        assert q.expected_out == 10392472


async def test_bad_swap_answers() -> None:
    q = JupiterQuote(
        request=request("SOL", "USDC", SOL),
        expected_out=1,
        response={},
        other_amount_threshold=1,
        wrap_sol=True,
    )
    good = recorded("swap.json")["body"]
    cases = [
        ({**good, "swapTransaction": "bm90IGEgdHg="}, AggregatorError, "not a base64 versioned"),
        ({**good, "lastValidBlockHeight": "soon"}, AggregatorError, "lastValidBlockHeight"),
        (
            {**good, "simulationError": {"errorCode": "X", "error": "insufficient funds"}},
            SimulationError,
            "insufficient funds",
        ),
    ]
    for body, error, message in cases:
        async with mock(_answer(200, json.dumps(body).encode())) as client:
            with pytest.raises(error, match=message):
                await Jupiter(client, base_url=BASE).build(q)


async def test_same_mint_is_no_route() -> None:
    async with mock(_answer(500, b"")) as client:
        with pytest.raises(NoRouteError, match="same mint"):
            await Jupiter(client, base_url=BASE).quote(request("SOL", "wSOL", SOL))


# -- the local node and stand-in ----------------------------------------------------------------
@pytest.fixture(scope="module")
def urls(evm_worlds: dict[str, Any]) -> tuple[str, str]:
    # NOTE: the manifest names the stand-in's v2 base; these tests speak v1 to it
    v1 = str(evm_worlds["jupiter"]["url"]).removesuffix("/swap/v2") + "/swap/v1"
    return str(evm_worlds["solana"]["url"]), v1


def fresh_wallet(name: str) -> LocalSolanaSigner:
    """A test wallet of its own (public seed), so shared balances are never touched."""
    return LocalSolanaSigner.from_seed(
        hashlib.sha256(b"jupiter test wallet " + name.encode()).digest()
    )


def send(node: str, tx: VersionedTransaction) -> str:
    sig = rpc_call(
        node, "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}
    )
    status = rpc_call(node, "getSignatureStatuses", [sig])["value"][0]
    assert status is not None and status["err"] is None, status
    return str(sig)


def fund(node: str, wallet: Pubkey, lamports: int, tokens: dict[str, int]) -> None:
    """SOL from the node's faucet, tokens minted by the public mint authority."""
    rpc_call(node, "requestAirdrop", str(wallet), lamports)
    authority = mint_authority_keypair()
    ixs: list[Instruction] = []
    for symbol, amount in tokens.items():
        mint = Pubkey.from_string(str(token(symbol).address))
        ixs.append(create_ata_idempotent(authority.pubkey(), wallet, mint, TOKEN_PROGRAM))
        ata = get_associated_token_address(wallet, mint)
        ixs.append(
            Instruction(
                TOKEN_PROGRAM,
                bytes([7]) + struct.pack("<Q", amount),
                [
                    AccountMeta(mint, False, True),
                    AccountMeta(ata, False, True),
                    AccountMeta(authority.pubkey(), True, False),
                ],
            )
        )
    if ixs:
        blockhash = Hash.from_string(rpc_call(node, "getLatestBlockhash")["value"]["blockhash"])
        msg = MessageV0.try_compile(authority.pubkey(), ixs, [], blockhash)
        send(node, VersionedTransaction(msg, [authority]))


def holding(node: str, wallet: Pubkey, symbol: str) -> int:
    if symbol == "SOL":
        return int(rpc_call(node, "getBalance", str(wallet))["value"])
    ata = get_associated_token_address(wallet, Pubkey.from_string(str(token(symbol).address)))
    if rpc_call(node, "getAccountInfo", str(ata), {"encoding": "base64"})["value"] is None:
        return 0
    return int(rpc_call(node, "getTokenAccountBalance", str(ata))["value"]["amount"])


async def tables_of(node: str, built: BuiltSwap) -> dict[str, list[str]] | None:
    """The lookup tables a built swap uses, read from the node by the chain adapter."""
    assert isinstance(built.tx, SolanaTx)
    msg = VersionedTransaction.from_bytes(built.tx.raw).message
    keys = [str(lookup.account_key) for lookup in getattr(msg, "address_table_lookups", [])]
    if not keys:
        return None
    async with httpx.AsyncClient() as client:
        return await SolanaChain(REG.chains["solana"], node, client).lookup_tables(keys)


@pytest.mark.parametrize(
    ("sell", "buy", "amount"),
    [
        ("SOL", "USDC", 2 * SOL),
        ("USDC", "SOL", 500 * 10**6),
        ("JUP", "USDC", 1_000 * 10**6),
        ("cbBTC", "USDC", 1_000_000),
        ("USDC", "JUP", 250 * 10**6),  # the wallet has no JUP account yet: created in the tx
        ("BONK", "WETH", 10**6 * 10**5),  # two hops in the maker's book
    ],
)
async def test_swap_end_to_end(urls: tuple[str, str], sell: str, buy: str, amount: int) -> None:
    node, jupiter = urls
    signer = fresh_wallet(f"{sell}-{buy}")
    wallet = Pubkey.from_string(signer.identity)
    fund(
        node,
        wallet,
        10 * SOL + (amount if sell == "SOL" else 0),
        {} if sell == "SOL" else {sell: amount},
    )
    req = request(sell, buy, amount, wallet=signer.identity)
    async with httpx.AsyncClient() as client:
        api = Jupiter(client, base_url=jupiter, api_key="local")
        q = await api.quote(req)
        built = await api.build(q)
    checked = api.check(built, POLICY, await tables_of(node, built))
    assert isinstance(built.tx, SolanaTx)
    tx = await sign_versioned_transaction(signer, VersionedTransaction.from_bytes(built.tx.raw))
    sold_before, bought_before = holding(node, wallet, sell), holding(node, wallet, buy)
    sig = send(node, tx)
    fee = 0
    if "SOL" in (sell, buy):
        got = rpc_call(
            node, "getTransaction", sig, {"encoding": "json", "maxSupportedTransactionVersion": 0}
        )
        fee = int(got["meta"]["fee"])
    gained = holding(node, wallet, buy) - bought_before + (fee if buy == "SOL" else 0)
    spent = sold_before - holding(node, wallet, sell) - (fee if sell == "SOL" else 0)
    assert gained >= checked.min_out > 0
    assert checked.min_out >= q.expected_out * 995 // 1000
    if sell != "SOL":
        assert spent == amount
    else:
        assert amount <= spent <= amount + 3 * 10**6  # plus the new USDC account's rent


async def test_stand_in_speaks_jupiter_errors(urls: tuple[str, str]) -> None:
    _node, jupiter = urls
    async with httpx.AsyncClient() as client:
        with pytest.raises(AggregatorError, match="refused the API key"):
            await Jupiter(client, base_url=jupiter).quote(request("SOL", "USDC", SOL))
        api = Jupiter(client, base_url=jupiter, api_key="local", retries=0)
        unknown = dataclasses.replace(token("USDC"), address=str(Keypair().pubkey()))
        with pytest.raises(NoRouteError, match="TOKEN_NOT_TRADABLE"):
            await api.quote(dataclasses.replace(request("SOL", "USDC", SOL), buy=unknown))
        # more cbBTC than the maker holds on the node (100): it refuses the fill
        with pytest.raises(NoRouteError, match="COULD_NOT_FIND_ANY_ROUTE"):
            await api.quote(request("USDC", "cbBTC", 50_000_000 * 10**6))
        exact_out = await client.get(
            f"{jupiter}/quote",
            params={
                "inputMint": str(token("USDC").address),
                "outputMint": str(token("JUP").address),
                "amount": "1000",
                "swapMode": "ExactOut",
            },
            headers={"x-api-key": "local"},
        )
        assert exact_out.status_code == 400 and set(exact_out.json()) == {"error", "errorCode"}
        # a wallet without the SOL it sells: Jupiter's simulation fails, nothing is signed
        broke = str(Keypair().pubkey())
        q = await api.quote(request("SOL", "USDC", SOL, wallet=broke))
        with pytest.raises(SimulationError, match="simulation of the swap failed"):
            await api.build(q)


# -- hostile transactions -------------------------------------------------------------------
USDC_MINT = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
USER = Pubkey.from_string(DEMO)
ATTACKER = Keypair.from_seed(hashlib.sha256(b"jupiter test attacker").digest())


def cu_limit(units: int) -> Instruction:
    return Instruction(
        Pubkey.from_string("ComputeBudget111111111111111111111111111111"),
        bytes([2]) + struct.pack("<I", units),
        [],
    )


def cu_price(micro_lamports: int) -> Instruction:
    return Instruction(
        Pubkey.from_string("ComputeBudget111111111111111111111111111111"),
        bytes([3]) + struct.pack("<Q", micro_lamports),
        [],
    )


def rfq_ixs(
    *,
    user_pays: int = SOL,
    maker_pays: int = 180 * 10**6,
    to: Pubkey = USER,
    price: int = 10_000,
) -> list[Instruction]:
    maker = MAKER.pubkey()
    return [
        cu_limit(60_000),
        cu_price(price),
        create_ata_idempotent(USER, USER, USDC_MINT, TOKEN_PROGRAM),
        sol_transfer(USER, maker, user_pays),
        transfer_checked(
            TOKEN_PROGRAM,
            get_associated_token_address(maker, USDC_MINT),
            USDC_MINT,
            get_associated_token_address(to, USDC_MINT),
            maker,
            maker_pays,
            6,
        ),
    ]


def built_from(
    ixs: list[Instruction],
    signers: list[Any] | None = None,
    payer: Pubkey = USER,
    tables: list[AddressLookupTableAccount] | None = None,
    threshold: int = 180 * 10**6 * 9950 // 10_000,
) -> BuiltSwap:
    """A SOL -> USDC swap of 1 SOL quoted at 180 USDC, its transaction made of ``ixs``."""
    msg = MessageV0.try_compile(payer, ixs, tables or [], Hash.default())
    if signers is None:
        signers = [NullSigner(USER), MAKER]
    tx = VersionedTransaction(msg, signers)
    q = JupiterQuote(
        request=request("SOL", "USDC", SOL),
        expected_out=180 * 10**6,
        response={},
        other_amount_threshold=threshold,
        wrap_sol=True,
    )
    return BuiltSwap(quote=q, tx=SolanaTx(bytes(tx)), expected_out=180 * 10**6)


def test_a_plain_rfq_fill_passes() -> None:
    checked = check_jupiter_swap(built_from(rfq_ixs()), POLICY)
    assert checked.min_out == 179_100_000


def _half_signed() -> BuiltSwap:
    msg = MessageV0.try_compile(USER, rfq_ixs(), [], Hash.default())
    tx = VersionedTransaction(msg, [NullSigner(USER), NullSigner(MAKER.pubkey())])
    good = built_from(rfq_ixs())
    return dataclasses.replace(good, tx=SolanaTx(bytes(tx)))


def _alt() -> BuiltSwap:
    maker_usdc = get_associated_token_address(MAKER.pubkey(), USDC_MINT)
    table = AddressLookupTableAccount(ATTACKER.pubkey(), [maker_usdc, USDC_MINT])
    return built_from(rfq_ixs(), tables=[table])


def _unknown_program() -> BuiltSwap:
    drain = Instruction(ATTACKER.pubkey(), b"drain", [AccountMeta(USER, True, True)])
    return built_from([*rfq_ixs(), drain])


def _extra_signer() -> BuiltSwap:
    ixs = rfq_ixs()
    ixs.append(sol_transfer(ATTACKER.pubkey(), USER, 1))
    return built_from(ixs, [NullSigner(USER), MAKER, ATTACKER])


def _approve_attacker() -> BuiltSwap:
    approve = Instruction(
        TOKEN_PROGRAM,
        bytes([4]) + struct.pack("<Q", 2**64 - 1),
        [
            AccountMeta(get_associated_token_address(USER, USDC_MINT), False, True),
            AccountMeta(ATTACKER.pubkey(), False, False),
            AccountMeta(USER, True, False),
        ],
    )
    return built_from([*rfq_ixs(), approve])


def _delegate_pull() -> BuiltSwap:
    """The maker, once approved as a delegate, pulls more from the wallet's USDC account."""
    user_usdc = get_associated_token_address(USER, USDC_MINT)
    maker_usdc = get_associated_token_address(MAKER.pubkey(), USDC_MINT)
    pull = transfer_checked(TOKEN_PROGRAM, user_usdc, USDC_MINT, maker_usdc, MAKER.pubkey(), 5, 6)
    return built_from([*rfq_ixs(), pull])


HOSTILE = {
    "fee payer is not the wallet": (
        lambda: built_from(rfq_ixs(), [ATTACKER, NullSigner(USER), MAKER], payer=ATTACKER.pubkey()),
        "fee payer",
    ),
    "an extra unknown signer": (_extra_signer, "not a known RFQ maker"),
    "an unknown program": (_unknown_program, "not on the allow-list"),
    "compute price over the cap": (lambda: built_from(rfq_ixs(price=10**9)), "priority fee"),
    "compute limit over the cap": (
        lambda: built_from([cu_limit(2_000_000), *rfq_ixs()[1:]]),
        "compute unit limit",
    ),
    "the user pays more than amount_in": (
        lambda: built_from(rfq_ixs(user_pays=2 * SOL)),
        "sends 2000000000 of SOL",
    ),
    "output to someone else's account": (
        lambda: built_from(rfq_ixs(to=ATTACKER.pubkey())),
        "goes to",
    ),
    "less than min_out": (lambda: built_from(rfq_ixs(maker_pays=100 * 10**6)), "less than min_out"),
    "a half-signed maker slot": (_half_signed, "half-signed"),
    "address lookup tables": (_alt, "address lookup tables"),
    "a delegate approval": (_approve_attacker, "token instruction 4"),
    "a delegate pulling from the wallet": (_delegate_pull, "out of the wallet's account"),
    "a threshold below the slippage": (
        lambda: built_from(rfq_ixs(), threshold=1),
        "otherAmountThreshold 1 is below",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_transactions_are_refused(case: str) -> None:
    make, message = HOSTILE[case]
    with pytest.raises(SuspiciousResponseError, match=message) as err:
        check_jupiter_swap(make(), POLICY)
    assert err.value.exit_code == 3


def test_rfq_maker_must_be_known() -> None:
    with pytest.raises(SuspiciousResponseError, match="not a known RFQ maker"):
        check_jupiter_swap(built_from(rfq_ixs()), SwapPolicy())


def test_jupiter_route_arguments_are_checked() -> None:
    """A Jupiter v6 ``route`` instruction: amounts are read from its trailing arguments."""
    jup = Pubkey.from_string("JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4")
    wsol = get_associated_token_address(USER, Pubkey.from_string(str(token("wSOL").address)))
    usdc = get_associated_token_address(USER, USDC_MINT)

    def route(in_amount: int, out: int, dest: Pubkey = usdc) -> Instruction:
        data = bytes([229, 23, 203, 151, 122, 227, 173, 42]) + b"\x01\x00\x00\x00\x07"
        data += struct.pack("<QQHB", in_amount, out, 50, 0)
        metas = [TOKEN_PROGRAM, USER, wsol, dest, jup, USDC_MINT]
        return Instruction(jup, data, [AccountMeta(k, k == USER, k in (wsol, dest)) for k in metas])

    wrap = [
        create_ata_idempotent(
            USER, USER, Pubkey.from_string(str(token("wSOL").address)), TOKEN_PROGRAM
        ),
        sol_transfer(USER, wsol, SOL),
        Instruction(TOKEN_PROGRAM, bytes([17]), [AccountMeta(wsol, False, True)]),
    ]
    ok = built_from([cu_limit(300_000), *wrap, route(SOL, 180 * 10**6)], [NullSigner(USER)])
    assert check_jupiter_swap(ok, SwapPolicy()).min_out == 179_100_000
    with pytest.raises(SuspiciousResponseError, match="takes 2000000000"):
        check_jupiter_swap(
            built_from([*wrap, route(2 * SOL, 180 * 10**6)], [NullSigner(USER)]), SwapPolicy()
        )
    with pytest.raises(SuspiciousResponseError, match="pays"):
        bad = route(
            SOL, 180 * 10**6, dest=get_associated_token_address(ATTACKER.pubkey(), USDC_MINT)
        )
        check_jupiter_swap(built_from([*wrap, bad], [NullSigner(USER)]), SwapPolicy())
    with pytest.raises(SuspiciousResponseError, match="less than min_out"):
        check_jupiter_swap(
            built_from([*wrap, route(SOL, 100 * 10**6)], [NullSigner(USER)]), SwapPolicy()
        )


# -- address lookup tables ----------------------------------------------------------------------
async def test_a_swap_through_the_makers_lookup_table_end_to_end(urls: tuple[str, str]) -> None:
    """The stand-in compiles fills against the maker's real lookup table on the node, as
    Jupiter does: the adapter reads the table, the check resolves it, the swap lands."""
    node, jupiter = urls
    signer = fresh_wallet("alt USDC-JUP")
    wallet = Pubkey.from_string(signer.identity)
    amount = 300 * 10**6
    fund(node, wallet, 10 * SOL, {"USDC": amount})
    async with httpx.AsyncClient() as client:
        api = Jupiter(client, base_url=jupiter, api_key="local")
        built = await api.build(await api.quote(request("USDC", "JUP", amount, signer.identity)))
    assert isinstance(built.tx, SolanaTx)
    msg = VersionedTransaction.from_bytes(built.tx.raw).message
    assert isinstance(msg, MessageV0)
    (lookup,) = msg.address_table_lookups
    table = str(lookup.account_key)
    account = rpc_call(node, "getAccountInfo", table, {"encoding": "base64"})["value"]
    assert account["owner"] == "AddressLookupTab1e1111111111111111111111111"
    tables = await tables_of(node, built)
    assert tables is not None
    # the mints and the maker's accounts are only in the table, not in the static keys
    jup_mint = Pubkey.from_string(str(token("JUP").address))
    assert jup_mint not in msg.account_keys and str(jup_mint) in tables[table]
    with pytest.raises(SuspiciousResponseError, match="not provided"):
        check_jupiter_swap(built, POLICY)
    checked = check_jupiter_swap(built, POLICY, tables)
    tx = await sign_versioned_transaction(signer, VersionedTransaction.from_bytes(built.tx.raw))
    before = holding(node, wallet, "JUP")
    sig = send(node, tx)
    got = rpc_call(
        node, "getTransaction", sig, {"encoding": "json", "maxSupportedTransactionVersion": 0}
    )
    assert got["meta"]["loadedAddresses"]["writable"]
    assert holding(node, wallet, "JUP") - before >= checked.min_out > 0
    assert holding(node, wallet, "USDC") == 0


async def test_lookup_tables_missing_foreign_or_malformed_are_chain_errors(
    urls: tuple[str, str],
) -> None:
    node, _jupiter = urls
    async with httpx.AsyncClient() as client:
        chain = SolanaChain(REG.chains["solana"], node, client)
        with pytest.raises(ChainError, match="does not exist"):
            await chain.lookup_tables([str(Keypair().pubkey())])
        with pytest.raises(ChainError, match="not an address lookup table"):
            await chain.lookup_tables([str(USDC_MINT)])

    def short_table(r: httpx.Request) -> httpx.Response:
        account = {
            "lamports": 1,
            "owner": "AddressLookupTab1e1111111111111111111111111",
            "data": [base64.b64encode(bytes(57)).decode(), "base64"],
            "executable": False,
        }
        result = {"context": {"slot": 1}, "value": [account]}
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": 0, "result": result}])

    async with mock(short_table) as client:
        chain = SolanaChain(REG.chains["solana"], "http://node.invalid", client)
        with pytest.raises(ChainError, match="malformed"):
            await chain.lookup_tables([str(ATTACKER.pubkey())])


TABLE = Keypair.from_seed(hashlib.sha256(b"jupiter test lookup table").digest()).pubkey()
MAKER_USDC = get_associated_token_address(MAKER.pubkey(), USDC_MINT)
USER_USDC = get_associated_token_address(USER, USDC_MINT)
ENTRIES = [MAKER_USDC, USDC_MINT, USER_USDC]


def _with_table() -> BuiltSwap:
    """The plain RFQ fill, compiled against a table holding the maker's and the wallet's
    USDC accounts and the mint."""
    return built_from(rfq_ixs(), tables=[AddressLookupTableAccount(TABLE, ENTRIES)])


def _entries(*keys: Pubkey) -> dict[str, list[str]]:
    return {str(TABLE): [str(k) for k in keys]}


def _table_names_a_program() -> BuiltSwap:
    """An extra instruction whose program id is an index into the table's addresses."""
    good = built_from(
        rfq_ixs(), tables=[AddressLookupTableAccount(TABLE, [*ENTRIES, ATTACKER.pubkey()])]
    )
    assert isinstance(good.tx, SolanaTx)
    msg = VersionedTransaction.from_bytes(good.tx.raw).message
    assert isinstance(msg, MessageV0)
    (lookup,) = msg.address_table_lookups
    writable, readonly = bytes(lookup.writable_indexes), bytes(lookup.readonly_indexes)
    program = len(msg.account_keys) + len(writable) + len(readonly)  # the new last readonly
    hostile = MessageV0(
        msg.header,
        msg.account_keys,
        msg.recent_blockhash,
        [*msg.instructions, CompiledInstruction(program, b"drain", bytes([0]))],
        [MessageAddressTableLookup(TABLE, writable, readonly + bytes([3]))],
    )
    tx = VersionedTransaction(hostile, [NullSigner(USER), MAKER])
    return dataclasses.replace(good, tx=SolanaTx(bytes(tx)))


def test_a_fill_through_a_lookup_table_passes_when_the_table_is_given() -> None:
    built = _with_table()
    assert isinstance(built.tx, SolanaTx)
    msg = VersionedTransaction.from_bytes(built.tx.raw).message
    assert isinstance(msg, MessageV0) and msg.address_table_lookups
    assert USER_USDC not in msg.account_keys  # the wallet's output account is loaded
    checked = check_jupiter_swap(built, POLICY, _entries(*ENTRIES))
    assert checked.min_out == 179_100_000


HOSTILE_TABLES: dict[str, tuple[Any, dict[str, list[str]], str]] = {
    "the table swaps the wallet's output account": (
        _with_table,
        _entries(MAKER_USDC, USDC_MINT, get_associated_token_address(ATTACKER.pubkey(), USDC_MINT)),
        "goes to",
    ),
    "the table swaps the mint": (
        _with_table,
        _entries(MAKER_USDC, Keypair().pubkey(), USER_USDC),
        "receives mint",
    ),
    "a lookup index resolves to an unknown program": (
        _table_names_a_program,
        _entries(*ENTRIES, ATTACKER.pubkey()),
        f"program {ATTACKER.pubkey()} is not on the allow-list",
    ),
    "a lookup index out of range": (_with_table, _entries(MAKER_USDC, USDC_MINT), "out of range"),
    "the table was not provided": (_with_table, {}, "not provided"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TABLES))
def test_hostile_lookup_tables_are_refused(case: str) -> None:
    make, tables, message = HOSTILE_TABLES[case]
    with pytest.raises(SuspiciousResponseError, match=message) as err:
        check_jupiter_swap(make(), POLICY, tables)
    assert err.value.exit_code == 3


async def test_the_stand_in_can_answer_without_lookup_tables(
    urls: tuple[str, str], tmp_path: Path
) -> None:
    """``--no-lookup-table``: static account keys only, checked with no tables to read."""
    import sys

    from rebalancer.chains.anvil import start_listening, stop_pid

    node, _jupiter = urls
    argv = [
        sys.executable,
        "-m",
        "rebalancer.localnet.jupiter_server",
        "--port",
        "0",
        "--rpc",
        node,
    ]
    stand_in = start_listening("jupiter", [*argv, "--no-lookup-table"], tmp_path / "jup.log")
    try:
        async with httpx.AsyncClient() as client:
            api = Jupiter(client, base_url=stand_in.url + "/swap/v1", api_key="local")
            built = await api.build(await api.quote(request("SOL", "USDC", SOL)))
    finally:
        stop_pid(stand_in.pid)
    assert isinstance(built.tx, SolanaTx)
    msg = VersionedTransaction.from_bytes(built.tx.raw).message
    assert isinstance(msg, MessageV0) and not msg.address_table_lookups
    assert check_jupiter_swap(built, POLICY).min_out > 0
