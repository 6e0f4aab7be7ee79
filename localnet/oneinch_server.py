"""A local stand-in for the 1inch Swap API v6.1 and v6.0, over the local EVM worlds.

It serves ``/swap/v6.1/{chainId}/{quote,swap,approve/*,tokens,liquidity-sources,healthcheck}``
and the same under ``/swap/v6.0`` with the real API's schemas: amounts as decimal strings,
``tx.gas`` a number (0 with ``disableEstimate=true``, as the real API answers when it does not
simulate), the five-field error body with HTTP 400, 401 without a bearer key. Routes are the
best of direct and one-hop paths over the world's Uniswap V2 and V3 pools, priced by the pools
themselves (QuoterV2 and the V2 router, in one JSON-RPC batch per hop level), and ``/swap``
returns calldata for the real ``swap(executor, desc, data)`` entry point of the local router
placed at the real AggregationRouterV6 address. The transactions it returns really execute.
On v6.1 ``/swap`` takes ``slippage`` or ``minReturn`` (400 with both or neither), as the real
one does.

    python -m rebalancer.localnet.oneinch_server --port 0 --world 1=http://127.0.0.1:8545 ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from eth_abi import decode, encode
from eth_utils import to_checksum_address

from rebalancer.chains.registry import Registry
from rebalancer.core.resources import fixture_path
from rebalancer.localnet.http_server import json_handler, serve
from rebalancer.localnet.rpc import Rpc, calldata

NATIVE = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"
FIXTURES = fixture_path("evm")
_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PATH = re.compile(r"^/swap/(v6\.[01])/(\d+)/(.+)$")
HOP_GAS = 150_000
BASE_GAS = 150_000


class ApiError(Exception):
    """An answer in 1inch's error shape."""

    def __init__(self, status: int, description: str, meta: list[dict[str, str]] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.meta = meta or []

    def body(self) -> dict[str, Any]:
        return {
            "error": {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
                self.status, "Error"
            ),
            "description": self.description,
            "statusCode": self.status,
            "requestId": str(uuid.uuid4()),
            "meta": self.meta,
        }


@dataclass(frozen=True)
class Hop:
    kind: int  # 2 or 3
    token_in: str
    token_out: str
    fee: int
    router: str
    name: str


class ChainRouter:
    """Best-route search and transaction building on one local EVM world."""

    def __init__(self, chain: str, rpc: Rpc, world: dict[str, Any], registry: Registry) -> None:
        self.chain = chain
        self.rpc = rpc
        self.world = world
        self.registry = registry
        c = world["contracts"]
        self.router = str(c["AggregationRouterV6"])
        self.executor = str(c["LocalExecutor"])
        self.quoter = str(c["QuoterV2"])
        self.v3_router = str(c["SwapRouter"])
        self.v2_router = str(c["UniswapV2Router02"])
        tokens = world["tokens"]
        self.addr = {sym: str(a) for sym, a in tokens.items()}
        self.wrapped = self.addr[registry.chains[chain].native_symbol.join(["W", ""])]
        self.pools: list[tuple[str, str, str, int]] = [
            (p["kind"], self.addr[p["token0"]].lower(), self.addr[p["token1"]].lower(), p["fee"])
            for p in world["pools"]
        ]
        self.connectors = [
            a.lower()
            for sym, a in self.addr.items()
            if sym in {"WETH", "WAVAX", "USDC", "USDT", "USDt"}
        ]

    # -- routing ---------------------------------------------------------------------------
    def _hops(self, a: str, b: str) -> list[Hop]:
        out = []
        for kind, t0, t1, fee in self.pools:
            if {t0, t1} == {a, b}:
                if kind == "v3":
                    out.append(Hop(3, a, b, fee, self.v3_router, "UNISWAP_V3"))
                else:
                    out.append(Hop(2, a, b, 3000, self.v2_router, "UNISWAP_V2"))
        return out

    def _quote_calls(self, hops: list[Hop], amounts: list[int]) -> list[int | None]:
        calls = []
        for hop, amount in zip(hops, amounts, strict=True):
            if hop.kind == 3:
                data = calldata(
                    "quoteExactInputSingle((address,address,uint256,uint24,uint160))",
                    (hop.token_in, hop.token_out, amount, hop.fee, 0),
                )
                calls.append(("eth_call", [{"to": self.quoter, "data": data}, "latest"]))
            else:
                data = calldata(
                    "getAmountsOut(uint256,address[])", amount, [hop.token_in, hop.token_out]
                )
                calls.append(("eth_call", [{"to": self.v2_router, "data": data}, "latest"]))
        results: list[int | None] = []
        for hop, answer in zip(hops, self.rpc.batch(calls), strict=True):
            if not isinstance(answer, str) or len(answer) < 66:
                results.append(None)
            elif hop.kind == 3:
                results.append(int(answer[2:66], 16))
            else:
                results.append(int(decode(["uint256[]"], bytes.fromhex(answer[2:]))[0][-1]))
        return results

    def best_route(self, src: str, dst: str, amount: int) -> tuple[int, list[Hop]]:
        """The route giving the most ``dst`` for ``amount`` of ``src`` (wrapped addresses)."""
        a, b = src.lower(), dst.lower()
        routes: list[list[Hop]] = [[h] for h in self._hops(a, b)]
        for c in self.connectors:
            if c in (a, b):
                continue
            for h1 in self._hops(a, c):
                for h2 in self._hops(c, b):
                    routes.append([h1, h2])
        if not routes:
            raise ApiError(400, "insufficient liquidity")
        first = self._quote_calls([r[0] for r in routes], [amount] * len(routes))
        outs: list[int | None] = list(first)
        two = [i for i, r in enumerate(routes) if len(r) == 2 and first[i]]
        seconds = self._quote_calls([routes[i][1] for i in two], [int(first[i] or 0) for i in two])
        for i, out in zip(two, seconds, strict=True):
            outs[i] = out
        for i, r in enumerate(routes):
            if len(r) == 2 and i not in two:
                outs[i] = None
        scored = [(o, r) for o, r in zip(outs, routes, strict=True) if o]
        if not scored:
            raise ApiError(400, "insufficient liquidity")
        best_out, best = max(scored, key=lambda x: x[0])
        return best_out, best

    # -- helpers ---------------------------------------------------------------------------
    def wrapped_of(self, token: str) -> str:
        return self.wrapped if token.lower() == NATIVE.lower() else token

    def token_info(self, address: str) -> dict[str, Any]:
        if address.lower() == NATIVE.lower():
            info = self.registry.chains[self.chain]
            return {
                "address": NATIVE.lower(),
                "symbol": info.native_symbol,
                "name": info.native_symbol,
                "decimals": info.native_decimals,
                "logoURI": "",
                "tags": ["native"],
            }
        tok = self.registry.by_address(self.chain, address)
        if tok is None or tok.address is None:
            raise ApiError(400, "Cannot sync token", [{"type": "address", "value": address}])
        return {
            "address": tok.address.lower(),
            "symbol": tok.symbol,
            "name": tok.symbol,
            "decimals": tok.decimals,
            "logoURI": "",
            "tags": ["tokens"],
        }

    def erc20_uint(self, token: str, signature: str, *args: Any) -> int:
        return int.from_bytes(self.rpc.read(token, signature, *args)[:32], "big")


def _arg(q: dict[str, list[str]], name: str, required: bool = True) -> str | None:
    v = q.get(name, [None])[0]
    if v is None or v == "":
        if required:
            raise ApiError(400, f"{name.capitalize()} is not set")
        return None
    return v


def _address(q: dict[str, list[str]], name: str, required: bool = True) -> str | None:
    v = _arg(q, name, required)
    if v is None:
        return None
    if not _ADDR.match(v):
        raise ApiError(400, f"{name}: invalid address", [{"type": name, "value": v}])
    return str(to_checksum_address(v))


def _amount(q: dict[str, list[str]]) -> int:
    raw = _arg(q, "amount")
    assert raw is not None
    if not raw.isdigit() or int(raw) == 0:
        raise ApiError(400, "Amount is not set" if not raw.isdigit() else "amount: must be > 0")
    return int(raw)


def _bool(q: dict[str, list[str]], name: str) -> bool:
    v = _arg(q, name, required=False)
    if v not in (None, "true", "false"):
        raise ApiError(400, f"{name} must be a boolean (true or false)")
    return v == "true"


class Api:
    """Request dispatch, independent of the HTTP server (tests may call it directly)."""

    def __init__(self, routers: dict[int, ChainRouter]) -> None:
        self.routers = routers

    def handle(self, path: str, query: str, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                raise ApiError(401, "Unauthorized: an API key is required (Authorization: Bearer)")
            m = _PATH.match(path)
            if not m:
                raise ApiError(404, f"Cannot GET {path}")
            version, chain_id, endpoint = m.group(1), int(m.group(2)), m.group(3).rstrip("/")
            router = self.routers.get(chain_id)
            if router is None:
                raise ApiError(400, f"chain {chain_id} is not supported")
            q = parse_qs(query)
            q["_version"] = [version]
            handler = {
                "quote": self.quote,
                "swap": self.swap,
                "approve/spender": self.spender,
                "approve/transaction": self.approve_transaction,
                "approve/allowance": self.allowance,
                "tokens": self.tokens,
                "liquidity-sources": self.sources,
                "healthcheck": self.healthcheck,
            }.get(endpoint)
            if handler is None:
                raise ApiError(404, f"Cannot GET {path}")
            return 200, handler(router, q)
        except ApiError as exc:
            return exc.status, exc.body()

    def _route(
        self, r: ChainRouter, q: dict[str, list[str]]
    ) -> tuple[str, str, int, int, list[Hop]]:
        src = _address(q, "src")
        dst = _address(q, "dst")
        assert src is not None and dst is not None
        amount = _amount(q)
        if src.lower() == dst.lower():
            raise ApiError(400, "src and dst tokens must be different")
        r.token_info(src)
        r.token_info(dst)
        out, hops = r.best_route(r.wrapped_of(src), r.wrapped_of(dst), amount)
        return src, dst, amount, out, hops

    @staticmethod
    def _protocols(hops: list[Hop]) -> list[list[list[dict[str, Any]]]]:
        return [
            [
                [
                    {
                        "name": h.name,
                        "part": 100,
                        "fromTokenAddress": h.token_in.lower(),
                        "toTokenAddress": h.token_out.lower(),
                    }
                ]
                for h in hops
            ]
        ]

    def quote(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        src, dst, _amount, out, hops = self._route(r, q)
        body: dict[str, Any] = {"dstAmount": str(out)}
        if _bool(q, "includeTokensInfo"):
            body["srcToken"] = r.token_info(src)
            body["dstToken"] = r.token_info(dst)
        if _bool(q, "includeProtocols"):
            body["protocols"] = self._protocols(hops)
        if _bool(q, "includeGas"):
            body["gas"] = BASE_GAS + HOP_GAS * len(hops)
        return body

    def swap(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        sender = _address(q, "from")
        _address(q, "origin")
        receiver = _address(q, "receiver", required=False) or sender
        assert sender is not None and receiver is not None
        raw_min: str | None = None
        if q["_version"][0] == "v6.1":
            # NOTE: v6.1 takes a slippage or an explicit minReturn, not both (aggregators.md).
            raw_min = _arg(q, "minReturn", required=False)
            if (raw_min is None) == (_arg(q, "slippage", required=False) is None):
                raise ApiError(400, "exactly one of slippage or minReturn must be set")
        src, dst, amount, out, hops = self._route(r, q)
        if raw_min is not None:
            if not raw_min.isdigit():
                raise ApiError(400, "minReturn must be an integer string")
            min_return = int(raw_min)
            if min_return > out:
                raise ApiError(400, "insufficient liquidity")
        else:
            raw_slip = _arg(q, "slippage")
            try:
                slippage = Decimal(str(raw_slip))
            except InvalidOperation:
                raise ApiError(400, "slippage must be a number from 0 to 50") from None
            if not Decimal(0) <= slippage <= Decimal(50):
                raise ApiError(400, "slippage must be a number from 0 to 50")
            min_return = int(Decimal(out) * (100 - slippage) / 100)
        if min_return == 0:
            raise ApiError(400, "insufficient liquidity")
        native_src = src.lower() == NATIVE.lower()
        estimate = not _bool(q, "disableEstimate")
        if estimate:
            self._check_funds(r, src, sender, amount, native_src)
        route = encode(
            ["(uint8,address,address,uint24,address)[]"],
            [[(h.kind, h.token_in, h.token_out, h.fee, h.router) for h in hops]],
        )
        data = calldata(
            "swap(address,(address,address,address,address,uint256,uint256,uint256),bytes)",
            r.executor,
            (src, dst, r.executor, receiver, amount, min_return, 0),
            route,
        )
        value = amount if native_src else 0
        # NOTE: with disableEstimate=true the real API does not simulate and answers gas 0.
        gas = 0
        if estimate:
            tx = {"from": sender, "to": r.router, "data": data, "value": hex(value)}
            try:
                estimated = int(r.rpc.call("eth_estimateGas", tx), 16)
            except Exception:
                raise ApiError(400, "cannot estimate") from None
            gas = estimated * 5 // 4
        body: dict[str, Any] = {
            "dstAmount": str(out),
            "tx": {
                "from": sender.lower(),
                "to": r.router.lower(),
                "data": data,
                "value": str(value),
                "gas": gas,
                "gasPrice": str(int(r.rpc.call("eth_gasPrice"), 16)),
            },
        }
        if _bool(q, "includeTokensInfo"):
            body["srcToken"] = r.token_info(src)
            body["dstToken"] = r.token_info(dst)
        if _bool(q, "includeProtocols"):
            body["protocols"] = self._protocols(hops)
        return body

    @staticmethod
    def _check_funds(r: ChainRouter, src: str, sender: str, amount: int, native_src: bool) -> None:
        """What the real API checks before it estimates gas: balance, then allowance."""
        if native_src:
            balance = int(r.rpc.call("eth_getBalance", sender, "latest"), 16)
        else:
            balance = r.erc20_uint(src, "balanceOf(address)", sender)
        if balance < amount:
            raise ApiError(
                400,
                f"Not enough {'ETH' if native_src else 'src'} balance. Amount: {amount}. "
                f"Balance: {balance}.",
                [
                    {"type": "amount", "value": str(amount)},
                    {"type": "balance", "value": str(balance)},
                ],
            )
        if not native_src:
            allowance = r.erc20_uint(src, "allowance(address,address)", sender, r.router)
            if allowance < amount:
                raise ApiError(
                    400,
                    f"Not enough allowance. Amount: {amount}. Allowance: {allowance}. "
                    f"Spender: {r.router.lower()}",
                    [
                        {"type": "amount", "value": str(amount)},
                        {"type": "allowance", "value": str(allowance)},
                    ],
                )

    def spender(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        return {"address": r.router.lower()}

    def approve_transaction(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        token = _address(q, "tokenAddress")
        assert token is not None
        r.token_info(token)
        raw = _arg(q, "amount", required=False)
        if raw is not None and not raw.isdigit():
            raise ApiError(400, "amount must be an integer")
        amount = int(raw) if raw is not None else 2**256 - 1
        return {
            "data": calldata("approve(address,uint256)", r.router, amount),
            "gasPrice": str(int(r.rpc.call("eth_gasPrice"), 16)),
            "to": token.lower(),
            "value": "0",
        }

    def allowance(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        token = _address(q, "tokenAddress")
        wallet = _address(q, "walletAddress")
        assert token is not None and wallet is not None
        r.token_info(token)
        return {
            "allowance": str(r.erc20_uint(token, "allowance(address,address)", wallet, r.router))
        }

    def tokens(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        out = {NATIVE.lower(): r.token_info(NATIVE)}
        for tok in r.registry.tokens_on(r.chain):
            if tok.address is not None:
                out[tok.address.lower()] = r.token_info(tok.address)
        return {"tokens": out}

    def healthcheck(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        """``/healthcheck``: the world's node answers, so the API is up."""
        r.rpc.call("eth_blockNumber")
        return {"status": "OK"}

    def sources(self, r: ChainRouter, q: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "protocols": [
                {"id": "UNISWAP_V2", "title": "Uniswap V2", "img": "", "img_color": ""},
                {"id": "UNISWAP_V3", "title": "Uniswap V3", "img": "", "img_color": ""},
            ]
        }


def build_api(worlds: dict[int, str]) -> Api:
    registry = Registry.load()
    routers = {}
    for chain_id, url in worlds.items():
        name = next(n for n, c in registry.chains.items() if c.chain_id == chain_id)
        world = json.loads((FIXTURES / f"{name}.world.json").read_text())
        routers[chain_id] = ChainRouter(name, Rpc(url), world, registry)
    return Api(routers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local 1inch Swap API v6 stand-in")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--world", action="append", default=[], metavar="CHAINID=URL")
    args = parser.parse_args(argv)
    worlds = {int(w.split("=", 1)[0]): w.split("=", 1)[1] for w in args.world}
    api = build_api(worlds)
    handler = json_handler(
        "1inch-standin",
        lambda method, path, query, body, headers: api.handle(path, query, headers),
        methods=("GET",),
        internal_error=lambda exc: ApiError(500, f"internal error: {type(exc).__name__}").body(),
    )
    return serve(handler, args.port)


if __name__ == "__main__":
    sys.exit(main())
