"""The portfolio config: one validated tree, loaded once from TOML and passed down.

Secrets never live here: an RPC URL carrying a key is given as ``env:VARNAME`` and resolved
from the environment by the CLI; ``localnet:NAME`` points at a local world's manifest.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from rebalancer.core.errors import ConfigError
from rebalancer.core.types import DEFAULT_RPC_TIMEOUT_S, EvmSimulation
from rebalancer.planner.config import StrategyConfig, TradeLimits


def _bounded_price(p: Decimal) -> Decimal:
    """A [prices] entry within ``core.bounds`` (above 0, at most $10^9 per token)."""
    from rebalancer.core import bounds

    try:
        return bounds.price(p, "price")
    except ConfigError as exc:
        raise ValueError(exc.message.split(": ", 1)[-1]) from None


class ChainConfig(BaseModel):
    """One chain to read and trade on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc: str
    """Where the node is: an http(s) URL, ``env:VAR`` (URL in that environment variable, for
    URLs with API keys), or ``localnet:NAME`` (a world started by ``rebalancer localnet up``)."""

    tokens: list[str] | None = None
    """Token symbols to read on this chain; default: every registry token of the chain."""

    aggregator: str | None = None
    """The aggregator that quotes and builds this chain's swaps (a key of ``[aggregators]``);
    default: ``DEFAULT_AGGREGATOR`` of the chain's family (1inch on EVM, Jupiter on Solana)."""

    send_rpc: str | None = None
    """Where signed transactions are sent instead of ``rpc`` (a private-mempool RPC on
    Ethereum, a landing endpoint on Solana): an http(s) URL, ``env:VAR`` or ``localnet:NAME``.
    Reads, simulations and receipts stay on ``rpc``. Default: send through ``rpc``."""

    rpc_timeout: float = Field(default=DEFAULT_RPC_TIMEOUT_S, gt=0, le=600)
    """Seconds one JSON-RPC call to ``rpc`` or ``send_rpc`` may take in all: connecting,
    reading, every retry of a timeout, 5xx or garbled answer, and the backoff between them.
    A node that does not answer within it is exit 4; a send whose answer was lost is settled
    from its journalled signature, never signed again."""

    @field_validator("rpc", "send_rpc")
    @classmethod
    def _rpc_form(cls, v: str | None) -> str | None:
        if v is None or v.startswith(("http://", "https://", "env:", "localnet:")):
            return v
        raise ValueError("must start with http://, https://, env: or localnet:")


class SignerConfig(BaseModel):
    """How a wallet signs: a local key file or a Ledger. Secrets stay out of this file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["keyfile", "ledger"]
    """``keyfile`` (EVM keystore v3 or Solana keypair file) or ``ledger``."""

    file: str | None = None
    """keyfile: the key file's path."""

    passphrase_env: str | None = None
    """keyfile: the environment variable holding the passphrase (else an interactive prompt)."""

    path: str | None = None
    """ledger: BIP32 path (default m/44'/60'/0'/0/0 on EVM, m/44'/501'/0'/0' on Solana)."""

    transport: str = "hid"
    """ledger: ``hid`` (USB) or ``tcp://HOST:PORT`` (Speculos framing, e.g. an emulator)."""


class WalletConfig(BaseModel):
    """A self-custodied wallet: its public address and the chains it holds funds on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """A short label shown in tables and plans."""

    address: str
    """EVM address (EIP-55 checksummed or all one case) or Solana public key (base58)."""

    chains: list[str] = Field(min_length=1)
    """Chains this address is used on, e.g. ``["ethereum", "avalanche"]``."""

    signer: SignerConfig | None = None
    """How to sign for this wallet; without one the wallet is read-only (plans, no trades)."""


class AggregatorConfig(BaseModel):
    """Where an aggregator API is and which environment variable holds its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    """The API's base URL (``https://…``), or ``localnet:NAME`` for a local stand-in."""

    api_key_env: str | None = None
    """The environment variable holding the API key (sent as a header, never shown)."""

    api: str | None = None
    """The API version, replacing the ``/swap/vX`` end of ``base_url`` (appended if it has
    none): ``v6.1`` (default) or ``v6.0`` for 1inch, ``v2`` (default) or ``v1`` for Jupiter.
    Unset: ``base_url`` as written."""

    mode: Literal["build", "order"] | None = None
    """Jupiter v2: ``build`` (default) takes the quote and raw instructions from ``GET /build``
    and compiles the transaction here (compute-unit limit from the simulation, priority fee
    from ``getRecentPrioritizationFees`` within ``policy.max_priority_fee_lamports``);
    ``order`` takes Jupiter's ready transaction from ``GET /order`` and lands it through
    ``POST /execute``. Both are held to the same checks and simulation. Ignored on v1."""


DEFAULT_AGGREGATOR: dict[str, str] = {"evm": "1inch", "solana": "jupiter"}
"""Chain family -> the aggregator a chain of it trades through unless ``[chains.X] aggregator``
says otherwise."""


