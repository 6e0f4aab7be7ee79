// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// A Chainlink-compatible price feed for the local worlds: the read surface of Chainlink's
/// AggregatorV3Interface (decimals, description, version, getRoundData, latestRoundData) over
/// rounds the world's owner pushes. Its runtime code is placed at a feed proxy's real mainnet
/// address with anvil_setCode, so `init` sets what a constructor would. Round ids follow the
/// proxies' scheme, phase << 64 | aggregator round, and an unknown round reverts with
/// "No data present" as a proxy does, so history can be walked back from the latest round.
contract LocalPriceFeed {
    struct Round {
        int256 answer;
        uint64 startedAt;
        uint64 updatedAt;
    }

    address public owner;
    uint8 public decimals;
    uint16 public phaseId;
    uint64 public latestAggregatorRound;
    string public description;
    mapping(uint64 => Round) private rounds;

    error AlreadyInitialised();
    error NotOwner();

    function version() external pure returns (uint256) {
        return 4;
    }

    function init(address owner_, uint8 decimals_, string calldata description_) external {
        if (owner != address(0)) revert AlreadyInitialised();
        owner = owner_;
        decimals = decimals_;
        description = description_;
        phaseId = 1;
    }

    /// A new round with the answer and the times given (the local worlds set their own clock).
    function pushRound(int256 answer, uint64 startedAt, uint64 updatedAt) external {
        if (msg.sender != owner) revert NotOwner();
        latestAggregatorRound += 1;
        rounds[latestAggregatorRound] = Round(answer, startedAt, updatedAt);
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256, uint256, uint256, uint80)
    {
        uint64 aggregatorRound = uint64(roundId);
        Round memory r = rounds[aggregatorRound];
        require(uint16(roundId >> 64) == phaseId && r.updatedAt != 0, "No data present");
        return (roundId, r.answer, r.startedAt, r.updatedAt, roundId);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return getRoundData(uint80((uint256(phaseId) << 64) | latestAggregatorRound));
    }
}
