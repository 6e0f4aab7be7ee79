"""One exception tree for the whole tool; each branch maps to one CLI exit code.

    RebalancerError                 1  a bug if it ever escapes un-subclassed
    ├── ConfigError                 2  usage, config or input file: names the field and value
    │   └── WrongChainError            the RPC answers for another chain than the config says
    ├── RefusedError                3  a check said no: policy, simulation, stale plan, bad quote
    │   ├── PolicyError
    │   ├── SimulationError
    │   │   └── SimulationUnavailable  no way to simulate here (no anvil, no eth_simulateV1)
    │   └── SuspiciousResponseError
    │       └── CorruptResponseError   an aggregator's 200 answer is not what it documents
    │                                  (also an AggregatorError: the party failed, and it is
    │                                  refused like any suspicious answer, exit 3)
    ├── ExternalError               4  an outside party failed after retries
    │   ├── ChainError                 node unreachable, erroring, or lying about itself
    │   │   ├── AlreadyKnownError      the node already has this transaction (a re-broadcast)
    │   │   ├── MethodNotFoundError    the node has no such JSON-RPC method (-32601)
    │   │   ├── MalformedAnswerError   the node's 200 answers stayed garbage after retries
    │   │   └── LookupTableError       an address lookup table is missing or not a table
    │   ├── AggregatorError            1inch / Jupiter API
    │   └── DeviceError                hardware wallet missing, locked or answering nonsense
    └── UserRejectedError           5  the user said no, at the prompt or on the device

Third-party exceptions are translated where they enter (``raise ChainError(...) from exc``);
the planner and the engine only ever see this tree. Messages are one line and never carry a
secret: URLs go through ``core.redact.redact_url`` before they are formatted in.
"""

from __future__ import annotations


class RebalancerError(Exception):
    """Root of every error the tool raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RebalancerError):
    """Bad usage, config or input file; the message names the field and the value."""

    exit_code = 2


class WrongChainError(ConfigError):
    """The node at a configured RPC is another chain (a config mistake, caught before any read)."""


class RefusedError(RebalancerError):
    """A safety check refused to go on; nothing was signed or sent."""

    exit_code = 3


class PolicyError(RefusedError):
    """A trade breaks the configured policy (size, slippage, router, price deviation)."""


class SimulationError(RefusedError):
    """A simulation failed or its result is out of bounds."""


class SimulationUnavailable(SimulationError):
    """No way to simulate here (no anvil, RPC cannot be forked, no eth_simulateV1)."""


class SuspiciousResponseError(RefusedError):
    """An aggregator or node answer does not do what was asked."""


class ExternalError(RebalancerError):
    """An outside party (node, API, device) failed or answered garbage, after retries."""

    exit_code = 4


class ChainError(ExternalError):
    """A chain node is unreachable, erroring, or not the chain the config says."""


class AlreadyKnownError(ChainError):
    """The node already holds (or has included) the transaction sent: raised where the node's
    JSON-RPC error enters, so a re-broadcast is recognised by type, not by words."""


class MethodNotFoundError(ChainError):
    """The node does not offer the JSON-RPC method called (code -32601, or "not supported")."""


class MalformedAnswerError(ChainError):
    """A node answered 200 with something that is not a JSON-RPC answer to what was asked (not
    JSON, no result nor error, another id, a result of the wrong type, a short batch), every
    time it was asked: retried like a 5xx first, then this names the node and the method."""


class LookupTableError(ChainError):
    """An address lookup table a transaction names does not exist or is not a lookup table."""


class AggregatorError(ExternalError):
    """A DEX aggregator API failed or answered with an error."""


class CorruptResponseError(SuspiciousResponseError, AggregatorError):
    """An aggregator answered 200 with something that is not its documented answer (no ``tx``,
    garbage): nothing built from it is signed, exit 3."""


class DeviceError(ExternalError):
    """A hardware wallet is missing, locked, on the wrong app, or answered nonsense."""


class UserRejectedError(RebalancerError):
    """The user declined, at the prompt or on the device."""

    exit_code = 5