def _default_aggregators() -> dict[str, AggregatorConfig]:
    return {
        "1inch": AggregatorConfig(
            base_url="https://api.1inch.com/swap/v6.1", api_key_env="ONEINCH_API_KEY"
        ),
        "jupiter": AggregatorConfig(
            base_url="https://api.jup.ag/swap/v2", api_key_env="JUPITER_API_KEY"
        ),
    }


class PolicyConfig(BaseModel):
    """What a trade must satisfy before anything is signed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_slippage_bps: int = Field(default=100, ge=1, le=1000)
    """Slippage limit: a swap's guaranteed minimum may be at most this far below its quote."""

    max_price_deviation_pct: Decimal = Field(default=Decimal(3), gt=0, le=50)
    """A quote (and a simulation) may differ at most this much from the planner's independent
    price for the same trade."""

    max_trade_usd: Decimal = Field(default=Decimal(50_000), gt=0)
    """The largest single trade, in USD at the planner's prices."""

    max_run_usd: Decimal = Field(default=Decimal(250_000), gt=0)
    """The most one run may trade in total, in USD."""

    max_fee_pct: Decimal = Field(default=Decimal(2), gt=0, le=100)
    """EVM: the most a trade's network fee (simulated gas of approval and swap at the max fee
    per gas, valued at the [prices] of the native coin) may be, in percent of its value."""

    require_simulation: bool = True
    """Refuse a trade that could not be simulated (no anvil, RPC cannot be forked)."""

    evm_simulation: EvmSimulation = EvmSimulation.AUTO
    """How EVM trades are simulated: ``auto`` (``eth_simulateV1`` where the RPC has it, probed
    once per chain; else a warm local copy of the state the trade reads; else an anvil fork),
    or one of ``eth_simulateV1``, ``warm``, ``fork``."""

    unlimited_approval: bool = False
    """Approve the router for unlimited amounts (default: exactly each trade's amount)."""

    extra_routers: dict[str, list[str]] = Field(default_factory=dict)
    """More EVM routers to allow, by chain name (the real 1inch v6 router is always allowed)."""

    extra_programs: list[str] = Field(default_factory=list)
    """More Solana programs to allow beyond System, Token, Token-2022, ATA, Compute Budget
    and Jupiter v6."""

    rfq_makers: list[str] = Field(default_factory=list)
    """Solana RFQ market makers allowed to co-sign a swap."""

    max_compute_units: int = Field(default=1_400_000, ge=1)
    """Solana: the most compute units a swap may request."""

    max_priority_fee_lamports: int = Field(default=1_000_000, ge=0)
    """Solana: the most a swap may pay as priority fee, in lamports (0.001 SOL)."""

    max_plan_age_s: int = Field(default=900, ge=1)
    """``apply`` refuses a plan older than this (seconds)."""

    on_refusal: Literal["continue", "stop"] = "continue"
    """When one trade is refused: go on with the rest of the plan, or stop the run."""

    allow_single_price_source: bool = False
    """Value a held asset with one live price source when the other is unavailable (an oracle
    unreachable, stale or missing, or no quote). Default: refuse (exit 3); two independent
    sources must agree."""


class OracleConfig(BaseModel):
    """The chains' own price oracles (Chainlink, Pyth), read with every balance refresh."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Read the feeds of chains/data/oracles.toml with the balances (same request)."""

    max_age_s: int | None = Field(default=None, ge=1)
    """A reading older than this is stale and not used; default: each feed's heartbeat (from
    chains/data/oracles.toml) plus ``grace_s``."""

    grace_s: int = Field(default=60, ge=0)
    """Added to a feed's heartbeat before its reading counts as stale."""

    max_confidence_pct: Decimal = Field(default=Decimal(1), gt=0, le=100)
    """A Pyth price whose confidence interval is wider than this share of the price is not
    used."""


class NotifyConfig(BaseModel):
    """Where ``watch`` tells a person what happened: a generic JSON webhook, Telegram, Discord,
    Slack, ntfy (any together). Every token and URL comes from the environment variable named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_env: str | None = None
    """The environment variable holding the webhook URL (URLs often carry a token)."""

    telegram_token_env: str | None = None
    """Telegram: the environment variable holding the bot token (from @BotFather)."""

    telegram_chat_env: str | None = None
    """Telegram: the environment variable holding the chat id to post to."""

    telegram_api_url: str = "https://api.telegram.org"
    """Telegram: the Bot API's base URL (a local stand-in in tests)."""

    discord_webhook_env: str | None = None
    """Discord: the environment variable holding the channel's webhook URL."""

    slack_webhook_env: str | None = None
    """Slack: the environment variable holding the incoming-webhook URL."""

    ntfy_url_env: str | None = None
    """ntfy: the environment variable holding the topic URL (https://ntfy.sh/TOPIC; the topic
    name is the secret)."""

    ntfy_token_env: str | None = None
    """ntfy: the environment variable holding an access token, for a protected topic."""


