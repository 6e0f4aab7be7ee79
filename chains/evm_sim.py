"""EVM simulation before anything is signed, with the fewest round trips the RPC allows.

Every way runs the same legs as the wallet, unsigned: the approvals (the reset of a leftover
allowance first, where the token approves only from zero), then the swap, and measures the
wallet's real balance change; an approve must return true, or nothing where the token is known
to (registry quirk ``no-return-data``, mainnet USDT). ``policy.evm_simulation = auto`` tries,
in order:

1. ``eth_simulateV1`` on the RPC (probed once per chain, remembered): one request, one
   simulated block holding a balance read, the approvals, the swap and a second read.
2. a warm local copy: ``eth_createAccessList`` of every leg (one batch), then every account
   (code, balance, nonce) and storage slot named fetched in ONE batch and loaded into a local
   anvil with no fork backend, where the legs run. What a leg read beyond the loaded state
   (an access list taken before the approval stops at ``transferFrom``) is found from the local
   run's prestate trace and fetched in one more batch, up to ``WARM_MAX_REQUESTS`` in all; past
   that the fork's result is used.
3. an anvil fork (``--fork-url`` through a loopback forwarder: a keyed URL never reaches a
   command line), which fetches each account and slot one by one as the swap touches them.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from rebalancer.chains.anvil import NodeProcess, start_anvil, stop_pid
from rebalancer.chains.base import SimResult, SwapLegs
from rebalancer.chains.jsonrpc import result_of
from rebalancer.core.errors import (
    ChainError,
    ConfigError,
    MethodNotFoundError,
    SimulationError,
    SimulationUnavailable,
)
from rebalancer.core.tx import EvmCall, Proposal
from rebalancer.core.types import EvmSimulation, Token, TokenQuirk

if TYPE_CHECKING:
    from rebalancer.chains.evm import EvmChain

WARM_MAX_REQUESTS = 5
"""The most upstream requests a warm simulation makes before it gives way to a fork."""

FORK = "anvil fork"
WARM = "warm local copy"
OUTSIDE = "anvil fork (the warm copy read state outside its access lists)"


def _call(tx: Proposal) -> EvmCall:
    if not isinstance(tx, EvmCall):
        raise SimulationError(f"an EVM chain cannot simulate {type(tx).__name__}")
    return tx


async def simulate(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """The way ``adapter.simulation`` names; ``auto``: the fewest round trips that work."""
    how = EvmSimulation(adapter.simulation)
    if how is EvmSimulation.SIMULATE_V1:
        return await simulate_rpc(adapter, legs)
    if how is EvmSimulation.WARM:
        return await simulate_warm(adapter, legs)
    if how is EvmSimulation.FORK:
        return await simulate_fork(adapter, legs)
    problems: list[str] = []
    spent = 0
    if adapter.has_simulate_v1 is not False:
        try:
            sim = await simulate_rpc(adapter, legs)
        except SimulationUnavailable as exc:
            adapter.has_simulate_v1 = False
            problems.append(exc.message)
            spent = 1
        else:
            adapter.has_simulate_v1 = True
            return sim
    try:
        return await simulate_warm(adapter, legs, budget=WARM_MAX_REQUESTS - spent)
    except SimulationUnavailable as exc:
        problems.append(exc.message)
    try:
        return await simulate_fork(adapter, legs)
    except SimulationUnavailable as exc:
        problems.append(exc.message)
    raise SimulationUnavailable("; ".join(dict.fromkeys(problems))) from None


@contextmanager
def _scratch(adapter: EvmChain) -> Iterator[Path]:
    scratch = (
        nullcontext(str(adapter.work_dir))
        if adapter.work_dir is not None
        else tempfile.TemporaryDirectory(prefix="rebalancer-sim-")
    )
    with scratch as tmp:
        yield Path(tmp)


def _start(adapter: EvmChain, what: str, log_dir: Path, **kwargs: Any) -> NodeProcess:
    chain = adapter.info.name
    try:
        return start_anvil(f"{what}-{chain}", log_dir / f"{what}-{chain}.log", **kwargs)
    except ConfigError as exc:
        raise SimulationUnavailable(f"no anvil {what} of {chain}: {exc}") from None
    except ChainError as exc:
        raise SimulationUnavailable(f"cannot {what} {chain}: {exc}") from None


async def simulate_fork(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """Run the approval (if any) and the swap on a fork, as the wallet; measure the output.

    anvil forks a loopback forwarder to the RPC, never the RPC's URL (it may hold a key)."""
    from rebalancer.chains.rpc_forwarder import LoopbackForwarder

    swap = _call(legs.swap)
    with _scratch(adapter) as log_dir, LoopbackForwarder(adapter.rpc_url) as forwarder:
        # NOTE: no disk cache (~/.foundry/cache/rpc): a fork of the latest block seldom meets
        # that block again, and the figures of the old way stay honest (bench/remote_latency).
        node = await asyncio.to_thread(
            _start, adapter, "fork", log_dir, fork_url=forwarder.url, extra=["--no-storage-caching"]
        )
        try:
            return await _on_node(adapter, node.url, legs, swap, FORK)
        finally:
            await asyncio.to_thread(stop_pid, node.pid)


