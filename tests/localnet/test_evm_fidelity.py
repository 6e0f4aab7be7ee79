"""The local EVM worlds as a client that knows mainnet sees them, over raw JSON-RPC (cast is not
installed here): Uniswap's factories, routers and quoter answer at their real addresses, pools
sit where CREATE2 from the real factories puts them (the same addresses as on mainnet), and
USDT behaves as mainnet's TetherToken (no return data, approve only from zero)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from rebalancer.chains.registry import Registry
from rebalancer.core.types import TokenQuirk
from rebalancer.localnet.rpc import calldata
from rebalancer.localnet.worlds import UNISWAP
from tests.conftest import rpc_call

V2_PAIR_INIT_HASH = "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
V3_POOL_INIT_HASH = "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
# Real pools, each named by public sources (Uniswap docs, explorers' pages quoted in
# public code): the local worlds must hold a pool at exactly these addresses.
MAINNET_POOLS = {
    ("ethereum", "v3", "USDC", "WETH", 500): "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    ("ethereum", "v3", "WBTC", "WETH", 3000): "0xCBCdF9626bC03E24f779434178A73a0B4bad62eD",
    ("ethereum", "v3", "UNI", "WETH", 3000): "0x1d42064Fc4Beb5F8aAF85F4617AE8b3b5B8Bd801",
    ("ethereum", "v2", "USDC", "WETH", 3000): "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc",
    ("avalanche", "v3", "WAVAX", "USDC", 500): "0xfAe3f424a0a47706811521E3ee268f00cFb5c45E",
    ("avalanche", "v3", "USDt", "USDC", 100): "0x804226cA4EDb38e7eF56D16d16E92dc3223347A0",
    ("avalanche", "v3", "BTC.b", "USDC", 3000): "0xD1356d360F37932059E5b89b7992692aA234EDA6",
}
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
HOLDER = "0x000000000000000000000000000000000000bEEF"
SPENDER = "0x111111125421cA6dc452d289314280a0f8842A65"


def eth_call(url: str, to: str, signature: str, *args: Any, sender: str = HOLDER) -> Any:
    """An eth_call as ``sender``; the raw JSON-RPC answer (result or error)."""
    import httpx

    tx = {"from": sender, "to": to, "data": calldata(signature, *args)}
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [tx, "latest"]}
    return httpx.post(url, json=body, timeout=10).json()


def address_of(url: str, to: str, signature: str, *args: Any) -> str:
    out = eth_call(url, to, signature, *args)["result"]
    return str(to_checksum_address("0x" + out[-40:]))


def send(url: str, sender: str, to: str, signature: str, *args: Any) -> dict[str, Any]:
    """Send as an unlocked or impersonated account; the receipt."""
    rpc_call(url, "anvil_impersonateAccount", sender)
    tx = {"from": sender, "to": to, "data": calldata(signature, *args), "gas": hex(200_000)}
    tx_hash = rpc_call(url, "eth_sendTransaction", tx)
    receipt: dict[str, Any] = rpc_call(url, "eth_getTransactionReceipt", tx_hash)
    return receipt


def create2(factory: str, salt: bytes, init_hash: str) -> str:
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + bytes.fromhex(init_hash))
    return str(to_checksum_address(raw[12:]))


@pytest.mark.parametrize("chain", ["ethereum", "avalanche"])
def test_uniswap_answers_at_its_real_addresses(
    chain: str, evm_worlds: dict[str, Any], world_info: dict[str, Any]
) -> None:
    url, info, real = evm_worlds[chain]["url"], world_info[chain], UNISWAP[chain]
    wrapped = info["tokens"]["WETH" if chain == "ethereum" else "WAVAX"]
    for name, address in real.items():
        assert info["contracts"][name] == address
        assert rpc_call(url, "eth_getCode", address, "latest") != "0x", name
    v2, v3 = real["UniswapV2Factory"], real["UniswapV3Factory"]
    assert address_of(url, real["UniswapV2Router02"], "factory()") == v2
    assert address_of(url, real["UniswapV2Router02"], "WETH()") == wrapped
    assert address_of(url, real["QuoterV2"], "factory()") == v3
    assert address_of(url, real["NonfungiblePositionManager"], "factory()") == v3
    assert address_of(url, info["contracts"]["SwapRouter"], "factory()") == v3
    assert address_of(url, v3, "owner()") == DEPLOYER
    fee_100 = eth_call(url, v3, "feeAmountTickSpacing(uint24)", 100)["result"]
    assert int(fee_100, 16) == 1
    # The position NFT kept its constructor's storage when it moved.
    name = eth_call(url, real["NonfungiblePositionManager"], "name()")["result"]
    assert decode(["string"], bytes.fromhex(name[2:]))[0] == "Uniswap V3 Positions NFT-V1"
    # A quote through the real QuoterV2 address.
    usdc = info["tokens"]["USDC"]
    quote = eth_call(
        url,
        real["QuoterV2"],
        "quoteExactInputSingle((address,address,uint256,uint24,uint160))",
        (usdc, wrapped, 1000 * 10**6, 500, 0),
    )["result"]
    assert int(quote[2:66], 16) > 0


@pytest.mark.parametrize("chain", ["ethereum", "avalanche"])
def test_every_pool_is_where_create2_from_the_real_factory_puts_it(
    chain: str, evm_worlds: dict[str, Any], world_info: dict[str, Any]
) -> None:
    url, info, real = evm_worlds[chain]["url"], world_info[chain], UNISWAP[chain]
    for pool in info["pools"]:
        t0, t1 = info["tokens"][pool["token0"]], info["tokens"][pool["token1"]]
        if pool["kind"] == "v2":
            found = address_of(url, real["UniswapV2Factory"], "getPair(address,address)", t1, t0)
            salt = keccak(bytes.fromhex(t0[2:]) + bytes.fromhex(t1[2:]))
            computed = create2(real["UniswapV2Factory"], salt, V2_PAIR_INIT_HASH)
        else:
            found = address_of(
                url,
                real["UniswapV3Factory"],
                "getPool(address,address,uint24)",
                t1,
                t0,
                pool["fee"],
            )
            salt = keccak(encode(["address", "address", "uint24"], [t0, t1, pool["fee"]]))
            computed = create2(real["UniswapV3Factory"], salt, V3_POOL_INIT_HASH)
        assert found == computed == pool["address"], pool
    for (c, kind, a, b, fee), address in MAINNET_POOLS.items():
        if c != chain:
            continue
        pools = {
            (p["kind"], p["token0"], p["token1"], p["fee"]): p["address"] for p in info["pools"]
        }
        got = pools.get((kind, a, b, fee)) or pools.get((kind, b, a, fee))
        assert got == address, (kind, a, b, fee)


def test_usdt_behaves_as_mainnet_tether(
    evm_isolated: dict[str, Any], world_info: dict[str, Any]
) -> None:
    url = evm_isolated["ethereum"]["url"]
    usdt = world_info["ethereum"]["tokens"]["USDT"]
    usdc = world_info["ethereum"]["tokens"]["USDC"]
    token = Registry.load().by_symbol("ethereum", "USDT")
    assert token is not None
    assert token.quirks == {TokenQuirk.NO_RETURN_DATA, TokenQuirk.APPROVE_FROM_ZERO}
    assert int(eth_call(url, usdt, "decimals()")["result"], 16) == 6
    rpc_call(url, "anvil_setBalance", HOLDER, hex(10**18))
    for tok in (usdt, usdc):
        assert send(url, DEPLOYER, tok, "mint(address,uint256)", HOLDER, 10**9)["status"] == "0x1"
    # transfer / approve / transferFrom return no data at all; USDC returns a bool.
    assert eth_call(url, usdt, "transfer(address,uint256)", SPENDER, 1)["result"] == "0x"
    assert eth_call(url, usdt, "approve(address,uint256)", SPENDER, 5)["result"] == "0x"
    assert int(eth_call(url, usdc, "transfer(address,uint256)", SPENDER, 1)["result"], 16) == 1
    # approve from zero works; from non-zero to non-zero reverts; to zero and back works.
    assert send(url, HOLDER, usdt, "approve(address,uint256)", SPENDER, 100)["status"] == "0x1"
    again = eth_call(url, usdt, "approve(address,uint256)", SPENDER, 200)
    assert ("error" in again and again["error"]["code"] == 3) or "revert" in str(again)
    assert send(url, HOLDER, usdt, "approve(address,uint256)", SPENDER, 200)["status"] == "0x0"
    assert send(url, HOLDER, usdt, "approve(address,uint256)", SPENDER, 0)["status"] == "0x1"
    assert send(url, HOLDER, usdt, "approve(address,uint256)", SPENDER, 200)["status"] == "0x1"
    left = eth_call(url, usdt, "allowance(address,address)", HOLDER, SPENDER)["result"]
    assert int(left, 16) == 200
    # USDC (a FiatToken behind a proxy on mainnet) has no such rule here or there.
    assert send(url, HOLDER, usdc, "approve(address,uint256)", SPENDER, 100)["status"] == "0x1"
    assert send(url, HOLDER, usdc, "approve(address,uint256)", SPENDER, 200)["status"] == "0x1"
    # transferFrom pulls without returning data and lowers a finite allowance.
    spent = eth_call(
        url, usdt, "transferFrom(address,address,uint256)", HOLDER, SPENDER, 50, sender=SPENDER
    )
    assert spent["result"] == "0x"


@pytest.mark.parametrize("chain", ["ethereum", "avalanche"])
def test_every_registry_token_answers_its_mainnet_decimals(
    chain: str, evm_worlds: dict[str, Any]
) -> None:
    """Decimals are mainnet facts (the registry's sources); each token at its address says so,
    and only tokens with the no-return-data quirk return nothing from ``transfer``."""
    url = evm_worlds[chain]["url"]
    for token in Registry.load().tokens_on(chain):
        if token.address is None:
            continue
        assert int(eth_call(url, token.address, "decimals()")["result"], 16) == token.decimals
        answer = eth_call(url, token.address, "transfer(address,uint256)", SPENDER, 0)["result"]
        no_bool = TokenQuirk.NO_RETURN_DATA in token.quirks
        assert (answer == "0x") == no_bool, token.symbol
