"""Local keys: EVM keystore v3 files and Solana keypair files, plain or encrypted.

Files in a keys directory, one key per ``<name>.json``, told apart by content:

- ``keystore-v3``: the Ethereum keystore (scrypt + AES-128-CTR, eth-account), as geth writes it.
- ``solana-keygen``: a JSON array of 64 integers (secret seed || public key), unencrypted, as
  ``solana-keygen new`` writes it; accepted for compatibility.
- ``solana-encrypted``: this tool's encrypted Solana keypair: scrypt (pycryptodome, the same
  library eth-keyfile uses, so no new dependency) derives a 256-bit key that seals the 64 bytes
  with AES-256-GCM; the public key sits in clear (and is authenticated) so ``keys list`` needs
  no passphrase.

Files are created 0600 in a 0700 directory and never overwritten. A key is decrypted once, when
its signer is built; the signer keeps the raw bytes in a private attribute and its ``repr`` shows
only the identity. Nothing here reads the environment on its own: the caller passes it in.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rebalancer.core.errors import ConfigError, UserRejectedError
from rebalancer.core.tx import EvmTransaction, SignedEvmTransaction
from rebalancer.core.types import Family
from rebalancer.wallet.base import EvmKey, SolanaKey

log = logging.getLogger(__name__)

KeyKind = Literal["keystore-v3", "solana-keygen", "solana-encrypted"]
SCRYPT_N = 2**18
"""scrypt cost for new files, as geth and eth-account use; lower it only in tests."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENCRYPTED_KIND = "rebalancer-solana-keypair"


class LocalEvmSigner(EvmKey):
    """An EVM key held in memory; signs with eth-keys (RFC 6979 deterministic ECDSA)."""

    __slots__ = ("_identity", "_key")

    def __init__(self, private_key: bytes) -> None:
        from eth_account import Account

        if len(private_key) != 32:
            raise ConfigError("evm private key: must be 32 bytes")
        try:
            self._identity: str = Account.from_key(private_key).address
        except Exception:
            raise ConfigError("evm private key: not a valid secp256k1 key") from None
        self._key = bytes(private_key)

    async def sign_evm(self, tx: EvmTransaction) -> SignedEvmTransaction:
        """Sign the keccak of the one encoder's payload (what a Ledger signs too)."""
        from eth_keys import keys

        signature = keys.PrivateKey(self._key).sign_msg_hash(tx.signing_hash())
        return tx.signed(signature.v, signature.r, signature.s)

    def __repr__(self) -> str:
        return f"LocalEvmSigner({self._identity})"

    __str__ = __repr__


class LocalSolanaSigner(SolanaKey):
    """A Solana ed25519 keypair held in memory; signs message bytes (deterministic Ed25519)."""

    __slots__ = ("_identity", "_keypair")

    def __init__(self, keypair_bytes: bytes) -> None:
        from solders.keypair import Keypair

        if len(keypair_bytes) != 64:
            raise ConfigError("solana keypair: must be 64 bytes (secret seed and public key)")
        try:
            self._keypair = Keypair.from_bytes(keypair_bytes)
        except Exception:
            raise ConfigError(
                "solana keypair: public half does not match the secret half"
            ) from None
        self._identity: str = str(self._keypair.pubkey())

    @classmethod
    def from_seed(cls, seed: bytes) -> LocalSolanaSigner:
        """From the 32-byte secret seed (e.g. SLIP-0010 derived from a mnemonic)."""
        from solders.keypair import Keypair

        return cls(bytes(Keypair.from_seed(seed)))

    async def sign_solana_message(self, message: bytes) -> bytes:
        return bytes(self._keypair.sign_message(message))

    def keypair_bytes(self) -> bytes:
        """The 64 secret bytes, for writing the key file; never log or print them."""
        return bytes(self._keypair)

    def __repr__(self) -> str:
        return f"LocalSolanaSigner({self._identity})"

    __str__ = __repr__


LocalSigner = LocalEvmSigner | LocalSolanaSigner


@dataclass(frozen=True, slots=True)
class KeyFileInfo:
    """What can be known about a key file without its passphrase."""

    name: str
    path: Path
    kind: KeyKind
    family: Family
    identity: str | None
    encrypted: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "address": self.identity,
            "kind": self.kind,
            "encrypted": self.encrypted,
            "path": str(self.path),
        }


# ---------------------------------------------------------------- directories and passphrases


def default_keys_dir(environ: Mapping[str, str]) -> Path:
    """``$REBALANCER_KEYS_DIR``, else ``$XDG_DATA_HOME/rebalancer/keys``, else ~/.local/share/..."""
    if environ.get("REBALANCER_KEYS_DIR"):
        return Path(environ["REBALANCER_KEYS_DIR"]).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "rebalancer" / "keys"


