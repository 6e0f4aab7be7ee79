"""Ledger hardware wallets: the Ethereum and Solana apps, over USB HID or TCP (Speculos framing).

Layers, bottom up:

- a transport moves one APDU and its reply: :class:`TcpTransport` (4-byte length framing, as
  Speculos and ``localnet.ledger_emulator`` speak) or :class:`HidTransport` (64-byte HID reports
  on channel 0x0101, tag 0x05; ``hidapi`` imported only when used);
- :class:`LedgerClient` builds the apps' APDUs (paths, 255-byte chunks, P1/P2 flags), checks
  every reply's length and turns status words into the tool's errors;
- :class:`LedgerEvmSigner` and :class:`LedgerSolanaSigner` satisfy ``wallet.base.Signer``: they
  tell the user what to confirm on the device, run the blocking exchange in a thread, and check
  the returned signature against the expected key before anything is assembled.

Protocol facts: ../shared/reference/ledger.md (app-ethereum ``doc/ethapp.adoc``,
``apdu_constants.h``; app-solana ``doc/api.md``, ``src/apdu.c``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import struct
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import ClassVar, Literal, Protocol, Self

from rebalancer.core.errors import ConfigError, DeviceError, RebalancerError, UserRejectedError
from rebalancer.core.tx import EvmTransaction, SignedEvmTransaction
from rebalancer.core.types import Family
from rebalancer.wallet.base import EvmKey, SolanaKey
from rebalancer.wallet.hd import (
    EVM_DEFAULT_PATH,
    SOLANA_DEFAULT_PATH,
    format_path,
    parse_path,
    serialize_path,
)

log = logging.getLogger(__name__)

AppName = Literal["Ethereum", "Solana"]
Prompt = Callable[[str], None]

CLA = 0xE0
MAX_DATA = 255

# Ethereum app (app-ethereum src/apdu_constants.h)
INS_ETH_GET_ADDRESS = 0x02
INS_ETH_SIGN_TX = 0x04
INS_ETH_GET_CONFIG = 0x06
P1_ETH_FIRST, P1_ETH_MORE = 0x00, 0x80

# Solana app (app-solana src/apdu.h)
INS_SOL_GET_CONFIG = 0x04
INS_SOL_GET_PUBKEY = 0x05
INS_SOL_SIGN_MESSAGE = 0x06
P1_SOL_NON_CONFIRM, P1_SOL_CONFIRM = 0x00, 0x01
P2_SOL_EXTEND, P2_SOL_MORE = 0x01, 0x02

# Any app, and the dashboard (BOLOS): which app is open
CLA_BOLOS, INS_GET_APP_AND_VERSION = 0xB0, 0x01

SW_OK = 0x9000
SW_USER_REJECTED = 0x6985
SW_LOCKED = frozenset({0x6982, 0x5515, 0x6B0C})
SW_WRONG_APP = frozenset({0x6D00, 0x6E00, 0x6E01, 0x6D02, 0x6511})
SW_INVALID_DATA = 0x6A80
SW_SOL_BLIND_SIGNING = 0x6808
_SW_NAMES = {
    0x6700: "wrong length",
    0x6B00: "bad P1/P2",
    0x6501: "transaction type not supported by this app version; update the Ethereum app",
    0x6502: "chain id too large for the app's buffer",
    0x6984: "an app plugin is needed; install it with Ledger Live",
    0x6A81: "invalid message header",
    0x6A82: "invalid message format",
    0x6A83: "invalid message size",
    0x6F00: "unknown error",
}

NATIVE_SYMBOL = {1: "ETH", 43114: "AVAX", 11155111: "ETH", 43113: "AVAX", 31337: "ETH"}
CHAIN_NAME = {1: "Ethereum", 43114: "Avalanche C-Chain", 31337: "local anvil"}


def print_to_stderr(text: str) -> None:
    """Default prompt: tell the person at the device what to check before they press."""
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- transports


class Transport(Protocol):
    """Moves one APDU to the device and returns (reply data, status word).

    ``interactive``: the device shows something and waits for the person (a signature, an
    address to confirm), so the reply may take minutes; anything else answers at once, and a
    device that does not is busy with another client.
    """

    description: str

    def exchange(self, apdu: bytes, *, interactive: bool = False) -> tuple[bytes, int]: ...

    def close(self) -> None: ...


def _recv_exact(sock: socket.socket, n: int, where: str) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise DeviceError(f"Ledger at {where}: connection closed in the middle of a reply")
        buf += chunk
    return bytes(buf)


DEVICE_BUSY = "device busy (another client is connected)"
QUICK_TIMEOUT_S = 10.0
"""How long a request that needs no confirmation (an address, the app's settings) may take."""
REVIEW_TIMEOUT_S = 300.0
"""How long a request the person reviews on the device (a signature) may take."""


class TcpTransport:
    """Speculos' APDU socket: request ``len(4, BE) || apdu``; reply ``len(4) || data || SW(2)``.

    ``reply_timeout`` is long because an interactive reply waits for a person to read and press
    buttons; ``quick_timeout`` is short because anything else is answered at once by a device
    that is not busy with another client.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9999,
        *,
        connect_timeout: float = 3.0,
        reply_timeout: float = REVIEW_TIMEOUT_S,
        quick_timeout: float = QUICK_TIMEOUT_S,
    ) -> None:
        self.host, self.port = host, port
        self.description = f"tcp://{host}:{port}"
        self._connect_timeout, self._reply_timeout = connect_timeout, reply_timeout
        self._quick_timeout = min(quick_timeout, reply_timeout)
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), self._connect_timeout)
            except OSError as exc:
                raise DeviceError(
                    f"no Ledger reachable at {self.description} ({exc.strerror or exc}); "
                    "is Speculos or the emulator running?"
                ) from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def exchange(self, apdu: bytes, *, interactive: bool = False) -> tuple[bytes, int]:
        sock = self._connect()
        timeout = self._reply_timeout if interactive else self._quick_timeout
        sock.settimeout(timeout)
        try:
            sock.sendall(struct.pack(">I", len(apdu)) + apdu)
            (length,) = struct.unpack(">I", _recv_exact(sock, 4, self.description))
            if length > 0x10000:
                raise DeviceError(f"Ledger at {self.description}: absurd reply length {length}")
            body = _recv_exact(sock, length + 2, self.description)
        except TimeoutError:
            self.close()
            if not interactive:
                raise DeviceError(
                    f"Ledger at {self.description}: {DEVICE_BUSY}: no answer within "
                    f"{timeout:g}s to a request that needs no confirmation"
                ) from None
            raise DeviceError(
                f"Ledger at {self.description}: no answer within {timeout:g}s"
            ) from None
        except OSError as exc:
            self.close()
            raise DeviceError(f"Ledger at {self.description}: {exc.strerror or exc}") from None
        except DeviceError:
            self.close()
            raise
        return body[:-2], int.from_bytes(body[-2:], "big")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


HID_CHANNEL = 0x0101
HID_TAG_APDU = 0x05
HID_PACKET = 64
LEDGER_VENDOR_ID = 0x2C97
LEDGER_USAGE_PAGE = 0xFFA0


def hid_wrap(apdu: bytes, channel: int = HID_CHANNEL, packet_size: int = HID_PACKET) -> list[bytes]:
    """Split an APDU into HID reports: ``channel(2) tag(1) seq(2) [len(2) on the first] data``."""
    data = struct.pack(">H", len(apdu)) + apdu
    packets, seq, offset = [], 0, 0
    while offset < len(data) or seq == 0:
        header = struct.pack(">HBH", channel, HID_TAG_APDU, seq)
        chunk = data[offset : offset + packet_size - len(header)]
        packets.append((header + chunk).ljust(packet_size, b"\x00"))
        offset += len(chunk)
        seq += 1
    return packets


class HidUnwrapper:
    """Reassembles a reply from HID reports, checking channel, tag and sequence numbers."""

    def __init__(self, channel: int = HID_CHANNEL) -> None:
        self.channel = channel
        self.seq = 0
        self.expected: int | None = None
        self.data = bytearray()

    def feed(self, packet: bytes) -> bytes | None:
        """Add one report; returns ``data || SW`` once complete, else None."""
        if len(packet) < 5:
            raise DeviceError(f"Ledger HID: short report ({len(packet)} bytes)")
        channel, tag, seq = struct.unpack(">HBH", packet[:5])
        if channel != self.channel or tag != HID_TAG_APDU or seq != self.seq:
            raise DeviceError(
                f"Ledger HID: unexpected report (channel {channel:#06x}, tag {tag:#04x}, "
                f"sequence {seq}, expected {self.seq})"
            )
        body = packet[5:]
        if self.seq == 0:
            if len(body) < 2:
                raise DeviceError("Ledger HID: first report without a length")
            self.expected = struct.unpack(">H", body[:2])[0]
            body = body[2:]
        self.seq += 1
        assert self.expected is not None
        self.data += body[: self.expected - len(self.data)]
        return bytes(self.data) if len(self.data) >= self.expected else None


class HidTransport:
    """A USB Ledger: needs ``hidapi`` (``pip install hidapi``); on Linux, Ledger's udev rules."""

    def __init__(
        self,
        device_path: bytes | None = None,
        *,
        reply_timeout: float = REVIEW_TIMEOUT_S,
        quick_timeout: float = QUICK_TIMEOUT_S,
    ) -> None:
        try:
            import hid
        except ImportError:
            raise DeviceError(
                "USB Ledger support needs the hidapi package: pip install hidapi "
                '(on Linux also install Ledger\'s udev rules); or use transport = "tcp://..."'
            ) from None
        self._hid = hid
        self._timeout_ms = int(reply_timeout * 1000)
        self._quick_ms = int(min(quick_timeout, reply_timeout) * 1000)
        path = device_path or self._find()
        self.description = f"usb:{path.decode(errors='replace')}"
        self._dev = hid.device()
        try:
            self._dev.open_path(path)
        except OSError as exc:
            raise DeviceError(
                f"Ledger on USB: cannot open it ({exc}); is another program (Ledger Live) using "
                "it, or are the udev rules missing?"
            ) from None

    def _find(self) -> bytes:
        devices = [
            d
            for d in self._hid.enumerate(LEDGER_VENDOR_ID, 0)
            if d.get("usage_page") == LEDGER_USAGE_PAGE or d.get("interface_number") == 0
        ]
        if not devices:
            raise DeviceError(
                "no Ledger found on USB: plug it in, unlock it and open the app "
                "(on Linux, check Ledger's udev rules)"
            )
        path = devices[0]["path"]
        assert isinstance(path, bytes)
        return path

    def exchange(self, apdu: bytes, *, interactive: bool = False) -> tuple[bytes, int]:
        timeout_ms = self._timeout_ms if interactive else self._quick_ms
        try:
            for packet in hid_wrap(apdu):
                self._dev.write(b"\x00" + packet)  # report id 0 first
            unwrapper = HidUnwrapper()
            while True:
                report = bytes(self._dev.read(HID_PACKET, timeout_ms))
                if not report and not interactive:
                    raise DeviceError(f"Ledger on USB: {DEVICE_BUSY}: no answer in time")
                if not report:
                    raise DeviceError("Ledger on USB: no answer in time")
                reply = unwrapper.feed(report)
                if reply is not None:
                    break
        except OSError as exc:
            raise DeviceError(f"Ledger on USB: {exc}") from None
        if len(reply) < 2:
            raise DeviceError("Ledger on USB: reply without a status word")
        return reply[:-2], int.from_bytes(reply[-2:], "big")

    def close(self) -> None:
        self._dev.close()


def make_transport(spec: str) -> Transport:
    """``hid`` (first Ledger on USB) or ``tcp://HOST:PORT`` (Speculos / the emulator)."""
    if spec == "hid":
        return HidTransport()
    if spec.startswith("tcp://"):
        host, _, port = spec[len("tcp://") :].rpartition(":")
        if host and port.isdigit():
            return TcpTransport(host.strip("[]"), int(port))
    raise ConfigError(f'ledger transport {spec!r}: use "hid" or "tcp://HOST:PORT"')


# ------------------------------------------------------------------------------------ the client


def _apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_DATA:
        raise ValueError(f"APDU data of {len(data)} bytes exceeds {MAX_DATA}")
    return bytes([cla, ins, p1, p2, len(data)]) + data


def eth_chunks(path_bytes: bytes, payload: bytes, eip155_tail: int = 0) -> list[bytes]:
    """SIGN_ETH_TRANSACTION chunks: the path and the payload, 255 bytes at a time.

    For a legacy transaction no chunk may end right where the trailing ``chainId, 0, 0`` begins
    (the app would take the transaction as complete and pre-EIP-155), so such a boundary is moved
    one byte earlier, as ledgerjs does in its own way.
    """
    data = path_bytes + payload
    tail_start = len(data) - eip155_tail if eip155_tail else len(data)
    chunks, offset = [], 0
    while offset < len(data):
        end = min(offset + MAX_DATA, len(data))
        if eip155_tail and tail_start <= end < len(data):
            end = tail_start - 1
        chunks.append(data[offset:end])
        offset = end
    return chunks


def sol_chunks(payload: bytes) -> list[tuple[int, bytes]]:
    """(P2, data) pairs: P2_MORE on all chunks but the last, P2_EXTEND on all but the first."""
    pieces = [payload[i : i + MAX_DATA] for i in range(0, len(payload), MAX_DATA)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        p2 = (P2_SOL_EXTEND if i else 0) | (P2_SOL_MORE if i < len(pieces) - 1 else 0)
        out.append((p2, piece))
    return out


class LedgerClient:
    """APDU-level access to one device; thread-safe, blocking (signers run it in a thread)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LedgerClient({self.transport.description})"

    def close(self) -> None:
        self.transport.close()

    def exchange(
        self,
        apdu: bytes,
        *,
        app: AppName,
        doing: str,
        contract_data: bool = False,
        interactive: bool = False,
    ) -> bytes:
        """Send one APDU; return its data or raise the error its status word means
        (``interactive``: the person reviews it on the device, so its reply may take long)."""
        with self._lock:
            log.debug(
                "ledger -> %s ins=%02x len=%d", self.transport.description, apdu[1], len(apdu)
            )
            data, sw = self.transport.exchange(apdu, interactive=interactive)
            log.debug("ledger <- sw=%04x len=%d", sw, len(data))
        if sw != SW_OK:
            raise status_error(sw, app=app, doing=doing, contract_data=contract_data)
        return data

    # -- which app is open

    def app_and_version(self) -> tuple[str, str] | None:
        """Name and version of the open app (``BOLOS`` on the dashboard); None if not answered."""
        with self._lock:
            data, sw = self.transport.exchange(_apdu(CLA_BOLOS, INS_GET_APP_AND_VERSION, 0, 0))
        if sw in SW_LOCKED:
            raise status_error(sw, app="Ethereum", doing="checking the open app")
        if sw != SW_OK:
            return None  # old firmware: carry on, the app's own status words will tell
        try:
            if data[0] != 1:
                raise IndexError
            i = 1
            name = data[i + 1 : i + 1 + data[i]].decode("ascii")
            i += 1 + data[i]
            version = data[i + 1 : i + 1 + data[i]].decode("ascii")
        except (IndexError, UnicodeDecodeError):
            raise DeviceError("Ledger: malformed answer to 'which app is open'") from None
        return name, version

    def ensure_app(self, app: AppName) -> None:
        found = self.app_and_version()
        if found is None or found[0] == app:
            return
        if found[0] in ("BOLOS", "OLOS\x00"):
            raise DeviceError(f"no app is open on the Ledger: open the {app} app")
        raise DeviceError(f"the {found[0]} app is open on the Ledger: open the {app} app")

    # -- Ethereum app

    def eth_address(self, path: str, *, display: bool = False) -> str:
        """GET_ETH_PUBLIC_ADDRESS: the EIP-55 address at ``path``, checked against its pubkey."""
        from eth_utils import keccak, to_checksum_address

        self.ensure_app("Ethereum")
        data = self.exchange(
            _apdu(
                CLA, INS_ETH_GET_ADDRESS, 1 if display else 0, 0, serialize_path(parse_path(path))
            ),
            app="Ethereum",
            doing=f"reading the address at {path}",
            interactive=display,
        )
        if len(data) != 1 + 65 + 1 + 40 or data[0] != 65 or data[66] != 40 or data[1] != 4:
            raise DeviceError(
                f"Ledger: address reply of unexpected length/shape ({len(data)} bytes)"
            )
        pubkey = data[1:66]
        try:
            address = to_checksum_address("0x" + data[67:107].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise DeviceError("Ledger: address reply is not a hex address") from None
        if to_checksum_address(keccak(pubkey[1:])[-20:]) != address:
            raise DeviceError("Ledger: returned address does not match its public key")
        return address

    def eth_app_config(self) -> tuple[bool, str]:
        """(contract data / blind signing enabled, app version)."""
        data = self.exchange(
            _apdu(CLA, INS_ETH_GET_CONFIG, 0, 0), app="Ethereum", doing="reading the app settings"
        )
        if len(data) < 4:
            raise DeviceError(f"Ledger: app configuration reply too short ({len(data)} bytes)")
        return bool(data[0] & 0x01), f"{data[1]}.{data[2]}.{data[3]}"

    def eth_sign(self, path: str, tx: EvmTransaction) -> tuple[int, int, int]:
        """SIGN_ETH_TRANSACTION: returns the device's (v byte, r, s) for ``tx``."""
        self.ensure_app("Ethereum")
        payload = tx.payload()
        tail = 0 if tx.typed else tx.eip155_tail_length()
        chunks = eth_chunks(serialize_path(parse_path(path)), payload, tail)
        apdus = [
            _apdu(CLA, INS_ETH_SIGN_TX, P1_ETH_MORE if i else P1_ETH_FIRST, 0, chunk)
            for i, chunk in enumerate(chunks)
        ]
        data = self._sign_chunked(apdus, app="Ethereum", size=65, contract_data=bool(tx.data))
        return data[0], int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:65], "big")

    # -- Solana app

    def sol_pubkey(self, path: str, *, display: bool = False) -> str:
        """GET_PUBKEY: the base58 ed25519 public key at ``path``."""
        from solders.pubkey import Pubkey

        self.ensure_app("Solana")
        data = self.exchange(
            _apdu(
                CLA,
                INS_SOL_GET_PUBKEY,
                P1_SOL_CONFIRM if display else P1_SOL_NON_CONFIRM,
                0,
                serialize_path(parse_path(path)),
            ),
            app="Solana",
            doing=f"reading the public key at {path}",
            interactive=display,
        )
        if len(data) != 32:
            raise DeviceError(f"Ledger: public key reply of {len(data)} bytes, expected 32")
        return str(Pubkey(data))

    def sol_sign(self, path: str, message: bytes) -> bytes:
        """SIGN_MESSAGE: ``1 || path || message`` in P2-flagged chunks; returns 64 bytes."""
        self.ensure_app("Solana")
        payload = b"\x01" + serialize_path(parse_path(path)) + message
        apdus = [
            _apdu(CLA, INS_SOL_SIGN_MESSAGE, P1_SOL_CONFIRM, p2, chunk)
            for p2, chunk in sol_chunks(payload)
        ]
        return self._sign_chunked(apdus, app="Solana", size=64)

    def _sign_chunked(
        self, apdus: list[bytes], *, app: AppName, size: int, contract_data: bool = False
    ) -> bytes:
        """One signing request in chunks, reviewed on the device: every chunk but the last is
        answered empty, the last with the signature of ``size`` bytes."""
        data = b""
        for i, apdu in enumerate(apdus):
            data = self.exchange(
                apdu,
                app=app,
                doing="signing the transaction",
                contract_data=contract_data,
                interactive=True,
            )
            if i < len(apdus) - 1 and data:
                raise DeviceError(
                    f"Ledger: answered {len(data)} bytes to an intermediate chunk; "
                    f"is the {app} app open?"
                )
        if len(data) != size:
            raise DeviceError(f"Ledger: signature reply of {len(data)} bytes, expected {size}")
        return data


