"""The EVM chain adapter: one class, configured for Ethereum or Avalanche.

A balance refresh is one HTTP request per chain: a JSON-RPC batch holding ``eth_chainId``
(checked once per adapter) and one Multicall3 ``aggregate3`` ``eth_call`` per chunk of
sub-calls, each sub-call a ``balanceOf`` or ``getEthBalance`` allowed to fail on its own, and
the Chainlink feeds' ``latestRoundData`` and ``decimals`` after them (prices come with the
balances they value, in the same request).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rebalancer.chains.base import (
    Balances,
    ChainAdapter,
    ReadFailure,
    SimResult,
    SwapLegs,
    node_amount,
)
from rebalancer.chains.jsonrpc import HttpxProvider, result_of
from rebalancer.chains.multicall import (
    BALANCE_OF,
    GET_ETH_BALANCE,
    MULTICALL3,
    DecodeError,
    address_arg,
    decode_aggregate3,
    encode_aggregate3,
    uint_result,
)
from rebalancer.chains.oracles import (
    DECIMALS,
    GET_ROUND_DATA,
    LATEST_ROUND_DATA,
    OracleFeed,
    chainlink_reading,
    decode_round,
    out_of_bounds,
    tidy,
)
from rebalancer.core.errors import AlreadyKnownError, ChainError, SimulationError, WrongChainError
from rebalancer.core.tx import EvmCall, EvmTransaction, UnsignedTx
from rebalancer.core.types import DEFAULT_RPC_TIMEOUT_S, ChainInfo, Holding, Token

if TYPE_CHECKING:
    from pathlib import Path

    import httpx


def gas_limit(simulated: int, fallback: int) -> int:
    """A transaction's gas limit: what the simulation used plus 30%, or, unsimulated, the
    aggregator's own figure."""
    return simulated * 13 // 10 if simulated else fallback


def raw_nonce(raw: bytes) -> int | None:
    """The nonce of signed bytes (type 2 or legacy), or None if they do not decode."""
    import rlp

    try:
        items = rlp.decode(raw[1:]) if raw[:1] == b"\x02" else rlp.decode(raw)
        field = items[1] if raw[:1] == b"\x02" else items[0]
        return int.from_bytes(field, "big")
    except Exception:  # NOTE: journalled bytes of an unknown shape: let the node decide
        return None


