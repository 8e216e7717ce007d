"""Key files on disk: `qas keygen` writes one (mode 0600), the services load one.

Parsing and the key types are in shared/signing.py; nothing here prints key material.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import time
from pathlib import Path

from shared.signing import KeyFileError, KeyRing, SigningKey, parse_key_file

log = logging.getLogger("qas.keys")


def load_key_file(path: Path) -> KeyRing:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        ring = parse_key_file(text)
    except KeyFileError as exc:
        raise KeyFileError(f"key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by others (mode %o); chmod 600 it", path,
                    stat.S_IMODE(mode))  # fmt: skip
    return ring


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