def status_error(
    sw: int, *, app: AppName, doing: str, contract_data: bool = False
) -> RebalancerError:
    """The one-line error a status word means, saying what to do on the device."""
    if sw == SW_USER_REJECTED:
        return UserRejectedError(f"rejected on the Ledger while {doing}")
    if sw in SW_LOCKED:
        return DeviceError(
            f"the Ledger is locked (status {sw:#06x}): unlock it with the PIN "
            f"and open the {app} app"
        )
    if sw in SW_WRONG_APP:
        return DeviceError(
            f"the Ledger does not have the {app} app open (status {sw:#06x}): open the {app} app"
        )
    if sw == SW_INVALID_DATA and app == "Ethereum" and contract_data:
        return DeviceError(
            "the Ledger refused the contract call (status 0x6a80): enable 'Blind signing' "
            "(called 'Contract data' on older versions) in the Ethereum app's settings on the "
            "device, then retry"
        )
    if sw == SW_SOL_BLIND_SIGNING and app == "Solana":
        return DeviceError(
            "the Ledger cannot show this transaction (status 0x6808): enable 'Allow blind sign' "
            "in the Solana app's settings on the device, then retry"
        )
    name = _SW_NAMES.get(sw, "invalid data" if sw == SW_INVALID_DATA else "unexpected status")
    return DeviceError(f"the Ledger's {app} app refused while {doing}: {name} (status {sw:#06x})")


