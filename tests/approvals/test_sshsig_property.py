"""Property: whatever mutation of a valid signature we accept, ``ssh-keygen -Y verify`` accepts.

We may refuse more than OpenSSH (by design: see runner.approvals.sshsig), never less.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.approvals import sshsig
from runner.approvals.allowed_signers import parse_allowed_signers, verify_approval_signature
from runner.approvals.sshkeys import (
    SK_ED25519,
    PublicKey,
    parse_public_key,
    parse_public_key_blob,
    sk_ed25519_public_key_blob,
    ssh_string,
)
from runner.errors import VerificationError

SSH_KEYGEN = shutil.which("ssh-keygen")
pytestmark = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen (OpenSSH) not installed")

NS = "deploy-approval@example.com"
MESSAGE = b"approve: production deploy #42\n"


class World:
    """Two trusted keys (ed25519 from ssh-keygen, sk-ed25519 built here) and their signatures."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        key_path = directory / "alice"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)],
            check=True,
            capture_output=True,
        )
        key_type, b64 = key_path.with_suffix(".pub").read_text().split()[:2]
        ed_key = parse_public_key(key_type, b64)
        ed_sig = sshsig.sign_with_ssh_keygen(MESSAGE, key_path, NS, quiet=True)

        private = Ed25519PrivateKey.generate()
        point = private.public_key().public_bytes_raw()
        sk_key = parse_public_key_blob(sk_ed25519_public_key_blob(point))
        data = sshsig.signed_data(NS, "sha256", MESSAGE)
        flags, counter = sshsig.SK_USER_PRESENCE, 99
        raw = private.sign(sshsig.sk_signed_data("ssh:", flags, counter, data))
        inner = ssh_string(SK_ED25519) + ssh_string(raw) + bytes([flags]) + counter.to_bytes(4, "big")
        sk_sig = sshsig.armor(sshsig.encode_signature(sk_key.blob, NS, "sha256", inner))

        self.signatures: list[tuple[PublicKey, bytes]] = [(ed_key, ed_sig), (sk_key, sk_sig)]
        self.allowed_text = "".join(f"alice {key.openssh}\n" for key, _ in self.signatures)
        self.allowed_path = directory / "allowed_signers"
        self.allowed_path.write_text(self.allowed_text)
        self.signers = parse_allowed_signers(self.allowed_text, source="allowed_signers")

    def ours(self, message: bytes, armored: bytes, namespace: str) -> bool:
        try:
            verify_approval_signature(
                message,
                armored,
                principal="alice",
                namespace=namespace,
                signers=self.signers,
                at=datetime.now(UTC),
            )
        except VerificationError:
            return False
        return True

    def ssh_keygen(self, message: bytes, armored: bytes, namespace: str) -> bool:
        sig = self.dir / "candidate.sig"
        sig.write_bytes(armored)
        argv = ["ssh-keygen", "-Y", "verify", "-f", str(self.allowed_path), "-I", "alice"]
        result = subprocess.run(
            [*argv, "-n", namespace, "-s", str(sig)], input=message, capture_output=True
        )
        return result.returncode == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("sshsig-property"))


# Namespaces ssh-keygen can take on its command line: non-empty, no NUL, not an option.
namespaces = st.one_of(
    st.just(NS),
    st.sampled_from(["git", "file", NS + "x", NS.upper(), NS[:-1]]),
    st.text(
        st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12
    ).filter(lambda s: not s.startswith("-")),
)

mutations = st.one_of(
    st.tuples(st.just("none")),
    st.tuples(st.just("flip_blob"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("flip_armor"), st.integers(0, 10_000), st.integers(0, 127)),
    st.tuples(st.just("truncate_blob"), st.integers(1, 200)),
    st.tuples(st.just("truncate_armor"), st.integers(1, 400)),
    st.tuples(st.just("insert_blob"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("namespace"), namespaces),
    st.tuples(st.just("message"), st.binary(max_size=64)),
)


def mutate(
    armored: bytes, mutation: tuple[object, ...]
) -> tuple[bytes, bytes, str]:
    """(message, armoured signature, expected namespace) after one mutation."""
    kind = mutation[0]
    blob = sshsig.dearmor(armored)
    if kind == "flip_blob":
        index, xor = int(mutation[1]) % len(blob), int(mutation[2])  # type: ignore[call-overload]
        changed = bytearray(blob)
        changed[index] ^= xor
        return MESSAGE, sshsig.armor(bytes(changed)), NS
    if kind == "flip_armor":
        index, value = int(mutation[1]) % len(armored), int(mutation[2])  # type: ignore[call-overload]
        changed = bytearray(armored)
        changed[index] = value
        return MESSAGE, bytes(changed), NS
    if kind == "truncate_blob":
        return MESSAGE, sshsig.armor(blob[: -int(mutation[1])]), NS  # type: ignore[call-overload]
    if kind == "truncate_armor":
        return MESSAGE, armored[: -int(mutation[1])], NS  # type: ignore[call-overload]
    if kind == "insert_blob":
        index = int(mutation[1]) % (len(blob) + 1)  # type: ignore[call-overload]
        extra = mutation[2]
        assert isinstance(extra, bytes)
        return MESSAGE, sshsig.armor(blob[:index] + extra + blob[index:]), NS
    if kind == "namespace":
        assert isinstance(mutation[1], str)
        return MESSAGE, armored, mutation[1]
    if kind == "message":
        assert isinstance(mutation[1], bytes)
        return mutation[1], armored, NS
    return MESSAGE, armored, NS


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(which=st.integers(0, 1), mutation=mutations)
def test_never_accept_what_ssh_keygen_refuses(
    world: World, which: int, mutation: tuple[object, ...]
) -> None:
    _, armored = world.signatures[which]
    message, candidate, namespace = mutate(armored, mutation)
    accepted = world.ours(message, candidate, namespace)
    event(f"{mutation[0]}: {'accepted' if accepted else 'refused'}")
    if accepted:
        assert world.ssh_keygen(message, candidate, namespace), (mutation, candidate)


def test_unmutated_signatures_pass_both(world: World) -> None:
    """The property above is not vacuous: both verifiers accept the originals."""
    for _, armored in world.signatures:
        assert world.ours(MESSAGE, armored, NS)
        assert world.ssh_keygen(MESSAGE, armored, NS)
