// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The local world's USDT, written here to behave as mainnet's TetherToken at
/// 0xdAC17F958D2ee523a2206206994597C13D831ec7 does where it matters to a client:
/// - `transfer`, `transferFrom` and `approve` return NOTHING (no bool): a caller that
///   decodes a bool from their return data reverts, one that accepts empty data works;
/// - `approve` from a non-zero allowance to another non-zero value reverts: set it to 0
///   first;
/// - an allowance of type(uint256).max is not decreased by `transferFrom`;
/// - `decimals`, `name` and `symbol` are public state (decimals is a uint256 there);
/// - calls with short calldata (the old short-address check) revert.
/// Not modelled: the transfer fee (zero on mainnet), the blacklist, pausing, upgrading to a
/// new contract. Like LocalToken, `init` sets what a constructor would (the runtime code is
/// copied to the real address) and only its owner can mint.
contract LocalTetherToken {
    string public name;
    string public symbol;
    uint256 public decimals;
    uint256 public totalSupply;
    address public owner;

    mapping(address => uint256) private _balances;
    mapping(address => mapping(address => uint256)) private _allowed;

    uint256 private constant MAX_UINT = type(uint256).max;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    modifier onlyPayloadSize(uint256 size) {
        require(msg.data.length >= size + 4);
        _;
    }

    function init(string calldata name_, string calldata symbol_, uint8 decimals_, address owner_)
        external
    {
        require(owner == address(0));
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        owner = owner_;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner);
        totalSupply += amount;
        _balances[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function balanceOf(address who) external view returns (uint256) {
        return _balances[who];
    }

    function allowance(address holder, address spender) external view returns (uint256) {
        return _allowed[holder][spender];
    }

    function transfer(address to, uint256 value) external onlyPayloadSize(2 * 32) {
        _move(msg.sender, to, value);
    }

    function transferFrom(address from, address to, uint256 value)
        external
        onlyPayloadSize(3 * 32)
    {
        uint256 allowed = _allowed[from][msg.sender];
        require(allowed >= value);
        if (allowed < MAX_UINT) {
            _allowed[from][msg.sender] = allowed - value;
        }
        _move(from, to, value);
    }

    function approve(address spender, uint256 value) external onlyPayloadSize(2 * 32) {
        // The rule that makes an exact-amount approval over a leftover allowance revert.
        require(!(value != 0 && _allowed[msg.sender][spender] != 0));
        _allowed[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
    }

    function _move(address from, address to, uint256 value) private {
        require(_balances[from] >= value);
        _balances[from] -= value;
        _balances[to] += value;
        emit Transfer(from, to, value);
    }
}
