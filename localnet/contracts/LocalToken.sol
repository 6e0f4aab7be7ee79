// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// An OpenZeppelin v5 ERC-20 whose name, symbol and decimals live in storage set by `init`,
/// so its runtime code can be placed at a token's real mainnet address with anvil_setCode
/// (a constructor never runs there). Only the owner set by `init` can mint: the local
/// world's deployer, which funds pools and demo wallets.
contract LocalToken is ERC20 {
    string private _localName;
    string private _localSymbol;
    uint8 private _localDecimals;
    address public owner;

    error AlreadyInitialised();
    error NotOwner();

    constructor() ERC20("", "") {}

    function init(string calldata name_, string calldata symbol_, uint8 decimals_, address owner_)
        external
    {
        if (owner != address(0)) revert AlreadyInitialised();
        _localName = name_;
        _localSymbol = symbol_;
        _localDecimals = decimals_;
        owner = owner_;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner();
        _mint(to, amount);
    }

    function name() public view override returns (string memory) {
        return _localName;
    }

    function symbol() public view override returns (string memory) {
        return _localSymbol;
    }

    function decimals() public view override returns (uint8) {
        return _localDecimals;
    }
}
