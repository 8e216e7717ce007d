"""Key-file hygiene: a private key file is its owner's alone, a public one may be read by all
but written by its owner only, or it is refused with the fix."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.keys import load_key_file, load_verify_key_file, public_path, write_key_pair
from shared.signing import KeyFileError, LegacyKeyError, SigningKey, VerifyKey
from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "d4" * 32


def key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "k.key"
    path.write_text(f"k1:ed25519-private:{SECRET}\n")
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


def test_keygen_writes_0600_and_a_public_0644_whatever_the_umask_and_both_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.key"
    old = os.umask(0)
    try:
        key = write_key_pair(path, "fresh")
    finally:
        os.umask(old)
    pub = public_path(path)
    assert pub == tmp_path / "new.key.pub"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert load_key_file(path).signer.key_id == key.key_id == "fresh"
    public = load_verify_key_file(pub)
    assert [k.key_id for k in public.keys] == ["fresh"] and not public.has_private
    assert isinstance(public.keys[0], VerifyKey)
    assert public.keys[0].public_bytes == key.public.public_bytes
    secret = key.line().rsplit(":", 1)[1]
    assert secret not in pub.read_text()  # the public file holds no private material


def test_keygen_never_overwrites_either_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    public_path(path).write_text("# somebody's verify keys\n")
    with pytest.raises(KeyFileError, match="exists"):
        write_key_pair(path)
    assert not path.exists() and "somebody" in public_path(path).read_text()
    public_path(path).unlink()
    write_key_pair(path, "one")
    with pytest.raises(KeyFileError, match="exists"):
        write_key_pair(path, "two")
    assert load_key_file(path).signer.key_id == "one"


@pytest.mark.parametrize("mode", [0o644, 0o444, 0o600, 0o604])
def test_a_public_key_file_may_be_world_readable(tmp_path: Path, mode: int) -> None:
    key = write_key_pair(tmp_path / "k.key", "k1")
    pub = public_path(tmp_path / "k.key")
    pub.chmod(mode)
    assert load_verify_key_file(pub).get("k1") is not None and key.key_id == "k1"


@pytest.mark.parametrize("mode", [0o646, 0o664, 0o666, 0o622])
def test_a_public_key_file_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    write_key_pair(tmp_path / "k.key", "k1")
    pub = public_path(tmp_path / "k.key")
    pub.chmod(mode)
    with pytest.raises(KeyFileError) as err:
        load_verify_key_file(pub)
    assert f"chmod 644 {pub}" in str(err.value) and "writable by group or others" in str(err.value)


def test_a_public_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    write_key_pair(tmp_path / "k.key", "k1")
    pub = public_path(tmp_path / "k.key")
    os.chown(pub, os.geteuid() + 4242, -1)
    with pytest.raises(KeyFileError, match="owned by uid .* chown"):
        load_verify_key_file(pub)


def test_a_private_key_given_as_the_verify_key_file_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600)
    with pytest.raises(KeyFileError, match="a private key in a public key file") as err:
        load_verify_key_file(path)
    assert SECRET[:8] not in str(err.value)


def test_an_hmac_key_file_loads_only_in_the_migration_window(tmp_path: Path) -> None:
    path = tmp_path / "old.key"
    path.write_text(f"k-old:{SECRET}\n")
    path.chmod(0o600)
    with pytest.raises(LegacyKeyError, match=f"key file {path}: line 1: an HMAC key") as err:
        load_key_file(path)
    assert SECRET[:8] not in str(err.value)
    ring = load_key_file(path, allow_hmac=True)
    assert ring.has_hmac and not isinstance(ring.signer, SigningKey)
    path.chmod(0o644)  # a loose HMAC file is refused like any secret
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key_file(path, allow_hmac=True)


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


def test_an_applier_in_the_migration_window_verifies_both_schemes_and_signs_nothing(
    tmp_path: Path,
) -> None:
    """docs/upgrading.md step 2: the old HMAC file beside the new public key, behind the flag."""
    from app.runtime import Options, signing_keys
    from shared.messages import ScalingDecision
    from shared.signing import KeyRing, sign, verify
    from tests.shared.test_signing import _decision, _on_the_wire

    new = tmp_path / "qas.key"
    write_key_pair(new, "ed-1")
    old = tmp_path / "old.key"
    old.write_text(f"hmac-1:{SECRET}\n")
    old.chmod(0o600)
    decider_old = signing_keys(Options(signing_key_file=old, legacy_hmac_keys=True), ("decider",))
    decider_new = signing_keys(Options(signing_key_file=new), ("decider",))
    assert decider_old is not None and decider_new is not None
    windowed = signing_keys(Options(verify_key_file=public_path(new), signing_key_file=old,
                                    legacy_hmac_keys=True), ("applier",))  # fmt: skip
    after = signing_keys(Options(verify_key_file=public_path(new)), ("applier",))
    assert windowed is not None and after is not None and not after.has_private

    def signed(ring: KeyRing) -> ScalingDecision:
        return _on_the_wire(sign(_decision(), ring.signer))

    assert verify(signed(decider_old), windowed) is None
    assert verify(signed(decider_new), windowed) is None
    assert verify(signed(decider_new), after) is None
    fault = verify(signed(decider_old), after)
    assert fault is not None and fault[0] == "legacy_hmac"
    with pytest.raises(KeyFileError, match="--legacy-hmac-keys accepts it during a migration"):
        signing_keys(Options(verify_key_file=public_path(new), signing_key_file=old), ("applier",))
    with pytest.raises(KeyFileError, match="verifies with public keys only"):
        signing_keys(Options(signing_key_file=new), ("applier",))