def resolve_passphrase(
    env_name: str | None,
    *,
    environ: Mapping[str, str],
    what: str,
    confirm: bool = False,
    prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> str:
    """The passphrase from the environment variable named ``env_name``, else a hidden prompt.

    ``confirm`` asks twice (for new files). Without a terminal and without the variable this is a
    usage error, never a silent empty passphrase.
    """
    if env_name:
        if env_name not in environ:
            raise ConfigError(f"passphrase for {what}: environment variable {env_name} is not set")
        return environ[env_name]
    ask = prompt or getpass.getpass
    if interactive is None:
        interactive = prompt is not None or sys.stdin.isatty()
    if not interactive:
        raise ConfigError(
            f"passphrase for {what}: no terminal to ask on; name an environment variable "
            "holding it (--passphrase-env VAR, or passphrase_env in the config)"
        )
    try:
        first = ask(f"Passphrase for {what}: ")
        if confirm and ask(f"Repeat passphrase for {what}: ") != first:
            raise ConfigError(f"passphrase for {what}: the two entries differ")
    except (EOFError, KeyboardInterrupt):
        raise UserRejectedError(f"passphrase for {what}: prompt cancelled") from None
    return first


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


# ------------------------------------------------------------------------------ reading files


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"key file {path}: does not exist") from None
    except OSError as exc:
        raise ConfigError(f"key file {path}: cannot be read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"key file {path}: is not JSON (corrupted?)") from None


def _kind(path: Path, doc: Any) -> KeyKind:
    if isinstance(doc, list):
        if len(doc) == 64 and all(isinstance(b, int) and 0 <= b <= 255 for b in doc):
            return "solana-keygen"
        raise ConfigError(f"key file {path}: a Solana keypair must be a JSON array of 64 bytes")
    if isinstance(doc, dict):
        if doc.get("kind") == _ENCRYPTED_KIND:
            return "solana-encrypted"
        if doc.get("version") == 3 and isinstance(doc.get("crypto") or doc.get("Crypto"), dict):
            return "keystore-v3"
    raise ConfigError(f"key file {path}: neither a keystore v3 nor a Solana keypair file")


def read_key_info(path: Path) -> KeyFileInfo:
    """Kind, family and identity of a key file, without decrypting it."""
    from eth_utils import is_hex_address, to_checksum_address

    doc = _read_json(path)
    kind = _kind(path, doc)
    name = path.stem
    if kind == "keystore-v3":
        addr = doc.get("address")
        identity = None
        if isinstance(addr, str):
            addr = addr if addr.startswith("0x") else "0x" + addr
            identity = to_checksum_address(addr) if is_hex_address(addr) else None
        return KeyFileInfo(name, path, kind, "evm", identity, True)
    if kind == "solana-keygen":
        from solders.pubkey import Pubkey

        return KeyFileInfo(name, path, kind, "solana", str(Pubkey(bytes(doc[32:]))), False)
    pubkey = doc.get("pubkey")
    return KeyFileInfo(
        name, path, kind, "solana", pubkey if isinstance(pubkey, str) else None, True
    )


def _warn_if_open(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by others (mode %o); chmod 600 it", path, mode & 0o777)


def load_signer(path: Path, passphrase: str | Callable[[], str] | None) -> LocalSigner:
    """Decrypt (once) the key file at ``path`` and return its signer.

    ``passphrase`` may be a callable so that plain Solana files never trigger a prompt.
    """
    doc = _read_json(path)
    kind = _kind(path, doc)
    _warn_if_open(path)
    if kind == "solana-keygen":
        return LocalSolanaSigner(bytes(doc))
    secret = passphrase() if callable(passphrase) else passphrase
    if secret is None:
        raise ConfigError(f"key file {path}: is encrypted and no passphrase was given")
    if kind == "keystore-v3":
        return LocalEvmSigner(_decrypt_keystore(path, doc, secret))
    signer = LocalSolanaSigner(_decrypt_solana(path, doc, secret))
    if doc.get("pubkey") != signer.identity:
        raise ConfigError(f"key file {path}: public key field does not match the sealed keypair")
    return signer


def _decrypt_keystore(path: Path, doc: dict[str, Any], passphrase: str) -> bytes:
    from eth_keyfile import decode_keyfile_json

    try:
        return bytes(decode_keyfile_json(doc, passphrase.encode("utf-8")))
    except Exception as exc:  # eth-keyfile raises ValueError, KeyError, TypeError, its own...
        if "MAC mismatch" in str(exc):
            raise ConfigError(f"key file {path}: wrong passphrase") from None
        raise ConfigError(f"key file {path}: corrupted keystore ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from Crypto.Protocol.KDF import scrypt

    key = scrypt(passphrase.encode("utf-8"), salt, 32, N=n, r=r, p=p)  # type: ignore[arg-type]
    assert isinstance(key, bytes)
    return key


def _decrypt_solana(path: Path, doc: dict[str, Any], passphrase: str) -> bytes:
    from Crypto.Cipher import AES

    try:
        crypto = doc["crypto"]
        params = crypto["kdfparams"]
        if crypto["kdf"] != "scrypt" or crypto["cipher"] != "aes-256-gcm":
            raise ValueError(f"unsupported kdf/cipher {crypto['kdf']}/{crypto['cipher']}")
        key = _scrypt(
            passphrase,
            bytes.fromhex(params["salt"]),
            int(params["n"]),
            int(params["r"]),
            int(params["p"]),
        )
        nonce = bytes.fromhex(crypto["nonce"])
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        tag = bytes.fromhex(crypto["tag"])
        aad = str(doc["pubkey"]).encode()
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"key file {path}: corrupted encrypted keypair ({_short(exc)})") from None
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(aad)
    try:
        plain = cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError:
        # NOTE: GCM cannot tell a wrong passphrase from a tampered file; the first is likelier.
        raise ConfigError(f"key file {path}: wrong passphrase (or the file was altered)") from None
    if len(plain) != 64:
        raise ConfigError(f"key file {path}: corrupted encrypted keypair (bad length)")
    return bytes(plain)


def list_keys(directory: Path) -> list[KeyFileInfo]:
    """Every readable key file in ``directory``, sorted by name; unreadable files are skipped."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(read_key_info(path))
        except ConfigError as exc:
            log.warning("skipping %s", exc)
    return out


def find_key(directory: Path, name: str) -> Path:
    path = directory / f"{check_name(name)}.json"
    if not path.exists():
        raise ConfigError(f"key {name!r}: no file {path}")
    return path


# ------------------------------------------------------------------------------ writing files


def _write_private(path: Path, doc: Any) -> None:
    """Create ``path`` with mode 0600 (never replacing a file) and write ``doc`` as JSON."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(doc, indent=None if isinstance(doc, list) else 2).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {path}: already exists; pick another name") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o600)  # NOTE: O_CREAT's mode is masked by the umask; be explicit.
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _check_new_passphrase(passphrase: str) -> None:
    if not passphrase:
        raise ConfigError("passphrase: must not be empty for an encrypted key file")