@dataclasses.dataclass
class _State:
    """Accounts and slots fetched from the RPC (and so loaded locally), lower-case hex."""

    accounts: set[str] = dataclasses.field(default_factory=set)
    slots: set[tuple[str, str]] = dataclasses.field(default_factory=set)

    def missing(self, touched: _State, ignore: set[str]) -> _State:
        return _State(
            {a for a in touched.accounts if a not in self.accounts and a not in ignore},
            {s for s in touched.slots if s not in self.slots},
        )

    def add_prestate(self, trace: Any) -> None:
        """Accounts and slots of a ``prestateTracer`` answer."""
        if not isinstance(trace, dict):
            return
        for address, account in trace.items():
            a = str(address).lower()
            self.accounts.add(a)
            storage = account.get("storage") if isinstance(account, dict) else None
            for slot in storage or {}:
                self.slots.add((a, _slot(slot)))

    def add_access_list(self, answer: Any) -> None:
        """Accounts and slots of an ``eth_createAccessList`` answer."""
        entries = answer.get("accessList") if isinstance(answer, dict) else None
        for entry in entries or []:
            a = str(entry["address"]).lower()
            self.accounts.add(a)
            for slot in entry.get("storageKeys") or []:
                self.slots.add((a, _slot(slot)))

    def __bool__(self) -> bool:
        return bool(self.accounts or self.slots)


def _slot(key: Any) -> str:
    return f"0x{int(str(key), 16):064x}"


def _is_precompile(address: str) -> bool:
    return int(address, 16) <= 0x1FF


