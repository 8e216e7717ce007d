"""Key files on disk: `qas keygen` writes a key pair, the services load one file of it.

``PATH`` holds the private key (mode 0600): only the decider loads it. ``PATH.pub`` holds the
public key: appliers and engines load it and can verify, never sign. Parsing and the key types
are in shared/signing.py; nothing here prints key material.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

from shared.signing import KeyFileError, KeyRing, SigningKey, parse_key_file

PUBLIC_SUFFIX = ".pub"


def public_path(path: Path) -> Path:
    """Where `qas keygen PATH` writes the public key: ``PATH.pub``."""
    return path.with_name(path.name + PUBLIC_SUFFIX)


def load_key_file(path: Path, *, allow_hmac: bool = False) -> KeyRing:
    """The key ring in a private key file, which only its owner may read or write.

    Like OpenSSH with a private key, a file that group or others can read or write is refused
    (anyone who can read it can sign decisions), and so is one owned by another user unless it is
    root's (its owner can rewrite it). Mode and owner are checked on the opened file itself, so
    the file checked is the file read. ``allow_hmac``: accept the previous release's HMAC keys.
    """
    text = _read(path, check_private)
    try:
        return parse_key_file(text, allow_hmac=allow_hmac)
    except KeyFileError as exc:
        raise type(exc)(f"key file {path}: {exc}") from None


def load_verify_key_file(path: Path) -> KeyRing:
    """The public keys in a verify key file (``qas.key.pub``): Ed25519 public keys only.

    It may be world-readable, but not writable by group or others, and it must belong to this
    user or root: whoever can add a line to it can sign decisions this host enacts.
    """
    text = _read(path, check_public)
    try:
        return parse_key_file(text, public_only=True)
    except KeyFileError as exc:
        raise KeyFileError(f"verify key file {path}: {exc}") from None


def _read(path: Path, check: Callable[[Path, os.stat_result], None]) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        check(path, os.fstat(fd))
    except KeyFileError:
        os.close(fd)
        raise
    with os.fdopen(fd, "r") as f:
        try:
            return f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not text"
            raise KeyFileError(f"cannot read key file {path}: {why or exc}") from None


def check_private(path: Path, st: os.stat_result) -> None:
    """Raise KeyFileError (one line, naming the fix) unless ``st`` is a file only we control."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by group or others (mode {mode:03o}); "
                           f"a private key must be its owner's alone: chmod 600 {path}")  # fmt: skip
    check_owner(path, st)


def check_public(path: Path, st: os.stat_result) -> None:
    """A public key file: anyone may read it, only its owner (this user or root) may write it."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(f"verify key file {path} is writable by group or others (mode "
                           f"{mode:03o}); whoever can add a key to it can sign: chmod 644 {path}")  # fmt: skip
    check_owner(path, st)


def check_owner(path: Path, st: os.stat_result) -> None:
    """A key file must belong to the user this process runs as, or to root."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise KeyFileError(f"key file {path} is owned by uid {st.st_uid}, not by this user "
                           f"(uid {me}) or root: chown it to the user that runs qas")  # fmt: skip


def _create(path: Path, mode: int) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; to rotate, write a new key pair and add its public "
                           "line first to the verify key file everywhere") from None  # fmt: skip
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror or exc}") from None


def write_key_pair(path: Path, key_id: str | None = None) -> SigningKey:
    """A new Ed25519 key: the private key in ``path`` (mode 0600), the public one in
    ``path.pub`` (mode 0644). Neither may exist yet (it may hold the keys in use)."""
    key = SigningKey.generate(key_id or f"k{time.strftime('%Y%m%d')}-{secrets.token_hex(2)}")
    pub = public_path(path)
    if pub.exists():
        _create(pub, 0o644)  # raises the "exists" error before the private key is written
    fd = _create(path, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# QAS decision signing key (private: the decider's alone)\n{key.line()}\n")
    os.chmod(path, 0o600)  # whatever the umask
    try:
        fd = _create(pub, 0o644)
    except KeyFileError:
        path.unlink()  # no half-written pair
        raise
    with os.fdopen(fd, "w") as f:
        f.write("# QAS decision verify keys: key_id:ed25519-public:hex, one per line, all "
                f"verify\n{key.public.line()}\n")  # fmt: skip
    os.chmod(pub, 0o644)
    return key
