"""A local Solana node: JSON-RPC over HTTP on 127.0.0.1, backed by solders' LiteSVM.

``solana-test-validator`` cannot be installed here, so this node serves what wallets, swappers
and the unmodified solana-py ``AsyncClient`` use, with a validator's JSON shapes and the
semantics that matter for money:

- slots advance with wall time (``--slot-ms``, 400 like mainnet); each slot has a blockhash;
  a blockhash is valid for 150 slots (``lastValidBlockHeight``) and then a transaction using
  it is refused with ``BlockhashNotFound``. LiteSVM only knows one blockhash, so its own check
  is off and this node keeps the window;
- a transaction that landed (even with an instruction error) cannot land again
  (``AlreadyProcessed``); preflight failures answer -32002 with the simulation as ``data``;
- the world is forked from account snapshots (``--snapshot``, see ``localnet.solana_snapshot``).

Not modelled: commitment levels (every landed transaction is ``finalized`` at once; all
commitments are accepted and answer the same slot), skipped slots, leader schedule, rewards,
websockets, durable nonces.

One concept per module:

    rpc           JSON-RPC envelope, errors, shared parameter parsing
    clock         slots, blockhash window, block times (and the methods that read them)
    accounts      accounts as a validator shows them, and the account-reading methods
    token_index   token accounts by owner
    transactions  wire decoding, loaded addresses, fees
    precheck      blockhash age and status-cache checks; TransactionError rendering
    simulate      simulateTransaction, getFeeForMessage
    send          sendTransaction, requestAirdrop
    history       landed transactions by signature, slot and account
    encoding      the ``json`` encoding of transactions and their metadata
    parsed        the ``jsonParsed`` encoding (System, SPL Token, ATA, Memo instructions)
    status        getSignatureStatuses, getTransaction, getSignaturesForAddress
    blocks        getBlock, getBlockTime, getBlocks, getFirstAvailableBlock
    node          the parts assembled; http serves it; cli is ``python -m``

    python -m rebalancer.localnet.solana_node --port 0 --snapshot fixtures/solana/demo.json
"""

from __future__ import annotations

from rebalancer.localnet.solana_node.node import (
    MAINNET_GENESIS_HASH,
    SolanaNode,
    load_accounts,
)
from rebalancer.localnet.solana_node.rpc import RpcError
from rebalancer.localnet.solana_node.transactions import fee_for_message

__all__ = ["MAINNET_GENESIS_HASH", "RpcError", "SolanaNode", "fee_for_message", "load_accounts"]
