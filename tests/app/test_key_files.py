"""Key-file hygiene: a private key file is its owner's alone, or it is refused with the fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.keys import load_key_file, write_key_file
from shared.signing import KeyFileError
from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "d4" * 32


def key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "k.key"
    path.write_text(f"k1:{SECRET}\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610, 0o601])
def test_a_key_file_group_or_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(KeyFileError) as err:
        load_key_file(path)
    message = str(err.value)
    assert f"chmod 600 {path}" in message and f"(mode {mode:03o})" in message
    assert "\n" not in message and SECRET[:8] not in message


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_key_file_only_its_owner_can_use_is_loaded(tmp_path: Path, mode: int) -> None:
    assert load_key_file(key_file(tmp_path, mode)).signer.key_id == "k1"


def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600)
    other = os.geteuid() + 4242
    os.chown(path, other, -1)  # the suite runs as root (DEVELOPERS.md), so this is allowed
    with pytest.raises(KeyFileError) as err:
        load_key_file(path)
    message = str(err.value)
    assert f"owned by uid {other}" in message and "chown" in message
    assert "\n" not in message and SECRET[:8] not in message


def test_a_key_file_owned_by_root_is_accepted_by_any_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = key_file(tmp_path, 0o600)
    os.chown(path, 0, -1)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # as a service user would see root's file
    assert load_key_file(path).signer.key_id == "k1"
    os.chown(path, 4343, -1)  # and another service user's file is refused
    with pytest.raises(KeyFileError, match="owned by uid 4343, not by this user \\(uid 4242\\)"):
        load_key_file(path)


def test_a_symlink_is_judged_by_the_file_it_points_to(tmp_path: Path) -> None:
    target = key_file(tmp_path, 0o644)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(link)
    target.chmod(0o600)
    assert load_key_file(link).signer.key_id == "k1"


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key_file(folder)


def test_keygen_writes_0600_whatever_the_umask_and_its_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    old = os.umask(0)
    try:
        key = write_key_file(path, "fresh")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path).signer.key_id == key.key_id == "fresh"


@pytest.mark.parametrize("command", ["decider", "applier"])
def test_a_service_given_a_world_readable_key_file_refuses_to_start(
    tmp_path: Path, command: str
) -> None:
    path = key_file(tmp_path, 0o644)
    r = subprocess.run([sys.executable, "-m", "app.cli", command, "--bootstrap-servers",
                        f"127.0.0.1:{free_port()}", "--no-metrics", "--signing-key-file",
                        str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: key file {path} is accessible by group or others")
    assert f"chmod 600 {path}" in line and SECRET[:8] not in r.stdout + r.stderr