class Config(BaseModel):
    """The whole portfolio config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chains: dict[str, ChainConfig]
    """Chains by name (``ethereum``, ``avalanche``, ``solana``)."""

    wallets: list[WalletConfig] = Field(min_length=1)
    """Wallets to read and rebalance."""

    tokens: list[dict[str, Any]] = Field(default_factory=list)
    """Extra tokens: tables of chain, symbol, asset, address, decimals (+ class for a new asset)."""

    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    """Targets and bands."""

    prices: dict[str, Annotated[Decimal, AfterValidator(_bounded_price)]] = Field(
        default_factory=dict
    )
    """Manual prices in USD per unit, an explicit override: an asset listed here is valued at
    this price instead of the live ones (offline planning, assets without any feed); bounded
    like every price read from outside (``core.bounds``)."""

    price_check: Literal["off", "quotes"] | None = None
    """``quotes``: quote each asset (about $1,000 of it) into USDC through the aggregators, the
    second source beside the oracles; a manual price or an oracle that differs from the quote
    by more than ``strategy.price_max_deviation_pct`` refuses (exit 3). ``off``: no quotes.
    Default: quotes whenever a held asset has no ``[prices]`` entry."""

    oracles: OracleConfig = Field(default_factory=OracleConfig)
    """The on-chain price feeds and when a reading is not used."""

    aggregators: dict[str, AggregatorConfig] = Field(default_factory=_default_aggregators)
    """``1inch`` (EVM chains) and ``jupiter`` (Solana)."""

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    """The checks every trade must pass before it is signed."""

    journal: str | None = None
    """The SQLite journal's path (default: the user's data folder)."""

    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    """Notifications after each run."""

    def trade_limits(self) -> TradeLimits:
        """The policy's size limits as the planner takes them: it plans within them (slices
        under ``max_trade_usd``, the run within ``max_run_usd``) instead of the engine refusing
        what it planned."""
        return TradeLimits(
            max_trade_usd=self.policy.max_trade_usd, max_run_usd=self.policy.max_run_usd
        )


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """One line naming the first bad field and its value."""
    err = exc.errors()[0]
    loc = err["loc"]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    value: Any = data
    try:
        for part in loc:
            value = value[part]
        shown = f" = {value!r}"
    except (KeyError, IndexError, TypeError):
        shown = ""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{path}: missing"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field"
    return f"{path}{shown}: {msg}"


def load_config(path: str | Path) -> tuple[Config, Any]:
    """Read and validate ``path``; return the config and the registry with the user's tokens.

    Every problem becomes a one-line ConfigError naming the field and value.
    """
    from rebalancer.chains.addresses import normalise
    from rebalancer.chains.registry import Registry

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} not found (use -c FILE)") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {p.name}: {_describe(exc, data)}") from None
    if config.strategy.min_trade_usd > config.policy.max_trade_usd:
        raise ConfigError(
            f"config {p.name}: strategy.min_trade_usd = {config.strategy.min_trade_usd} is above "
            f"policy.max_trade_usd = {config.policy.max_trade_usd}: no trade could be made"
        )

    registry = Registry.load(config.tokens)
    for name, chain in config.chains.items():
        if name not in registry.chains:
            known = ", ".join(registry.chains)
            raise ConfigError(f"config {p.name}: chains.{name}: unknown chain (known: {known})")
        for symbol in chain.tokens or []:
            if registry.by_symbol(name, symbol) is None:
                raise ConfigError(
                    f"config {p.name}: chains.{name}.tokens: unknown token {symbol!r} on {name}"
                )
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    wallets = []
    for i, w in enumerate(config.wallets):
        if w.name in names:
            raise ConfigError(f"config {p.name}: wallets[{i}].name = {w.name!r}: duplicate wallet")
        names.add(w.name)
        families = set()
        for chain_name in w.chains:
            if chain_name not in config.chains:
                raise ConfigError(
                    f"config {p.name}: wallets[{i}].chains: {chain_name!r} is not configured "
                    f"under [chains]"
                )
            families.add(registry.chains[chain_name].family)
        if len(families) > 1:
            raise ConfigError(
                f"config {p.name}: wallets[{i}].chains: mixes EVM and Solana chains; "
                "use one wallet entry per address"
            )
        address = normalise(families.pop(), w.address, f"config {p.name}: wallets[{i}].address")
        for chain_name in w.chains:
            if (chain_name, address.lower()) in seen:
                raise ConfigError(
                    f"config {p.name}: wallets[{i}].address = {w.address!r}: duplicate wallet "
                    f"on {chain_name}"
                )
            seen.add((chain_name, address.lower()))
        wallets.append(w.model_copy(update={"address": address}))
    from rebalancer.planner.model import validate_all

    try:
        validate_all(config.strategy, registry)
    except ConfigError as exc:
        raise ConfigError(f"config {p.name}: {exc.message}") from None

    # NOTE: relative paths in a config (journal, key files) are relative to the config file,
    # so a config works from any current folder.
    base = p.resolve().parent

    def here(path: str | None) -> str | None:
        if path is None or path.startswith("~") or Path(path).is_absolute():
            return path
        return str(base / path)

    wallets = [
        w.model_copy(update={"signer": w.signer.model_copy(update={"file": here(w.signer.file)})})
        if w.signer is not None and w.signer.file
        else w
        for w in wallets
    ]
    return config.model_copy(update={"wallets": wallets, "journal": here(config.journal)}), registry
