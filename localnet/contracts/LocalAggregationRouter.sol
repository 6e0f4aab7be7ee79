// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

interface IWETH is IERC20 {
    function deposit() external payable;
    function withdraw(uint256) external;
}

interface IAggregationExecutor {
    function execute(address msgSender, bytes calldata data) external payable;
}

/// The local world's stand-in for 1inch's AggregationRouterV6, placed at the real router
/// address (0x111111125421cA6dc452d289314280a0f8842A65) with the real `swap` entry point
/// (selector 0x07ed2379, the real SwapDescription), so the tool's router allow-list and its
/// calldata checks run unchanged against it. Like the real router it pulls `amount` of the
/// source token into `srcReceiver`, lets the executor trade, measures what came back, reverts
/// with ReturnAmountIsNotEnough below minReturnAmount, and pays `dstReceiver`.
contract LocalAggregationRouter {
    using SafeERC20 for IERC20;

    struct SwapDescription {
        IERC20 srcToken;
        IERC20 dstToken;
        address payable srcReceiver;
        address payable dstReceiver;
        uint256 amount;
        uint256 minReturnAmount;
        uint256 flags;
    }

    address private constant _ETH = 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE;
    uint256 private constant _PARTIAL_FILL = 1 << 0;
    uint256 private constant _REQUIRES_EXTRA_ETH = 1 << 1;

    IWETH public weth; // storage, not immutable: the runtime code is copied to the real address

    error ZeroMinReturn();
    error SwapWithZeroAmount();
    error InvalidMsgValue();
    error ReturnAmountIsNotEnough(uint256 result, uint256 minReturn);
    error AlreadyInitialised();
    error UnsupportedFlags();

    function init(IWETH weth_) external {
        if (address(weth) != address(0)) revert AlreadyInitialised();
        weth = weth_;
    }

    receive() external payable {}

    function swap(IAggregationExecutor executor, SwapDescription calldata desc, bytes calldata data)
        external
        payable
        returns (uint256 returnAmount, uint256 spentAmount)
    {
        if (desc.minReturnAmount == 0) revert ZeroMinReturn();
        if (desc.amount == 0) revert SwapWithZeroAmount();
        if (desc.flags & (_PARTIAL_FILL | _REQUIRES_EXTRA_ETH) != 0) revert UnsupportedFlags();
        bool srcEth = address(desc.srcToken) == _ETH;
        bool dstEth = address(desc.dstToken) == _ETH;
        if (msg.value != (srcEth ? desc.amount : 0)) revert InvalidMsgValue();

        if (srcEth) {
            weth.deposit{value: msg.value}();
            IERC20(address(weth)).safeTransfer(desc.srcReceiver, desc.amount);
        } else {
            desc.srcToken.safeTransferFrom(msg.sender, desc.srcReceiver, desc.amount);
        }

        IERC20 out = dstEth ? IERC20(address(weth)) : desc.dstToken;
        uint256 before = out.balanceOf(address(this));
        executor.execute(msg.sender, data);
        returnAmount = out.balanceOf(address(this)) - before;
        spentAmount = desc.amount;
        if (returnAmount < desc.minReturnAmount) {
            revert ReturnAmountIsNotEnough(returnAmount, desc.minReturnAmount);
        }

        address payable receiver = desc.dstReceiver == address(0) ? payable(msg.sender) : desc.dstReceiver;
        if (dstEth) {
            weth.withdraw(returnAmount);
            (bool ok,) = receiver.call{value: returnAmount}("");
            require(ok, "ETH transfer failed");
        } else {
            out.safeTransfer(receiver, returnAmount);
        }
    }
}

interface IV3SwapRouter {
    struct ExactInputSingleParams {
        address tokenIn;
        address tokenOut;
        uint24 fee;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
        uint160 sqrtPriceLimitX96;
    }

    function exactInputSingle(ExactInputSingleParams calldata params) external payable returns (uint256);
}

interface IV2Router {
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external returns (uint256[] memory amounts);
}

/// Executes a route the local 1inch stand-in computed: a list of hops through the local
/// Uniswap V2 and V3 pools, each spending all the executor holds of its input token, the
/// last paying the router (msg.sender), which checks the amount against minReturn.
contract LocalExecutor is IAggregationExecutor {
    using SafeERC20 for IERC20;

    struct Hop {
        uint8 kind; // 2 = Uniswap V2, 3 = Uniswap V3
        address tokenIn;
        address tokenOut;
        uint24 fee;
        address router;
    }

    function execute(address, bytes calldata data) external payable {
        Hop[] memory hops = abi.decode(data, (Hop[]));
        for (uint256 i = 0; i < hops.length; i++) {
            Hop memory h = hops[i];
            uint256 amountIn = IERC20(h.tokenIn).balanceOf(address(this));
            IERC20(h.tokenIn).forceApprove(h.router, amountIn);
            address to = i + 1 == hops.length ? msg.sender : address(this);
            if (h.kind == 3) {
                IV3SwapRouter(h.router).exactInputSingle(
                    IV3SwapRouter.ExactInputSingleParams(
                        h.tokenIn, h.tokenOut, h.fee, to, block.timestamp, amountIn, 0, 0
                    )
                );
            } else {
                address[] memory path = new address[](2);
                path[0] = h.tokenIn;
                path[1] = h.tokenOut;
                IV2Router(h.router).swapExactTokensForTokens(amountIn, 0, path, to, block.timestamp);
            }
        }
    }
}