async def simulate_warm(
    adapter: EvmChain, legs: SwapLegs, *, budget: int = WARM_MAX_REQUESTS
) -> SimResult:
    """Fetch the state the legs read in a few batched requests, replay them on a local anvil
    with no fork backend; where they read more than was fetched, after ``budget`` requests
    in all, the fork's result is used (state outside the access lists).

    Where the RPC answers ``debug_traceCall`` (prestate tracer, state overrides), each leg's
    prestate comes with its values, the earlier legs' effects (the approval) applied as
    overrides, so the swap's state is known whole; else from access lists, fetched."""
    swap = _call(legs.swap)
    calls = [_unsigned_call(_call(p)) for p in legs.proposals]
    steps = [_read(legs), *calls]
    requests: list[tuple[Any, Any]] = [("eth_getBlockByNumber", ["latest", False])]
    requests += [("eth_createAccessList", [c, "latest"]) for c in steps]
    traced = adapter.has_trace_call is not False
    if traced:
        requests += _traces(calls[0], {}, with_read=len(calls) == 1, legs=legs)
    try:
        first = await adapter.provider.make_batch_request(requests)
        block = result_of(first[0], "eth_getBlockByNumber", adapter.provider.where)
        number = int(str(block["number"]), 16)
        timestamp = int(str(block["timestamp"]), 16)
        base_fee = int(str(block.get("baseFeePerGas", "0x0")), 16)
    except MethodNotFoundError:
        raise SimulationUnavailable(f"{adapter.info.name}: the RPC cannot batch") from None
    except (ChainError, KeyError, TypeError, ValueError) as exc:
        raise SimulationUnavailable(f"{adapter.info.name}: no warm copy: {exc}") from None
    tag = hex(number)
    want = _State({legs.wallet.lower(), *(str(c["to"]).lower() for c in steps)})
    for answer in first[1 : 1 + len(steps)]:
        # NOTE: a leg that reverts on the chain as it is (a swap before its approval) has no
        # access list; the local run finds what it reads.
        if "result" in answer:
            want.add_access_list(answer["result"])
    prestate: _Prestate | None = None
    sent = 1
    if traced:
        try:
            prestate = _Prestate()
            prestate.add(adapter, first[1 + len(steps) :])
            adapter.has_trace_call = True
            for i, call in enumerate(calls[1:], start=1):
                more = _traces(call, prestate.overrides, with_read=i == len(calls) - 1, legs=legs)
                prestate.add(adapter, await adapter.provider.make_batch_request(more))
                sent += 1
        except MethodNotFoundError:
            adapter.has_trace_call, prestate = False, None
        except ChainError as exc:
            raise SimulationUnavailable(f"{adapter.info.name}: no warm copy: {exc}") from None
    tag = hex(number)
    values: list[tuple[str, list[Any]]] = []
    if prestate is not None:
        values, want = prestate.loads(), prestate.state
    async with _warm_node(adapter, number, timestamp, base_fee) as url:
        if prestate is None:
            values = await _fetch(adapter, want, tag)
            sent += 1
        loaded = _State()
        async with httpx.AsyncClient(timeout=60) as client:
            from rebalancer.chains.evm import EvmChain

            local = EvmChain(adapter.info, url, client, retries=1, backoff=0.05, rpc_timeout=None)
            ignore = {str(await local.call("eth_coinbase", [])).lower()}
            while True:
                await _load(local, values)
                loaded.accounts |= want.accounts
                loaded.slots |= want.slots
                snapshot = await local.call("evm_snapshot", [])
                touched = _State()
                try:
                    sim = await _on_node(adapter, url, legs, swap, WARM, touched)
                except SimulationError:
                    sim = None
                want = loaded.missing(touched, ignore)
                want.accounts = {a for a in want.accounts if not _is_precompile(a)}
                if not want:
                    if sim is None:  # it fails with the whole state it reads: say why
                        await local.call("evm_revert", [snapshot])
                        return await _on_node(adapter, url, legs, swap, WARM)
                    return sim
                if sent >= budget:
                    break
                await local.call("evm_revert", [snapshot])
                values = await _fetch(adapter, want, tag)
                sent += 1
    return dataclasses.replace(await simulate_fork(adapter, legs), method=OUTSIDE)


@dataclasses.dataclass
class KeptNode:
    """The warm-copy anvil an adapter keeps for its command: started once, and reverted to
    its empty state (a snapshot) after each trade. ``EvmChain.aclose`` stops it."""

    node: NodeProcess
    lock: asyncio.Lock

    def stop(self) -> None:
        atexit.unregister(self.stop)
        stop_pid(self.node.pid)