class EvmChain(ChainAdapter):
    """One EVM chain (Ethereum, Avalanche: one class, two configurations) over an httpx client."""

    def __init__(
        self,
        info: ChainInfo,
        rpc_url: str,
        client: httpx.AsyncClient,
        *,
        work_dir: Path | None = None,
        send_url: str | None = None,
        chunk_size: int = 500,
        retries: int = 3,
        backoff: float = 0.25,
        simulation: str = "auto",
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT_S,
    ) -> None:
        super().__init__(
            info, rpc_url, client, work_dir=work_dir, simulation=simulation, send_url=send_url
        )
        self.provider = HttpxProvider(
            rpc_url, client, label=info.name, retries=retries, backoff=backoff, deadline=rpc_timeout
        )
        self.send_provider = (
            self.provider
            if send_url is None
            else HttpxProvider(
                send_url,
                client,
                label=f"{info.name} send_rpc",
                retries=retries,
                backoff=backoff,
                deadline=rpc_timeout,
            )
        )
        self.chunk_size = chunk_size
        self._chain_checked = False
        self._call_cache: dict[
            tuple[tuple[str, ...], tuple[Token, ...], tuple[OracleFeed, ...]],
            tuple[list[tuple[str, Token]], list[int], list[str]],
        ] = {}
        self.has_simulate_v1: bool | None = None
        """Whether the RPC answers ``eth_simulateV1``: unknown until the first simulation."""
        self.has_trace_call: bool | None = None
        """Whether it answers ``debug_traceCall`` (the warm copy's prestates)."""
        self.warm_node: Any = None
        """The warm-copy anvil kept for this command (chains.evm_sim.KeptNode), if started."""

    async def balances(
        self,
        wallets: Sequence[str],
        tokens: Sequence[Token],
        feeds: Sequence[OracleFeed] = (),
    ) -> Balances:
        pairs, sizes, calls = self._calls(tuple(wallets), tuple(tokens), tuple(feeds))
        requests: list[tuple[Any, Any]] = []
        if not self._chain_checked:
            requests.append(("eth_chainId", []))
        for data in calls:
            requests.append(("eth_call", [{"to": MULTICALL3, "data": data}, "latest"]))
        if len(requests) == 0:
            return Balances(chain=self.info.name)
        answers = await self.provider.make_batch_request(requests)
        where = self.provider.where
        if not self._chain_checked:
            self._check_chain_id(result_of(answers[0], "eth_chainId", where))
            answers = answers[1:]

        results: list[tuple[bool, bytes]] = []
        for size, answer in zip(sizes, answers, strict=True):
            raw = result_of(answer, "eth_call", where)
            try:
                payload = bytes.fromhex(str(raw).removeprefix("0x"))
                if not payload:
                    raise DecodeError(f"empty answer: is Multicall3 deployed at {MULTICALL3}?")
                results.extend(decode_aggregate3(payload, size))
            except (DecodeError, ValueError) as exc:
                raise ChainError(f"{where}: bad Multicall3 answer: {exc}") from None
        out = Balances(chain=self.info.name)
        for (wallet, token), (success, ret) in zip(pairs, results, strict=False):
            value = uint_result(success, ret)
            if value is None:
                reason = "call reverted" if not success else "not a token contract"
                out.failures.append(ReadFailure(self.info.name, wallet, token, reason))
            else:
                value = node_amount(where, wallet, token, value)
                out.holdings.append(Holding(self.info.name, wallet, token, value))
        rest = results[len(pairs) :]
        for i, feed in enumerate(feeds):
            out.oracles.append(chainlink_reading(feed, rest[2 * i], rest[2 * i + 1]))
        return out

    async def past_rounds(
        self, feed: OracleFeed, latest_round: int, count: int
    ) -> list[tuple[int, Decimal]]:
        """Up to ``count`` Chainlink rounds before ``latest_round`` as (updatedAt, USD), oldest
        first, read with ``getRoundData`` in one batch (history backfill). A round the feed
        no longer has ends the walk; a non-positive answer is skipped."""
        phase, first = latest_round >> 64, latest_round & (2**64 - 1)
        ids = [(phase << 64) | (first - k) for k in range(1, min(count, first - 1) + 1)]
        calls = [(feed.address, GET_ROUND_DATA + rid.to_bytes(32, "big")) for rid in ids]
        chunks = self._chunked(calls)
        requests: list[tuple[Any, Any]] = [
            ("eth_call", [{"to": MULTICALL3, "data": "0x" + encode_aggregate3(c).hex()}, "latest"])
            for c in chunks
        ]
        if not requests:
            return []
        answers = await self.provider.make_batch_request(requests)
        results: list[tuple[bool, bytes]] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            raw = result_of(answer, "eth_call", self.provider.where)
            try:
                results.extend(
                    decode_aggregate3(bytes.fromhex(str(raw).removeprefix("0x")), len(chunk))
                )
            except (DecodeError, ValueError) as exc:
                raise ChainError(f"{self.provider.where}: bad Multicall3 answer: {exc}") from None
        out: list[tuple[int, Decimal]] = []
        for ok, ret in results:
            parsed = decode_round(ret) if ok else None
            if parsed is None:
                break
            _rid, answer_, _started, updated = parsed
            usd = Decimal(answer_).scaleb(-feed.decimals)
            if answer_ > 0 and updated > 0 and out_of_bounds(usd, "getRoundData") is None:
                out.append((updated, tidy(usd)))
        return out[::-1]

    # -- transactions ------------------------------------------------------------------------
    async def call(self, method: str, params: list[Any], *, send: bool = False) -> Any:
        """One JSON-RPC call (``send``: to ``send_rpc``); the node's error becomes a
        ChainError with its message."""
        provider = self.send_provider if send else self.provider
        answer = await provider.make_request(method, params)
        return result_of(answer, method, provider.where)

    async def chain_time(self) -> int:
        block = await self.call("eth_getBlockByNumber", ["latest", False])
        try:
            return int(str(block["timestamp"]), 16)
        except (TypeError, KeyError, ValueError):
            raise ChainError(f"{self.info.name}: the latest block has no timestamp") from None

    async def nonce(self, wallet: str) -> int:
        """The next nonce, counting transactions the node holds in its pool."""
        return int(str(await self.call("eth_getTransactionCount", [wallet, "pending"])), 16)

    async def last_activity(self, wallet: str) -> str | None:
        """The pending nonce: it moves with every transaction the wallet sends."""
        return f"nonce {await self.nonce(wallet)}"

    async def mined_nonce(self, wallet: str) -> int:
        return int(str(await self.call("eth_getTransactionCount", [wallet, "latest"])), 16)

    async def fees(self) -> tuple[int, int]:
        """EIP-1559 (max fee, priority fee): twice the base fee plus the tip, so a transaction
        survives a few full blocks."""
        block = await self.call("eth_getBlockByNumber", ["latest", False])
        base = int(str(block.get("baseFeePerGas", "0x0")), 16)
        try:
            tip = int(str(await self.call("eth_maxPriorityFeePerGas", [])), 16)
        except ChainError:
            tip = 10**9
        return 2 * base + tip, tip

    async def nonce_and_fees(self, wallet: str) -> tuple[int, int, int]:
        """The wallet's next nonce and the EIP-1559 (max fee, priority fee) as ``fees`` gives
        them, in one request (a JSON-RPC batch): a distant node costs one round trip."""
        requests: list[tuple[Any, Any]] = [
            ("eth_getTransactionCount", [wallet, "pending"]),
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
        ]
        answers = await self.provider.make_batch_request(requests)
        where = self.provider.where
        try:
            nonce = int(str(result_of(answers[0], "eth_getTransactionCount", where)), 16)
            block = result_of(answers[1], "eth_getBlockByNumber", where)
            base = int(str(block.get("baseFeePerGas", "0x0")), 16)
        except (AttributeError, ValueError):
            raise ChainError(f"{where} answered a nonce or block malformed") from None
        try:
            tip = int(str(result_of(answers[2], "eth_maxPriorityFeePerGas", where)), 16)
        except (ChainError, ValueError):
            tip = 10**9
        return nonce, 2 * base + tip, tip

    async def send_raw(self, raw: bytes) -> str:
        """Broadcast signed bytes through ``send_rpc`` (else ``rpc``); a node that already has
        them ("already known") is fine."""
        from eth_utils import keccak

        tx_hash = "0x" + keccak(raw).hex()
        try:
            return str(await self.call("eth_sendRawTransaction", ["0x" + raw.hex()], send=True))
        except AlreadyKnownError:
            return tx_hash
        except ChainError:
            # NOTE: a send retried after its answer was lost finds the node holding (or having
            # mined: "nonce too low") these very bytes: that is sent, not failed
            if await self._knows(tx_hash):
                return tx_hash
            raise

    async def _knows(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (pending or mined); no answer counts as no."""
        try:
            return await self.call("eth_getTransactionByHash", [tx_hash]) is not None
        except ChainError:
            return False

    async def aclose(self) -> None:
        """Stop the warm-copy anvil this adapter kept, if any."""
        kept, self.warm_node = self.warm_node, None
        if kept is not None:
            import asyncio

            await asyncio.to_thread(kept.stop)

    # -- the trade lifecycle -----------------------------------------------------------------
    async def simulate(self, legs: SwapLegs) -> SimResult:
        """With the fewest round trips the RPC allows: ``eth_simulateV1``, else a warm local
        copy, else an anvil fork (chains.evm_sim)."""
        from rebalancer.chains import evm_sim

        return await evm_sim.simulate(self, legs)

    async def finalize(
        self, wallet: str, legs: SwapLegs, sim: SimResult, *, queued: int = 0
    ) -> list[UnsignedTx]:
        """EIP-1559 transactions at the wallet's next nonces, with the simulation's gas (plus
        30%) and this chain's current fees; the fee budget is checked on exactly these."""
        calls = [_evm_call(p) for p in legs.proposals]
        gas_used = sim.gas_per_proposal(legs)
        pending, max_fee, tip = await self.nonce_and_fees(wallet)
        nonce = pending + queued
        return [
            EvmTransaction.eip1559(
                call, nonce=nonce + i, gas=gas_limit(used, call.gas), max_fee=max_fee, tip=tip
            )
            for i, (call, used) in enumerate(zip(calls, gas_used, strict=True))
        ]

    def max_network_fee(self, txs: Sequence[UnsignedTx]) -> int | None:
        """Gas limits at the max fee per gas: the worst case the signatures allow."""
        return sum(tx.max_fee for tx in txs if isinstance(tx, EvmTransaction))

    async def can_still_land(self, raw: bytes, wallet: str) -> bool:
        """Not if that nonce is used by another transaction (or by ours, on a node whose
        receipts lag)."""
        nonce = raw_nonce(raw)
        return nonce is None or await self.mined_nonce(wallet) <= nonce

    async def landing_problem(
        self, wallet: str, txs: Sequence[UnsignedTx], *, what: str = "these transactions"
    ) -> str | None:
        nonces = [tx.nonce for tx in txs if tx.nonce is not None]
        if not nonces:
            return None
        first = min(nonces)
        pending = await self.nonce(wallet)
        if pending > first:
            return f"nonce {first} of {what} is already used (the wallet is at {pending})"
        if pending < first:
            return (
                f"{what} starts at nonce {first} but the wallet is at {pending}; earlier "
                "transactions are missing"
            )
        return None

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = await self.call("eth_getTransactionReceipt", [tx_hash])
        return result if isinstance(result, dict) else None

    async def fee_paid(self, tx_id: str) -> int | None:
        """Gas used times the effective gas price, in wei; None if not mined."""
        r = await self.receipt(tx_id)
        if r is None:
            return None
        return int(str(r["gasUsed"]), 16) * int(str(r.get("effectiveGasPrice", "0x0")), 16)

    async def block_time(self, tx_id: str) -> int | None:
        """The ``timestamp`` of the receipt's block; None if not mined."""
        r = await self.receipt(tx_id)
        if r is None or r.get("blockNumber") is None:
            return None
        block = await self.call("eth_getBlockByNumber", [r["blockNumber"], False])
        if not isinstance(block, dict) or block.get("timestamp") is None:
            return None
        try:
            return int(str(block["timestamp"]), 16)
        except ValueError:
            raise ChainError(
                f"{self.provider.where}: block {r['blockNumber']}: timestamp "
                f"{block['timestamp']!r} is not a hex number"
            ) from None

    async def tx_status(self, tx_id: str) -> str:
        """``confirmed``, ``failed`` (reverted) or ``unknown`` (not mined, or never seen)."""
        r = await self.receipt(tx_id)
        if r is None:
            return "unknown"
        return "confirmed" if int(str(r.get("status", "0x0")), 16) == 1 else "failed"

    def _chunked(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        return [items[i : i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]

    def _calls(
        self,
        wallets: tuple[str, ...],
        tokens: tuple[Token, ...],
        feeds: tuple[OracleFeed, ...] = (),
    ) -> tuple[list[tuple[str, Token]], list[int], list[str]]:
        """The (wallet, token) pairs, the sub-call count of each chunk and the hex calldata of
        each chunk's aggregate3: the balances first, then ``latestRoundData`` and
        ``decimals`` of every feed.

        Cached per wallet, token and feed set: a watch loop refreshes the same set again and
        again, and building a thousand sub-calls costs more than the node takes to answer.
        """
        key = (wallets, tokens, feeds)
        hit = self._call_cache.get(key)
        if hit is not None:
            return hit
        pairs = [(w, t) for w in wallets for t in tokens]
        calls = [
            (MULTICALL3, GET_ETH_BALANCE + address_arg(w))
            if t.address is None
            else (t.address, BALANCE_OF + address_arg(w))
            for w, t in pairs
        ]
        for feed in feeds:
            calls += [(feed.address, LATEST_ROUND_DATA), (feed.address, DECIMALS)]
        chunks = self._chunked(calls)
        built = (
            pairs,
            [len(c) for c in chunks],
            ["0x" + encode_aggregate3(c).hex() for c in chunks],
        )
        if len(self._call_cache) >= 8:
            self._call_cache.pop(next(iter(self._call_cache)))
        self._call_cache[key] = built
        return built

    def _check_chain_id(self, raw: Any) -> None:
        try:
            chain_id = int(str(raw), 16)
        except ValueError:
            raise ChainError(f"{self.provider.where}: eth_chainId answered {raw!r}") from None
        if chain_id != self.info.chain_id:
            raise WrongChainError(
                f"{self.provider.where} is chain id {chain_id}, but the config says "
                f"{self.info.name} (chain id {self.info.chain_id}): "
                f"check chains.{self.info.name}.rpc"
            )
        self._chain_checked = True


def _evm_call(tx: object) -> EvmCall:
    if not isinstance(tx, EvmCall):
        raise SimulationError(f"an EVM chain cannot send {type(tx).__name__}")
    return tx
