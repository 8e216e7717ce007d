"""Key files on disk: `qas keygen` writes one (mode 0600), the services load one.

Parsing and the key types are in shared/signing.py; nothing here prints key material.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from shared.signing import KeyFileError, KeyRing, SigningKey, parse_key_file


def load_key_file(path: Path) -> KeyRing:
    """The key ring in a private key file, which only its owner may read or write.

    Like OpenSSH with a private key, a file that group or others can read or write is refused
    (anyone who can read it can sign decisions), and so is one owned by another user unless it is
    root's (its owner can rewrite it). Mode and owner are checked on the opened file itself, so
    the file checked is the file read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        check_private(path, os.fstat(fd))
    except KeyFileError:
        os.close(fd)
        raise
    with os.fdopen(fd, "r") as f:
        try:
            text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not text"
            raise KeyFileError(f"cannot read key file {path}: {why or exc}") from None
    try:
        return parse_key_file(text)
    except KeyFileError as exc:
        raise KeyFileError(f"key file {path}: {exc}") from None


def check_private(path: Path, st: os.stat_result) -> None:
    """Raise KeyFileError (one line, naming the fix) unless ``st`` is a file only we control."""
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by group or others (mode {mode:03o}); "
                           f"a private key must be its owner's alone: chmod 600 {path}")  # fmt: skip
    check_owner(path, st)


def check_owner(path: Path, st: os.stat_result) -> None:
    """A key file must belong to the user this process runs as, or to root."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise KeyFileError(f"key file {path} is owned by uid {st.st_uid}, not by this user "
                           f"(uid {me}) or root: chown it to the user that runs qas")  # fmt: skip


def write_key_file(path: Path, key_id: str | None = None) -> SigningKey:
    """A new key in a new file, created with mode 0600 (never an existing file: it may hold
    the keys in use)."""
    key = SigningKey.generate(key_id or f"k{time.strftime('%Y%m%d')}-{secrets.token_hex(2)}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists; to rotate, write a new file and put its line first "
                           "in the key file everywhere") from None  # fmt: skip
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"# QAS signing keys: key_id:hex, the first line signs, all verify\n{key.line()}\n")
    os.chmod(path, 0o600)  # whatever the umask
    return key
