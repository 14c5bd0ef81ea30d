"""Property: whatever mutation of a valid signature we accept, ``ssh-keygen -Y verify`` accepts.

We may refuse more than OpenSSH (by design: see runner.approvals.sshsig), never less.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import event, given, settings
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
        inner = (
            ssh_string(SK_ED25519) + ssh_string(raw) + bytes([flags]) + counter.to_bytes(4, "big")
        )
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
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12).filter(
        lambda s: not s.startswith("-")
    ),
)

Candidate = tuple[bytes, bytes, str]  # message, armoured signature, expected namespace


@dataclass(frozen=True)
class Mutation:
    name: str
    apply: Callable[[bytes], Candidate]

    def __repr__(self) -> str:
        return self.name


def _on_blob(name: str, change: Callable[[bytes], bytes]) -> Mutation:
    return Mutation(
        name, lambda armored: (MESSAGE, sshsig.armor(change(sshsig.dearmor(armored))), NS)
    )


def flip_blob(index: int, xor: int) -> Mutation:
    def change(blob: bytes) -> bytes:
        out = bytearray(blob)
        out[index % len(blob)] ^= xor
        return bytes(out)

    return _on_blob(f"flip_blob({index}, {xor})", change)


def insert_blob(index: int, extra: bytes) -> Mutation:
    def change(blob: bytes) -> bytes:
        at = index % (len(blob) + 1)
        return blob[:at] + extra + blob[at:]

    return _on_blob(f"insert_blob({index}, {extra!r})", change)


def truncate_blob(cut: int) -> Mutation:
    return _on_blob(f"truncate_blob({cut})", lambda blob: blob[:-cut])


def flip_armor(index: int, value: int) -> Mutation:
    def apply(armored: bytes) -> Candidate:
        out = bytearray(armored)
        out[index % len(armored)] = value
        return MESSAGE, bytes(out), NS

    return Mutation(f"flip_armor({index}, {value})", apply)


def truncate_armor(cut: int) -> Mutation:
    return Mutation(f"truncate_armor({cut})", lambda armored: (MESSAGE, armored[:-cut], NS))


def other_namespace(namespace: str) -> Mutation:
    return Mutation(f"namespace({namespace!r})", lambda armored: (MESSAGE, armored, namespace))


def other_message(message: bytes) -> Mutation:
    return Mutation(f"message({message!r})", lambda armored: (message, armored, NS))


mutations = st.one_of(
    st.just(Mutation("none", lambda armored: (MESSAGE, armored, NS))),
    st.builds(flip_blob, st.integers(0, 10_000), st.integers(1, 255)),
    st.builds(flip_armor, st.integers(0, 10_000), st.integers(0, 127)),
    st.builds(truncate_blob, st.integers(1, 200)),
    st.builds(truncate_armor, st.integers(1, 400)),
    st.builds(insert_blob, st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.builds(other_namespace, namespaces),
    st.builds(other_message, st.binary(max_size=64)),
)


@settings(max_examples=60, deadline=None, database=None)
@given(which=st.integers(0, 1), mutation=mutations)
def test_never_accept_what_ssh_keygen_refuses(world: World, which: int, mutation: Mutation) -> None:
    _, armored = world.signatures[which]
    message, candidate, namespace = mutation.apply(armored)
    accepted = world.ours(message, candidate, namespace)
    event(f"{mutation.name.split('(')[0]}: {'accepted' if accepted else 'refused'}")
    if accepted:
        assert world.ssh_keygen(message, candidate, namespace), (mutation, candidate)


def test_unmutated_signatures_pass_both(world: World) -> None:
    """The property above is not vacuous: both verifiers accept the originals."""
    for _, armored in world.signatures:
        assert world.ours(MESSAGE, armored, NS)
        assert world.ssh_keygen(MESSAGE, armored, NS)
