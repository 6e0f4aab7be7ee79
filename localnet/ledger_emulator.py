"""A Ledger stand-in at the APDU level: the Ethereum and Solana apps, over Speculos' TCP framing.

No registry ships the apps' ELF binaries, so Speculos cannot run them here. This emulator holds a
software key derived from a BIP39 mnemonic (BIP32 secp256k1 for EVM, SLIP-0010 ed25519 for
Solana), speaks the same framing, INS codes, chunking and status words as the real apps, and can
be told to reject, lock, switch app or answer short, so the real transport and APDU code of
``wallet.ledger`` runs in tests and in the demo.

Besides addresses and transactions it answers what the apps' public protocol descriptions
list: the Ethereum app's address with its chain code (P2 01) or a chain id after the path,
personal_sign (INS 08); the Solana app's off-chain message signing (INS 07).

Run: ``python -m rebalancer.localnet.ledger_emulator [--port 0] [--app eth|sol|dashboard] [--locked]
[--reject] [--exclusive] [--no-contract-data] [--no-blind-signing]``; it prints
``Listening on 127.0.0.1:PORT`` once ready (``--exclusive``: one client at a time, like a real
device; another client's APDUs wait unanswered). Control in band: an APDU with CLA ``0xEE``,
INS ``0x01`` and a JSON object of the state to change (``{"app": "sol", "reject": true}``)
answers the whole state as JSON; real devices answer that CLA with 0x6E00, so the host never
sends it by mistake.

The default mnemonic is a throwaway test phrase: never send real funds to its addresses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import rlp
from eth_keys.datatypes import PrivateKey
from eth_utils import keccak
from solders.keypair import Keypair

from rebalancer.wallet.hd import (
    HARDENED,
    evm_key_and_chain_code,
    evm_key_from_seed,
    format_path,
    seed_from_mnemonic,
    slip10_ed25519,
)

TEST_MNEMONIC = "coyote unusual rug often fly valve divert used slight above divorce skin"
"""Throwaway phrase of the emulated device. Public on purpose; holds nothing of value."""

App = Literal["eth", "sol", "dashboard"]
APP_NAMES: dict[str, tuple[str, str]] = {
    "eth": ("Ethereum", "1.10.4"),
    "sol": ("Solana", "1.4.1"),
    "dashboard": ("BOLOS", "2.1.0"),
}
CLA_CONTROL = 0xEE
SYSTEM_PROGRAMS = {
    "11111111111111111111111111111111",  # System
    "ComputeBudget111111111111111111111111111111",
}

OK = b"\x90\x00"


def _sw(code: int) -> bytes:
    return struct.pack(">H", code)


class ApduError(Exception):
    """A status word to answer instead of data."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:#06x}")
        self.sw = sw


@dataclass
class DeviceState:
    """What a test can change: which app is open, whether the user says no, device settings."""

    app: App = "eth"
    locked: bool = False
    reject: bool = False
    contract_data: bool = True
    blind_signing: bool = True
    short_reply: bool = False
    """Truncate the next app reply that carries data by one byte (then clear this)."""
    review_s: float = 0.0
    """How long the person at the device takes to review before a confirmation (seconds)."""


def _read_path(data: bytes) -> tuple[list[int], bytes]:
    if not data or not 1 <= data[0] <= 10 or len(data) < 1 + 4 * data[0]:
        raise ApduError(0x6A80)
    n = data[0]
    path = [struct.unpack(">I", data[1 + 4 * i : 5 + 4 * i])[0] for i in range(n)]
    return path, data[1 + 4 * n :]


def _rlp_total_length(buf: bytes) -> int | None:
    """Length of the RLP list starting at ``buf[0]``, or None if the header is incomplete."""
    if not buf:
        return None
    b0 = buf[0]
    if b0 < 0xC0:
        raise ApduError(0x6A80)
    if b0 <= 0xF7:
        return 1 + (b0 - 0xC0)
    n = b0 - 0xF7
    if len(buf) < 1 + n:
        return None
    return 1 + n + int.from_bytes(buf[1 : 1 + n], "big")