def write_evm_keystore(
    directory: Path, name: str, signer: LocalEvmSigner, passphrase: str, *, scrypt_n: int = SCRYPT_N
) -> KeyFileInfo:
    """Write ``signer``'s key as ``<name>.json`` keystore v3 (scrypt)."""
    from eth_account import Account

    _check_new_passphrase(passphrase)
    path = directory / f"{check_name(name)}.json"
    doc = Account.encrypt(signer._key, passphrase, kdf="scrypt", iterations=scrypt_n)
    _write_private(path, doc)
    return read_key_info(path)


def write_solana_keypair(
    directory: Path,
    name: str,
    signer: LocalSolanaSigner,
    passphrase: str | None,
    *,
    scrypt_n: int = SCRYPT_N,
) -> KeyFileInfo:
    """Write ``<name>.json``: encrypted when a passphrase is given, else solana-keygen format."""
    from Crypto.Cipher import AES

    path = directory / f"{check_name(name)}.json"
    secret = signer.keypair_bytes()
    if passphrase is None:
        _write_private(path, list(secret))
        return read_key_info(path)
    _check_new_passphrase(passphrase)
    salt, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
    r, p = 8, 1
    key = _scrypt(passphrase, salt, scrypt_n, r, p)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(signer.identity.encode())
    ciphertext, tag = cipher.encrypt_and_digest(secret)
    doc = {
        "kind": _ENCRYPTED_KIND,
        "version": 1,
        "pubkey": signer.identity,
        "crypto": {
            "kdf": "scrypt",
            "kdfparams": {"n": scrypt_n, "r": r, "p": p, "dklen": 32, "salt": salt.hex()},
            "cipher": "aes-256-gcm",
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
            "tag": tag.hex(),
        },
    }
    _write_private(path, doc)
    return read_key_info(path)


def write_keystore_file(directory: Path, name: str, doc: dict[str, Any]) -> KeyFileInfo:
    """Copy an existing keystore v3 document (already checked to decrypt) into the keys dir."""
    path = directory / f"{check_name(name)}.json"
    _write_private(path, doc)
    return read_key_info(path)


def new_signer(family: Family) -> LocalSigner:
    """A fresh random key of ``family`` from the OS's CSPRNG."""
    if family == "evm":
        while True:
            candidate = secrets.token_bytes(32)
            try:
                return LocalEvmSigner(candidate)
            except ConfigError:  # NOTE: astronomically rare: 0 or >= the curve order
                continue
    return LocalSolanaSigner.from_seed(secrets.token_bytes(32))