# -------------------------------------------------------------------------- what to confirm


def _units(amount: int, decimals: int) -> str:
    text = format(Decimal(amount).scaleb(-decimals).normalize(), "f")
    return text


def describe_evm(tx: EvmTransaction, path: str) -> str:
    """What the device will show, in the order it shows it, so the user can compare."""
    from eth_utils import to_checksum_address

    symbol = NATIVE_SYMBOL.get(tx.chain_id, "native units")
    chain = CHAIN_NAME.get(tx.chain_id, f"chain {tx.chain_id}")
    fee_cap = tx.gas * (tx.max_fee_per_gas if tx.typed else tx.gas_price)
    lines = [
        f"Confirm on the Ledger (Ethereum app, {path}):",
        f"  to:      {to_checksum_address(tx.to)}",
        f"  value:   {_units(tx.value, 18)} {symbol} ({tx.value} wei)",
        f"  chain:   {tx.chain_id} ({chain})",
        f"  max fee: {_units(fee_cap, 18)} {symbol}",
        f"  nonce:   {tx.nonce}, {'EIP-1559' if tx.typed else 'legacy EIP-155'} transaction",
    ]
    if tx.data:
        lines.append(
            f"  data:    contract call {tx.data[:4].hex()} ({len(tx.data)} bytes); the device "
            "needs blind signing / contract data enabled"
        )
    return "\n".join(lines)