class LedgerEmulator:
    """The device: ``exchange(apdu) -> data || SW``. Thread-safe; one state for all clients."""

    def __init__(self, mnemonic: str = TEST_MNEMONIC, state: DeviceState | None = None) -> None:
        self._seed = seed_from_mnemonic(mnemonic)
        self.state = state or DeviceState()
        self._lock = threading.Lock()
        self._eth: tuple[list[int], bytearray] | None = None
        self._personal: tuple[list[int], int, bytearray] | None = None
        self._sol: tuple[int, list[int], bytearray] | None = None
        self._evm_keys: dict[tuple[int, ...], PrivateKey] = {}

    def __repr__(self) -> str:
        return f"LedgerEmulator({self.state})"

    # -- keys

    def evm_key(self, path: list[int]) -> PrivateKey:
        if tuple(path) not in self._evm_keys:
            raw = evm_key_from_seed(self._seed, format_path(path))
            self._evm_keys[tuple(path)] = PrivateKey(raw)
        return self._evm_keys[tuple(path)]

    def solana_keypair(self, path: list[int]) -> Keypair:
        if not all(i & HARDENED for i in path):
            raise ApduError(0x6A80)
        return Keypair.from_seed(slip10_ed25519(self._seed, path)[0])

    # -- framing

    def exchange(self, apdu: bytes) -> bytes:
        with self._lock:
            try:
                return self._dispatch(apdu)
            except ApduError as exc:
                return _sw(exc.sw)

    def _dispatch(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            raise ApduError(0x6700)
        cla, ins, p1, p2 = apdu[:4]
        data = apdu[5:]
        if len(apdu) >= 5 and apdu[4] != len(data):
            raise ApduError(0x6700)
        if cla == CLA_CONTROL:
            return self._control(ins, data)
        if self.state.locked:
            raise ApduError(0x5515)
        if cla == 0xB0 and ins == 0x01:
            name, version = APP_NAMES[self.state.app]
            body = bytes([1, len(name)]) + name.encode() + bytes([len(version)]) + version.encode()
            return body + b"\x01\x00" + OK
        if self.state.app == "dashboard":
            raise ApduError(0x6E01)
        if cla != 0xE0:
            raise ApduError(0x6E00)
        handler = self._eth_apdu if self.state.app == "eth" else self._sol_apdu
        reply = handler(ins, p1, p2, data)
        if reply and self.state.short_reply:
            self.state.short_reply = False
            reply = reply[:-1]
        return reply + OK

    def _control(self, ins: int, data: bytes) -> bytes:
        if ins != 0x01:
            raise ApduError(0x6D00)
        try:
            changes = json.loads(data or b"{}")
            for key, value in changes.items():
                if key not in DeviceState.__dataclass_fields__:
                    raise ValueError(key)
                if key == "app" and value not in APP_NAMES:
                    raise ValueError(value)
                setattr(self.state, key, value)
        except (ValueError, AttributeError):
            raise ApduError(0x6A80) from None
        self._eth = self._sol = self._personal = None
        return json.dumps(asdict(self.state)).encode() + OK

    def _confirm(self) -> None:
        """The person at the device: reads for ``review_s``, says no when told to."""
        if self.state.review_s > 0:
            time.sleep(self.state.review_s)
        if self.state.reject:
            raise ApduError(0x6985)

    # -- Ethereum app

    def _eth_apdu(self, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        if ins == 0x02:
            return self._eth_address(p1, p2, data)
        if ins == 0x04:
            return self._eth_sign(p1, p2, data)
        if ins == 0x06:
            return bytes([0x01 if self.state.contract_data else 0x00, 1, 10, 4])
        if ins == 0x08:
            return self._eth_personal_sign(p1, p2, data)
        raise ApduError(0x6D00)

    def _eth_address(self, p1: int, p2: int, data: bytes) -> bytes:
        """GET ETH PUBLIC ADDRESS: P1 01 asks the user, P2 01 appends the BIP32 chain code; an
        optional 8-byte big-endian chain id may follow the path (the address shown is the
        same on every chain)."""
        path, rest = _read_path(data)
        if len(rest) not in (0, 8):
            raise ApduError(0x6A80)
        if p1 not in (0, 1) or p2 not in (0, 1):
            raise ApduError(0x6B00)
        if p1 == 1:
            self._confirm()
        key = self.evm_key(path)
        pub = b"\x04" + key.public_key.to_bytes()
        address = key.public_key.to_checksum_address()[2:].encode()
        reply = bytes([65]) + pub + bytes([40]) + address
        if p2 == 1:
            reply += evm_key_and_chain_code(self._seed, path)[1]
        return reply

    def _eth_personal_sign(self, p1: int, p2: int, data: bytes) -> bytes:
        """SIGN ETH PERSONAL MESSAGE: the first chunk holds the path and a 4-byte big-endian
        message length, later chunks (P1 80) the rest; the signature is over EIP-191's
        ``"\\x19Ethereum Signed Message:\\n" + len + message``, v = 27 + parity."""
        if p2 != 0 or p1 not in (0x00, 0x80):
            raise ApduError(0x6B00)
        if p1 == 0x00:
            path, rest = _read_path(data)
            if len(rest) < 4:
                self._personal = None
                raise ApduError(0x6A80)
            (length,) = struct.unpack(">I", rest[:4])
            self._personal = (path, length, bytearray(rest[4:]))
        elif self._personal is None:
            raise ApduError(0x6A80)
        else:
            self._personal[2].extend(data)
        path, length, message = self._personal
        if len(message) < length:
            return b""  # more chunks to come
        self._personal = None
        if len(message) > length:
            raise ApduError(0x6A80)
        self._confirm()
        prefix = b"\x19Ethereum Signed Message:\n" + str(length).encode()
        signature = self.evm_key(path).sign_msg_hash(keccak(prefix + bytes(message)))
        r, s = signature.r.to_bytes(32, "big"), signature.s.to_bytes(32, "big")
        return bytes([27 + signature.v]) + r + s

    def _eth_sign(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != 0 or p1 not in (0x00, 0x80):
            raise ApduError(0x6B00)
        if p1 == 0x00:
            path, rest = _read_path(data)
            self._eth = (path, bytearray(rest))
        elif self._eth is None:
            raise ApduError(0x6A80)
        else:
            self._eth[1].extend(data)
        path, buf = self._eth
        if not buf:
            return b""
        typed = buf[0] < 0x80
        if typed and buf[0] not in (1, 2):
            self._eth = None
            raise ApduError(0x6501)
        body = bytes(buf[1:] if typed else buf)
        total = _rlp_total_length(body)
        if total is None or len(body) < total:
            return b""  # more chunks to come
        self._eth = None
        if len(body) > total:
            raise ApduError(0x6A80)
        try:
            fields = rlp.decode(body)
        except Exception:
            raise ApduError(0x6A80) from None
        assert isinstance(fields, list)
        data_field = fields[7] if typed else fields[5]
        if data_field and not self.state.contract_data:
            raise ApduError(0x6A80)
        self._confirm()
        signature = self.evm_key(path).sign_msg_hash(keccak(bytes(buf)))
        parity = signature.v
        if typed:
            v = parity
        elif len(fields) == 9:
            chain_id = int.from_bytes(fields[6], "big")
            v = (chain_id * 2 + 35 + parity) & 0xFF  # NOTE: the app truncates v to one byte
        else:
            v = 27 + parity
        return bytes([v]) + signature.r.to_bytes(32, "big") + signature.s.to_bytes(32, "big")

    # -- Solana app

    def _sol_apdu(self, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        if ins == 0x04:
            return bytes([1 if self.state.blind_signing else 0, 0, 1, 4, 1])
        if ins == 0x05:
            path, rest = _read_path(data)
            if rest:
                raise ApduError(0x6A83)
            if p1 == 1:
                self._confirm()
            return bytes(self.solana_keypair(path).pubkey())
        if ins in (0x06, 0x07):
            collected = self._sol_collect(ins, p1, p2, data)
            if collected is None:
                return b""
            path, message = collected
            if ins == 0x07:
                return self._sol_sign_offchain(path, message)
            return self._sol_sign(path, message)
        raise ApduError(0x6D00)

    def _sol_collect(
        self, ins: int, p1: int, p2: int, data: bytes
    ) -> tuple[list[int], bytes] | None:
        """The chunks of a signing command (P2 bits: 01 extend, 02 more); None until the last."""
        if p1 != 0x01 or p2 & ~0x03:
            raise ApduError(0x6B00)
        if not p2 & 0x01:  # first chunk: number of signers, path, start of message
            if not data or data[0] != 1:
                self._sol = None
                raise ApduError(0x6A80)
            path, rest = _read_path(data[1:])
            self._sol = (ins, path, bytearray(rest))
        elif self._sol is None or self._sol[0] != ins:
            self._sol = None
            raise ApduError(0x6A80)
        else:
            self._sol[2].extend(data)
        if p2 & 0x02:
            return None
        _, path, message = self._sol
        self._sol = None
        return path, bytes(message)

    def _sol_sign_offchain(self, path: list[int], message: bytes) -> bytes:
        """SIGN SOLANA OFF-CHAIN MESSAGE: the whole off-chain message (``\\xffsolana
        offchain``, version 0 or 1 header, the text) is signed once its header names this
        key as a signer; version 0 formats 0 (ASCII) and 1 (UTF-8) only, and non-ASCII text
        needs blind signing, as the app refuses otherwise."""
        if len(message) > MAX_OFFCHAIN_MESSAGE:
            raise ApduError(0x6A83)
        header = parse_offchain_header(message)
        if header is None:
            raise ApduError(0x6A81)
        version, fmt, signers, text = header
        keypair = self.solana_keypair(path)
        if bytes(keypair.pubkey()) not in signers:
            raise ApduError(0x6A81)
        if version == 0 and fmt > 1:
            raise ApduError(0x6A81)
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise ApduError(0x6A82) from None
        ascii_text = all(0x20 <= b < 0x7F or b == 0x0A for b in text)
        if not ascii_text and version == 0 and fmt == 0:
            raise ApduError(0x6A82)
        if not ascii_text and not self.state.blind_signing:
            raise ApduError(0x6808)
        self._confirm()
        return bytes(keypair.sign_message(message))

    def _sol_sign(self, path: list[int], message: bytes) -> bytes:
        from solders.message import from_bytes_versioned

        try:
            msg = from_bytes_versioned(bytes(message))
        except Exception:
            raise ApduError(0x6A82) from None
        keys_ = [str(k) for k in msg.account_keys]
        programs = {keys_[ix.program_id_index] for ix in msg.instructions}
        if not self.state.blind_signing and programs - SYSTEM_PROGRAMS:
            raise ApduError(0x6808)
        keypair = self.solana_keypair(path)
        if str(keypair.pubkey()) not in keys_[: msg.header.num_required_signatures]:
            raise ApduError(0x6A80)
        self._confirm()
        return bytes(keypair.sign_message(bytes(message)))


OFFCHAIN_DOMAIN = b"\xffsolana offchain"
MAX_OFFCHAIN_MESSAGE = 15 * 1024 - 48  # the app's MAX_OFFCHAIN_MESSAGE_LENGTH (globals.h)


def parse_offchain_header(message: bytes) -> tuple[int, int, list[bytes], bytes] | None:
    """(version, format, signers, text) of a Solana off-chain message, or None if malformed.

    Version 0: domain, version, 32-byte application domain, format, signer count, signers,
    u16 LE length, text. Version 1: domain, version, signer count, signers, then the text to
    the end (sRFC 3, as the app parses it).
    """
    if not message.startswith(OFFCHAIN_DOMAIN):
        return None
    at = len(OFFCHAIN_DOMAIN)
    if len(message) < at + 1:
        return None
    version = message[at]
    at += 1
    fmt = 0
    if version == 0:
        if len(message) < at + 32 + 2:
            return None
        at += 32  # application domain
        fmt = message[at]
        at += 1
    elif version != 1:
        return None
    count = message[at]
    at += 1
    if count == 0 or len(message) < at + 32 * count:
        return None
    signers = [message[at + 32 * i : at + 32 * (i + 1)] for i in range(count)]
    at += 32 * count
    if version == 0:
        if len(message) < at + 2:
            return None
        (length,) = struct.unpack_from("<H", message, at)
        at += 2
        if length == 0 or len(message) - at != length:
            return None
    text = message[at:]
    if not text:
        return None
    return version, fmt, signers, text


class InProcessTransport:
    """A ``wallet.ledger.Transport`` straight into an emulator, for fast unit tests (no socket)."""

    description = "in-process emulator"

    def __init__(self, emulator: LedgerEmulator) -> None:
        self.emulator = emulator

    def exchange(self, apdu: bytes, *, interactive: bool = False) -> tuple[bytes, int]:
        reply = self.emulator.exchange(apdu)
        return reply[:-2], int.from_bytes(reply[-2:], "big")

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------- server


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: EmulatorServer = self.server  # type: ignore[assignment]
        if server.exclusive:
            # NOTE: like a real device, one client at a time: the next one's APDUs wait,
            # unanswered, until the one holding it disconnects
            with server.owner:
                self._serve(server.emulator)
        else:
            self._serve(server.emulator)

    def _serve(self, emulator: LedgerEmulator) -> None:
        sock = self.request
        while True:
            header = _recv(sock, 4)
            if header is None:
                return
            (length,) = struct.unpack(">I", header)
            apdu = _recv(sock, length) if length else b""
            if apdu is None:
                return
            reply = emulator.exchange(apdu)
            sock.sendall(struct.pack(">I", len(reply) - 2) + reply)


def _recv(sock: Any, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class EmulatorServer(socketserver.ThreadingTCPServer):
    """Speculos-framed APDU server around one :class:`LedgerEmulator`."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        emulator: LedgerEmulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        exclusive: bool = False,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.emulator = emulator
        self.exclusive = exclusive
        """Serve one client at a time (a device held by another client answers nothing)."""
        self.owner = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve_in_thread(
    emulator: LedgerEmulator, host: str = "127.0.0.1", port: int = 0
) -> EmulatorServer:
    """Start a server in a daemon thread; call ``.shutdown()`` and ``.server_close()`` to stop."""
    server = EmulatorServer(emulator, host, port)
    threading.Thread(target=server.serve_forever, name="ledger-emulator", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rebalancer.localnet.ledger_emulator",
        description="An emulated Ledger (Ethereum and Solana apps) on Speculos' APDU socket.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--app", choices=sorted(APP_NAMES), default="eth", help="open app")
    parser.add_argument("--locked", action="store_true", help="answer 0x5515 (PIN lock)")
    parser.add_argument("--reject", action="store_true", help="the user rejects everything")
    parser.add_argument(
        "--exclusive", action="store_true", help="one client at a time, like a real device"
    )
    parser.add_argument("--no-contract-data", action="store_true", help="blind signing off (ETH)")
    parser.add_argument("--no-blind-signing", action="store_true", help="blind signing off (SOL)")
    parser.add_argument(
        "--mnemonic-env",
        metavar="VAR",
        help="environment variable holding the mnemonic (default: the built-in test phrase)",
    )
    args = parser.parse_args(argv)
    mnemonic = os.environ[args.mnemonic_env] if args.mnemonic_env else TEST_MNEMONIC
    state = DeviceState(
        app=args.app,
        locked=args.locked,
        reject=args.reject,
        contract_data=not args.no_contract_data,
        blind_signing=not args.no_blind_signing,
    )
    server = EmulatorServer(
        LedgerEmulator(mnemonic, state), args.host, args.port, exclusive=args.exclusive
    )

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Listening on {args.host}:{server.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    print("ledger emulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