@asynccontextmanager
async def _warm_node(
    adapter: EvmChain, number: int, timestamp: int, base_fee: int
) -> AsyncIterator[str]:
    """An empty anvil (no fork backend) at the chain's block number, time and base fee."""
    args = ["--number", str(number), "--timestamp", str(timestamp), "--accounts", "1"]
    args += ["--base-fee", str(base_fee)]
    chain_id = adapter.info.chain_id
    if adapter.work_dir is None:  # no command folder to keep it in: one node per trade
        with _scratch(adapter) as log_dir:
            node = await asyncio.to_thread(
                _start, adapter, "warm", log_dir, chain_id=chain_id, extra=args
            )
            try:
                yield node.url
            finally:
                await asyncio.to_thread(stop_pid, node.pid)
        return
    kept = adapter.warm_node
    reused = kept is not None
    if kept is None:
        node = await asyncio.to_thread(
            _start, adapter, "warm", adapter.work_dir, chain_id=chain_id, extra=args
        )
        kept = adapter.warm_node = KeptNode(node, asyncio.Lock())
        # NOTE: a caller that never closes its adapter (aclose) still leaves no node behind.
        atexit.register(kept.stop)
    async with kept.lock, httpx.AsyncClient(timeout=60) as client:
        from rebalancer.chains.evm import EvmChain

        local = EvmChain(
            adapter.info, kept.node.url, client, retries=1, backoff=0.05, rpc_timeout=None
        )
        empty = await local.call("evm_snapshot", [])
        try:
            if reused:  # the block a fresh node would mine next (an empty parent: 7/8 its fee)
                with suppress(ChainError):
                    await local.call("evm_setNextBlockTimestamp", [timestamp + 1])
                await local.call("anvil_setNextBlockBaseFeePerGas", [hex(base_fee * 7 // 8)])
            yield kept.node.url
        finally:
            await local.call("evm_revert", [empty])


def _traces(
    call: dict[str, str], overrides: dict[str, Any], *, with_read: bool, legs: SwapLegs
) -> list[tuple[Any, Any]]:
    """A leg's prestate (values) and its state diff (the overrides for the next leg)."""
    base: dict[str, Any] = {"tracer": "prestateTracer"}
    if overrides:
        base["stateOverrides"] = overrides
    diff = {**base, "tracerConfig": {"diffMode": True}}
    out: list[tuple[Any, Any]] = [
        ("debug_traceCall", [call, "latest", base]),
        ("debug_traceCall", [call, "latest", diff]),
    ]
    if with_read:
        out.append(("debug_traceCall", [_read(legs), "latest", base]))
    return out


@dataclasses.dataclass
class _Prestate:
    """The accounts and slots the legs read, with their values on the chain (the first value
    seen wins: later legs see the earlier ones' effects as overrides)."""

    accounts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    slots: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, adapter: EvmChain, answers: list[Any]) -> None:
        where = adapter.provider.where
        got = [result_of(a, "debug_traceCall", where) for a in answers]
        for i, trace in enumerate(got):
            if i == 1:  # the diff: what this leg changed, applied to the next
                for address, post in (trace.get("post") or {}).items():
                    o = self.overrides.setdefault(str(address).lower(), {})
                    for key in ("balance", "nonce", "code"):
                        if key in post:
                            value = post[key]
                            o[key] = hex(value) if isinstance(value, int) else value
                    o.setdefault("stateDiff", {}).update(
                        {_slot(k): _slot(v) for k, v in (post.get("storage") or {}).items()}
                    )
                continue
            for address, account in trace.items():
                a = str(address).lower()
                self.accounts.setdefault(a, account)
                for k, v in (account.get("storage") or {}).items():
                    self.slots.setdefault((a, _slot(k)), _slot(v))

    @property
    def state(self) -> _State:
        return _State(set(self.accounts), set(self.slots))

    def loads(self) -> list[tuple[str, list[Any]]]:
        loads: list[tuple[str, list[Any]]] = []
        for a, account in self.accounts.items():
            if account.get("code") not in (None, "0x", ""):
                loads.append(("anvil_setCode", [a, account["code"]]))
            for key, method in (("balance", "anvil_setBalance"), ("nonce", "anvil_setNonce")):
                value = account.get(key, 0)
                loads.append((method, [a, hex(value) if isinstance(value, int) else value]))
        loads += [("anvil_setStorageAt", [a, s, v]) for (a, s), v in self.slots.items()]
        return loads


async def _fetch(adapter: EvmChain, want: _State, block: str) -> list[tuple[str, list[Any]]]:
    """Every account (code, balance, nonce) and slot of ``want`` in one batched request, as
    the ``anvil_set*`` calls that load them."""
    accounts = sorted(want.accounts)
    slots = sorted(want.slots)
    requests: list[tuple[Any, Any]] = []
    for a in accounts:
        requests += [
            ("eth_getCode", [a, block]),
            ("eth_getBalance", [a, block]),
            ("eth_getTransactionCount", [a, block]),
        ]
    requests += [("eth_getStorageAt", [a, s, block]) for a, s in slots]
    try:
        answers = await adapter.provider.make_batch_request(requests)
        where = adapter.provider.where
        got = [result_of(r, m, where) for r, (m, _) in zip(answers, requests, strict=True)]
    except ChainError as exc:
        raise SimulationUnavailable(f"{adapter.info.name}: no warm copy: {exc.message}") from None
    loads: list[tuple[str, list[Any]]] = []
    for i, a in enumerate(accounts):
        code, balance, nonce = got[3 * i : 3 * i + 3]
        if str(code) not in ("0x", ""):
            loads.append(("anvil_setCode", [a, code]))
        loads.append(("anvil_setBalance", [a, balance]))
        loads.append(("anvil_setNonce", [a, nonce]))
    for (a, s), value in zip(slots, got[3 * len(accounts) :], strict=True):
        loads.append(("anvil_setStorageAt", [a, s, _slot(value)]))
    return loads


async def _load(local: EvmChain, loads: list[tuple[str, list[Any]]]) -> None:
    if not loads:
        return
    answers = await local.provider.make_batch_request(loads)
    for answer, (method, _) in zip(answers, loads, strict=True):
        result_of(answer, method, local.provider.where)


async def _on_node(
    adapter: EvmChain,
    url: str,
    legs: SwapLegs,
    swap: EvmCall,
    method: str,
    touched: _State | None = None,
) -> SimResult:
    """Run the legs on a node (a fork or the warm copy) as the wallet; with ``touched``,
    collect every account and slot they read (prestate traces)."""
    from rebalancer.chains.evm import EvmChain

    chain = adapter.info.name
    where = "the fork" if method == FORK else "the local copy"
    async with httpx.AsyncClient(timeout=60) as client:
        fork = EvmChain(adapter.info, url, client, retries=1, backoff=0.05, rpc_timeout=None)

        async def read() -> int:
            call = _read(legs)
            if touched is not None:
                trace = ["latest", {"tracer": "prestateTracer"}]
                touched.add_prestate(await fork.call("debug_traceCall", [call, *trace]))
            return int(str(await fork.call("eth_call", [call, "latest"])), 16)

        async def run(tx: EvmCall) -> dict[str, Any]:
            r = await _run(fork, tx)
            if touched is not None:
                tracer = {"tracer": "prestateTracer"}
                trace = await fork.call("debug_traceTransaction", [r["transactionHash"], tracer])
                touched.add_prestate(trace)
            return r

        await fork.call("anvil_impersonateAccount", [legs.wallet])
        approval_gas = reset_gas = 0
        for what, leg in (("approval reset", legs.approval_reset), ("approval", legs.approval)):
            if leg is None:
                continue
            call = _call(leg)
            try:
                returned = await fork.call("eth_call", [_unsigned_call(call), "latest"])
            except ChainError:
                returned = None
            r = await run(call)
            if returned is None or int(r["status"], 16) != 1:
                raise SimulationError(f"{chain}: the {what} reverts on {where}")
            _approve_returned(chain, what, legs.sell, str(returned))
            if leg is legs.approval:
                approval_gas = int(r["gasUsed"], 16)
            else:
                reset_gas = int(r["gasUsed"], 16)
        before = await read()
        r = await run(swap)
        if int(r["status"], 16) != 1:
            raise SimulationError(
                f"{chain}: the swap {legs.sell.symbol} -> {legs.buy.symbol} reverts on "
                f"{where} (price moved past minReturn, or the route is broken)"
            )
        after = await read()
        gas = int(r["gasUsed"], 16)
        gained = after - before
        if legs.buy.is_native:  # the wallet paid the gas in the coin it bought
            gained += gas * int(r.get("effectiveGasPrice", "0x0"), 16)
        return SimResult(method, gained, gas, approval_gas, reset_gas)


def _read(legs: SwapLegs) -> dict[str, str]:
    """The wallet's balance of what it buys, as a call from the wallet."""
    return {"from": legs.wallet, **_balance_call(legs.wallet, legs.buy)}


def _approve_returned(chain: str, what: str, token: Token, data: str) -> None:
    """An ``approve`` must return true; a token known to return nothing (mainnet USDT) may
    return no data at all, and its success is the call not reverting."""
    raw = data.removeprefix("0x")
    if not raw and TokenQuirk.NO_RETURN_DATA in token.quirks:
        return
    if len(raw) != 64 or int(raw, 16) != 1:
        shown = "no data" if not raw else f"0x{raw[:64]}"
        raise SimulationError(
            f"{chain}: the {what} of {token.symbol} returned {shown}, not true: the token may "
            "not have approved (only tokens known to return nothing may, registry quirk "
            "no-return-data)"
        )


def _balance_call(wallet: str, token: Token) -> dict[str, str]:
    """A read of ``wallet``'s balance as a call (the native coin through Multicall3)."""
    from rebalancer.chains.multicall import BALANCE_OF, GET_ETH_BALANCE, MULTICALL3, address_arg

    if token.address is None:
        return {"to": MULTICALL3, "data": "0x" + (GET_ETH_BALANCE + address_arg(wallet)).hex()}
    return {"to": str(token.address), "data": "0x" + (BALANCE_OF + address_arg(wallet)).hex()}


def _unsigned_call(tx: EvmCall) -> dict[str, str]:
    """A proposed call as its sender would send it unsigned (fork) or simulate it (RPC)."""
    return {
        "from": tx.sender,
        "to": tx.to,
        "data": "0x" + tx.data.hex(),
        "value": hex(tx.value),
        "gas": hex(max(tx.gas, 1_000_000)),
    }


async def simulate_rpc(adapter: EvmChain, legs: SwapLegs) -> SimResult:
    """``eth_simulateV1`` on the chain's RPC: one simulated block holding a balance read, the
    approval, the swap and a second balance read, state carried from call to call."""
    chain = adapter.info.name
    read = _read(legs)
    calls = [read, *(_unsigned_call(_call(p)) for p in legs.proposals), read]
    try:
        blocks = await adapter.call(
            "eth_simulateV1",
            [{"blockStateCalls": [{"calls": calls}], "validation": False}, "latest"],
        )
    except MethodNotFoundError:
        raise SimulationUnavailable(f"{chain}: the RPC has no eth_simulateV1") from None
    except ChainError as exc:
        raise SimulationError(f"{chain}: eth_simulateV1 failed: {exc.message}") from None
    try:
        results = blocks[0]["calls"]
        statuses = [int(str(r["status"]), 16) for r in results]
        before = int(str(results[0]["returnData"]), 16)
        after = int(str(results[-1]["returnData"]), 16)
        gas = int(str(results[-2]["gasUsed"]), 16)
        firsts = [leg for leg in (legs.approval_reset, legs.approval) if leg is not None]
        middle = results[1:-2]  # the approvals, between the first read and the swap
        used = dict(zip(map(id, firsts), (int(str(r["gasUsed"]), 16) for r in middle), strict=True))
        returned = [str(r.get("returnData", "0x")) for r in middle]
        approval_gas = used.get(id(legs.approval), 0)
        reset_gas = used.get(id(legs.approval_reset), 0)
    except (KeyError, IndexError, TypeError, ValueError):
        raise SimulationError(f"{chain}: eth_simulateV1 answered malformed") from None
    if not all(statuses):
        raise SimulationError(
            f"{chain}: the swap {legs.sell.symbol} -> {legs.buy.symbol} reverts in "
            "eth_simulateV1 (price moved past minReturn, or the route is broken)"
        )
    for leg, data in zip(firsts, returned, strict=True):
        what = "approval" if leg is legs.approval else "approval reset"
        _approve_returned(chain, what, legs.sell, data)
    return SimResult("eth_simulateV1", after - before, gas, approval_gas, reset_gas)


async def _run(fork: EvmChain, tx: EvmCall) -> dict[str, Any]:
    """Send an unsigned transaction as its (impersonated) sender and wait for its receipt."""
    tx_hash = await fork.call("eth_sendTransaction", [_unsigned_call(tx)])
    for _ in range(2000):
        receipt = await fork.receipt(str(tx_hash))
        if receipt is not None:
            return receipt
        await asyncio.sleep(0.005)
    raise SimulationError("the fork did not mine the simulated transaction")
