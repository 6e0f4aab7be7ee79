// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The local worlds' arbitrageur: in ONE transaction per simulated step it publishes a new round
/// on every local Chainlink feed (it is their owner while a market runs) and moves every
/// Uniswap pool of the chain to a target price by real swaps paid from its own inventory.
/// V3: a swap with sqrtPriceLimitX96 = target stops exactly there. V2: the input that brings
/// the reserves to the target ratio, computed from the reserves (the 0.3% fee stays in the
/// pool, so the price lands within the fee of the target). Local worlds only.

interface ILocalPriceFeed {
    function pushRound(int256 answer, uint64 startedAt, uint64 updatedAt) external;
}

interface IUniswapV3PoolLike {
    function slot0()
        external
        view
        returns (uint160, int24, uint16, uint16, uint16, uint8, bool);
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(address, bool, int256, uint160, bytes calldata)
        external
        returns (int256, int256);
}

interface IUniswapV2PairLike {
    function getReserves() external view returns (uint112, uint112, uint32);
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(uint256, uint256, address, bytes calldata) external;
}

interface IWETHLike {
    function deposit() external payable;
}

contract LocalArbitrageur {
    struct Feed {
        address feed;
        int256 answer;
    }

    struct Pool {
        address pool;
        uint160 sqrtPriceX96; // target: sqrt(token1 per token0, raw units) * 2**96
        bool v2;
    }

    address public owner;
    address private swapping;

    error NotOwner();
    error AlreadyInitialised();
    error NotThePool();
    error TransferFailed();

    function init(address owner_) external {
        if (owner != address(0)) revert AlreadyInitialised();
        owner = owner_;
    }

    /// Wrap native coin this contract holds into the chain's WETH9 (its inventory of it).
    function wrap(address weth, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner();
        IWETHLike(weth).deposit{value: amount}();
    }

    function step(uint64 at, Feed[] calldata feeds, Pool[] calldata pools) external {
        if (msg.sender != owner) revert NotOwner();
        for (uint256 i = 0; i < feeds.length; i++) {
            ILocalPriceFeed(feeds[i].feed).pushRound(feeds[i].answer, at, at);
        }
        for (uint256 i = 0; i < pools.length; i++) {
            if (pools[i].v2) {
                _moveV2(pools[i].pool, pools[i].sqrtPriceX96);
            } else {
                _moveV3(pools[i].pool, pools[i].sqrtPriceX96);
            }
        }
    }

    function _moveV3(address pool, uint160 target) private {
        (uint160 current,,,,,,) = IUniswapV3PoolLike(pool).slot0();
        if (current == target) return;
        swapping = pool;
        // NOTE: an exact-input amount far above any pool's depth: the price limit ends it.
        IUniswapV3PoolLike(pool).swap(address(this), current > target, int256(1 << 200), target, "");
        swapping = address(0);
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata)
        external
    {
        if (msg.sender != swapping || swapping == address(0)) revert NotThePool();
        if (amount0Delta > 0) {
            _pay(IUniswapV3PoolLike(msg.sender).token0(), msg.sender, uint256(amount0Delta));
        }
        if (amount1Delta > 0) {
            _pay(IUniswapV3PoolLike(msg.sender).token1(), msg.sender, uint256(amount1Delta));
        }
    }

    function _moveV2(address pair, uint160 target) private {
        (uint112 r0, uint112 r1,) = IUniswapV2PairLike(pair).getReserves();
        if (r0 == 0 || r1 == 0) return;
        uint256 rootK = _sqrt(uint256(r0) * uint256(r1));
        // Reserves at the target price with the same k: r0' = sqrt(k) / sqrtP, r1' = sqrt(k) * sqrtP.
        uint256 r0Target = (rootK << 96) / target;
        if (r0Target > r0) {
            uint256 amountIn = ((r0Target - r0) * 1000) / 997;
            uint256 out = _amountOut(amountIn, r0, r1);
            if (amountIn == 0 || out == 0) return;
            _pay(IUniswapV2PairLike(pair).token0(), pair, amountIn);
            IUniswapV2PairLike(pair).swap(0, out, address(this), "");
        } else {
            uint256 r1Target = (rootK * target) >> 96;
            if (r1Target <= r1) return;
            uint256 amountIn = ((r1Target - r1) * 1000) / 997;
            uint256 out = _amountOut(amountIn, r1, r0);
            if (amountIn == 0 || out == 0) return;
            _pay(IUniswapV2PairLike(pair).token1(), pair, amountIn);
            IUniswapV2PairLike(pair).swap(out, 0, address(this), "");
        }
    }

    function _amountOut(uint256 amountIn, uint256 rIn, uint256 rOut) private pure returns (uint256) {
        uint256 withFee = amountIn * 997;
        return (withFee * rOut) / (rIn * 1000 + withFee);
    }

    /// A transfer that accepts tokens returning no bool (mainnet USDT's shape).
    function _pay(address token, address to, uint256 amount) private {
        (bool ok, bytes memory data) =
            token.call(abi.encodeWithSelector(0xa9059cbb, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed();
    }

    function _sqrt(uint256 x) private pure returns (uint256 y) {
        if (x == 0) return 0;
        uint256 z = (x + 1) / 2;
        y = x;
        while (z < y) {
            y = z;
            z = (x / z + z) / 2;
        }
    }
}