SYSTEM_PROGRAM = "11111111111111111111111111111111"


def describe_solana(message: bytes, path: str) -> str:
    """Fee payer, transfers we can read, and the message hash the Solana app shows."""
    from solders.hash import Hash

    digest = str(Hash(hashlib.sha256(message).digest()))  # base58, as the app shows it
    lines = [f"Confirm on the Ledger (Solana app, {path}):"]
    try:
        from solders.message import from_bytes_versioned

        msg = from_bytes_versioned(message)
        keys = list(msg.account_keys)
        lines.append(f"  fee payer:    {keys[0]}")
        for ix in msg.instructions:
            program = str(keys[ix.program_id_index])
            data = bytes(ix.data)
            if program == SYSTEM_PROGRAM and len(data) == 12 and data[:4] == b"\x02\x00\x00\x00":
                lamports = int.from_bytes(data[4:12], "little")
                to = keys[ix.accounts[1]] if len(ix.accounts) > 1 else "?"
                lines.append(f"  transfer:     {_units(lamports, 9)} SOL to {to}")
            else:
                lines.append(f"  instruction:  program {program} ({len(data)} bytes of data)")
    except Exception:  # NOTE: a summary only; the device shows the authoritative view
        lines.append("  (message could not be summarised)")
    lines.append(f"  message hash: {digest}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- signers


class _LedgerSigner:
    """What both apps' signers share: the device client, the BIP32 path, the identity the
    device gave when opened (checked against the config's), and the prompt."""

    default_path: ClassVar[str]
    _noun: ClassVar[str]  # how a mismatch names the identity: "address", "public key"
    _identity: str

    def __init__(self, client: LedgerClient, path: str, identity: str, prompt: Prompt) -> None:
        self.client, self.path, self._identity, self.prompt = client, path, identity, prompt

    @staticmethod
    def _read_identity(client: LedgerClient, path: str) -> str:
        raise NotImplementedError

    @staticmethod
    def _matches(identity: str, expected: str) -> bool:
        return identity == expected

    @classmethod
    async def open(
        cls,
        transport: Transport,
        path: str | None = None,
        *,
        expected: str | None = None,
        prompt: Prompt = print_to_stderr,
    ) -> Self:
        """Read the identity at ``path`` (the app's default path unless given); refuse if it
        differs from ``expected`` (the config's)."""
        path = format_path(parse_path(cls.default_path if path is None else path))
        client = LedgerClient(transport)
        identity = await asyncio.to_thread(cls._read_identity, client, path)
        if expected is not None and not cls._matches(identity, expected):
            raise ConfigError(
                f"ledger path {path}: the device's {cls._noun} is {identity}, not the configured "
                f"{expected} (wrong path, wrong device or wrong passphrase on the device?)"
            )
        return cls(client, path, identity, prompt)

    def __repr__(self) -> str:
        description = self.client.transport.description
        return f"{type(self).__name__}({self._identity}, {self.path}, {description})"


class LedgerEvmSigner(_LedgerSigner, EvmKey):
    """An EVM account on a Ledger's Ethereum app, at one BIP32 path."""

    default_path = EVM_DEFAULT_PATH
    _noun = "address"

    @staticmethod
    def _read_identity(client: LedgerClient, path: str) -> str:
        return client.eth_address(path)

    @staticmethod
    def _matches(identity: str, expected: str) -> bool:
        return identity.lower() == expected.lower()  # NOTE: EIP-55 casing is only a checksum

    async def sign_evm(self, tx: EvmTransaction) -> SignedEvmTransaction:
        from eth_keys import keys

        self.prompt(describe_evm(tx, self.path))
        v_byte, r, s = await asyncio.to_thread(self.client.eth_sign, self.path, tx)
        if tx.typed:
            parity = v_byte - 27 if v_byte in (27, 28) else v_byte
        else:
            parity = (v_byte - (tx.chain_id * 2 + 35)) % 256
        if parity not in (0, 1):
            raise DeviceError(f"Ledger: signature v byte {v_byte} does not fit chain {tx.chain_id}")
        try:
            signature = keys.Signature(vrs=(parity, r, s))
            signer = signature.recover_public_key_from_msg_hash(tx.signing_hash())
        except Exception:
            raise DeviceError("Ledger: returned an invalid signature") from None
        if signer.to_checksum_address() != self._identity:
            raise DeviceError(
                f"Ledger: signed with {signer.to_checksum_address()}, not {self._identity} "
                "(device changed or different passphrase?); nothing was sent"
            )
        return tx.signed(parity, r, s)


class LedgerSolanaSigner(_LedgerSigner, SolanaKey):
    """A Solana account on a Ledger's Solana app, at one (all-hardened) BIP32 path."""

    default_path = SOLANA_DEFAULT_PATH
    _noun = "public key"

    @staticmethod
    def _read_identity(client: LedgerClient, path: str) -> str:
        return client.sol_pubkey(path)

    async def sign_solana_message(self, message: bytes) -> bytes:
        from solders.pubkey import Pubkey
        from solders.signature import Signature

        self.prompt(describe_solana(message, self.path))
        signature = await asyncio.to_thread(self.client.sol_sign, self.path, message)
        if not Signature.from_bytes(signature).verify(Pubkey.from_string(self._identity), message):
            raise DeviceError(
                f"Ledger: signature does not verify for {self._identity}; nothing was sent"
            )
        return signature


async def open_ledger_signer(
    family: Family,
    *,
    transport: str | Transport,
    path: str | None = None,
    expected: str | None = None,
    prompt: Prompt = print_to_stderr,
) -> LedgerEvmSigner | LedgerSolanaSigner:
    """The signer for a config entry ``signer = {kind = "ledger", path = ..., transport = ...}``."""
    t = make_transport(transport) if isinstance(transport, str) else transport
    cls = LedgerEvmSigner if family == "evm" else LedgerSolanaSigner
    return await cls.open(t, path or cls.default_path, expected=expected, prompt=prompt)
