"""The one way the runner reads git (as pre-commit has ``git.py`` over ``cmd_output``).

Whoever reads git (the ``file`` source and its approvals branch, the trust files, the policy, the
run's commit) is handed a :class:`GitReader` instead of starting git itself; :class:`Git` is the
real one, on top of :func:`runner.process.capture`: one timeout, bounded output, git's own
message on failure, one error type (:class:`runner.errors.GitError`).

Trust files are read with :func:`verified_file`, which hashes every object from the pinned
commit down to the file: git itself does not check that an object file holds what its id names.

Each call runs in an environment the runner controls:

* the caller's ``GIT_DIR``, ``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, object directories, ``-c``
  settings (``GIT_CONFIG_PARAMETERS``, ``GIT_CONFIG_COUNT``...) and the like are dropped: run from
  a git hook or an alias, the runner would otherwise read another repository than its workspace;
* ``GIT_NO_REPLACE_OBJECTS=1``: ``git replace`` (``refs/replace/*``, which a step or a fetch of
  all refs can write) would otherwise substitute the contents of the pinned trust commit; and
  ``GIT_GRAFT_FILE`` set to a path that cannot exist: ``.git/info/grafts``, which a step can
  write, would otherwise cut the approvals branch's history and hide an abort in it
  (docs/security.md, Defects found and fixed; ``tests/attacks/test_git_replace.py``);
* ``GIT_TERMINAL_PROMPT=0``: no credential prompt blocks a waiting run;
* ``core.hooksPath`` and ``core.fsmonitor`` are overridden: a step can write ``.git/hooks`` or
  ``.git/config``, and the runner's own ``git fetch`` would then run its hook (the
  ``reference-transaction`` hook runs when a ref moves) with the runner's environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from runner.errors import GitError
from runner.process import CAPTURE_LIMIT, ProgramError, capture

#: every git call the runner makes is a read (or a fetch) that should take seconds: this bounds
#: a hung remote or a huge repository, and a failure is never a decision
TIMEOUT = 120.0

#: variables of the caller's environment kept for git: how to reach a remote (ssh, proxies,
#: certificates) and which config files the operator chose. Every other ``GIT_*`` is dropped.
KEPT = frozenset(
    {
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_ASKPASS",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_NO_VERIFY",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_PROXY_COMMAND",
        "GIT_ALLOW_PROTOCOL",
        # which config files to read, chosen by whoever runs the runner (not a hook's context,
        # which sets GIT_CONFIG_PARAMETERS and GIT_DIR instead): kept, as HOME is
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
    }
)

#: set on every call (see the module's docstring); the graft file is a path that cannot exist
FORCED = {
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_GRAFT_FILE": "/dev/null/no-grafts",
    "GIT_TERMINAL_PROMPT": "0",
}

#: ``-c`` settings on every call: a step may have written the repository's config or hooks
OVERRIDES = ("core.hooksPath=/dev/null", "core.fsmonitor=false", "log.showSignature=false")


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as git gets it from the runner (see the module's docstring)."""
    kept = {k: v for k, v in environ.items() if not k.startswith("GIT_") or k in KEPT}
    return {**kept, **FORCED}


class GitReader(Protocol):
    """What reads git for the runner: the repository at ``workspace``."""

    @property
    def workspace(self) -> Path: ...

    def read(self, *args: str, input: bytes | None = None, limit: int = CAPTURE_LIMIT) -> bytes:
        """``git ARGS``'s output; :class:`GitError` if it does not exit 0."""
        ...

    def query(self, *args: str, input: bytes | None = None) -> bytes | None:
        """``git ARGS``'s output, or None when it exits non-zero (an answer: "no such ref",
        "not an ancestor"); :class:`GitError` only when git gives no answer at all."""
        ...


class Git:
    """:class:`GitReader` running the real git in ``workspace``."""

    def __init__(
        self,
        workspace: Path,
        *,
        environ: Mapping[str, str] | None = None,
        executable: str = "git",
        timeout: float = TIMEOUT,
    ) -> None:
        self._workspace = workspace
        self.env = git_environment(os.environ if environ is None else environ)
        self.executable = executable
        self.timeout = timeout
        #: how many git processes this reader started (the benchmarks report it)
        self.calls = 0

    @property
    def workspace(self) -> Path:
        return self._workspace

    def __repr__(self) -> str:
        return f"Git({str(self._workspace)!r})"

    def _run(
        self, args: tuple[str, ...], input: bytes | None, limit: int
    ) -> tuple[int, bytes, str]:
        if not args:
            raise ValueError("no git command given")
        overrides = [part for setting in OVERRIDES for part in ("-c", setting)]
        argv = [self.executable, *overrides, "-C", str(self._workspace), *args]
        self.calls += 1
        try:
            done = capture(argv, timeout=self.timeout, stdin=input, env=self.env, limit=limit)
        except ProgramError as exc:
            if exc.kind == "too-much-output":
                # not "failed": git answered, and the answer was too large to read in part
                raise GitError(
                    f"git {args[0]} wrote more than {_size(limit)}; refusing to read it in part"
                ) from None
            raise GitError(f"git {args[0]} failed: {exc.message}") from None
        return done.exit_code, done.stdout, done.detail()

    def read(self, *args: str, input: bytes | None = None, limit: int = CAPTURE_LIMIT) -> bytes:
        code, out, detail = self._run(args, input, limit)
        if code != 0:
            raise GitError(f"git {args[0]} failed: {detail}")
        return out

    def query(self, *args: str, input: bytes | None = None) -> bytes | None:
        code, out, _ = self._run(args, input, CAPTURE_LIMIT)
        return out if code == 0 else None


def _size(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


# -- what the runner asks git ----------------------------------------------------------------


def exact_ref(git: GitReader, ref: str) -> str | None:
    """The object the full ref name ``ref`` points to, or None: ``git show-ref --verify`` reads
    that one ref, never a short-name guess (``rev-parse`` would try ``refs/tags/<ref>`` and
    others when ``ref`` does not exist)."""
    out = git.query("show-ref", "--verify", "--hash", "--", ref)
    value = out.decode("ascii", "replace").strip() if out is not None else ""
    return value or None


#: a ref's name, what it points to, and what that peels to once (an annotated tag's target)
_REF_FORMAT = "%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"


def rev_commit(git: GitReader, name: str) -> str | None:
    """The commit ``name`` peels to, or None. A full ref name (``refs/...``) is read exactly
    (:func:`ref_commit`); other names (``HEAD``, a commit id) go through ``git rev-parse``."""
    if name.startswith("refs/"):
        return ref_commit(git, name)
    out = git.query("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    value = out.decode("ascii", "replace").strip() if out is not None else ""
    return value or None


def ref_commit(git: GitReader, ref: str) -> str | None:
    """The commit the full ref name ``ref`` peels to, or None, in one git process. ``git
    for-each-ref`` never guesses a short name (``rev-parse`` would try ``refs/tags/<ref>`` and
    others when ``ref`` does not exist), but its patterns also match the refs below ``ref/``,
    and a name with a glob matches others: only the line naming ``ref`` itself is taken. A
    branch names its commit, an annotated tag peels to it once; anything else (a tag of a tag,
    a tag of a tree) is peeled by ``rev-parse`` of the object's id."""
    out = git.query("for-each-ref", f"--format={_REF_FORMAT}", "--", ref)
    for line in (out or b"").decode("utf-8", "replace").splitlines():
        fields = line.split("\0")
        if len(fields) != 5 or fields[0] != ref:
            continue
        _, kind, target, peeled_kind, peeled = fields
        if kind == "commit":
            return target
        if kind == "tag" and peeled_kind == "commit":
            return peeled
        return rev_commit(git, target)
    return None


def head(git: GitReader) -> str | None:
    """The commit checked out in the workspace, or None (no repository, no commit yet)."""
    return rev_commit(git, "HEAD")


def is_ancestor(git: GitReader, commit: str, tip: str) -> bool:
    """Whether ``commit`` is ``tip`` or one of its ancestors."""
    return git.query("merge-base", "--is-ancestor", "--", commit, tip) is not None


def has_file(git: GitReader, commit: str, path: str) -> bool:
    """Whether ``path`` exists at ``commit``."""
    return git.query("cat-file", "-e", f"{commit}:{path}") is not None


# -- reads that do not take the repository's word for it --------------------------------------

#: a trust file, or a tree on the way to it, larger than this is refused (trust files are small)
MAX_VERIFIED_BYTES = 4 * 1024 * 1024
_HASHES = {40: "sha1", 64: "sha256"}


class _Verified:
    """Files read by :func:`verified_file` in this process, by (commit, path): what a commit
    holds never changes, and what was read was checked against the commit's id, so reading it
    again (people, keys and policy are read at each check of a run, at the same pinned commit)
    is one git process saved, never a different answer. Bounded, the oldest dropped first; gates
    of steps started together read from their own threads."""

    def __init__(self, entries: int = 256, size: int = 32 * 1024 * 1024) -> None:
        self.files: dict[tuple[str, str], bytes | None] = {}
        self.entries = entries
        self.size = size
        self.held = 0
        self._lock = threading.Lock()

    def keep(self, key: tuple[str, str], data: bytes | None) -> None:
        size = len(data or b"")
        with self._lock:
            if key in self.files:
                return
            while self.files and (len(self.files) >= self.entries or self.held + size > self.size):
                self.held -= len(self.files.pop(next(iter(self.files))) or b"")
            self.files[key] = data
            self.held += size


_VERIFIED = _Verified()


def verified_file(git: GitReader, commit: str, path: str) -> bytes | None:
    """:func:`read_verified`, each (commit, path) read once in this process (see
    :class:`_Verified`)."""
    key = (commit, path)
    try:
        return _VERIFIED.files[key]
    except KeyError:
        pass
    data = read_verified(git, commit, path)
    _VERIFIED.keep(key, data)
    return data


def read_verified(git: GitReader, commit: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``commit``, every object on the way checked against its id;
    None when the commit's (verified) tree has no such file.

    A commit id names its contents only if git is asked honestly: whoever can write ``.git``
    (a step of the deployed commit) can overwrite an object file, add a pack holding another
    object under the same id, or point ``objects/info/alternates`` elsewhere, and ``git show
    COMMIT:PATH`` then shows their files under the pinned trust commit's id. So the commit, each
    tree down the path and the file are read (one ``git cat-file --batch``) and hashed here: an
    object that does not hash to the id its parent names is a :class:`GitError`."""
    algorithm = _HASHES.get(len(commit))
    parts = [p for p in path.split("/") if p]
    if algorithm is None or not all(c in "0123456789abcdef" for c in commit) or not parts:
        raise GitError(f"cannot read {commit}:{path}: not a full commit id and a path")
    names = [commit, *(f"{commit}:{'/'.join(parts[:i])}" for i in range(len(parts) + 1))]
    names[1] = f"{commit}^{{tree}}"
    output = git.read(
        "cat-file",
        "--batch",
        input=("\n".join(names) + "\n").encode("utf-8"),
        limit=MAX_VERIFIED_BYTES * len(names),
    )
    objects = _batch(output, len(names))
    kind, body = _checked(objects[0], commit, algorithm)
    if kind != "commit" or not body.startswith(b"tree "):
        raise GitError(f"{commit} is not a commit")
    expected = body[5 : body.index(b"\n")].decode("ascii", "replace")
    for index, name in enumerate(parts):
        kind, tree = _checked(objects[index + 1], expected, algorithm)
        if kind != "tree":
            return None  # a file on the way: no such path
        entry = _tree_entry(tree, name.encode("utf-8"), len(commit) // 2)
        if entry is None:
            return None
        mode, expected = entry
        if index == len(parts) - 1 and mode not in (b"100644", b"100755"):
            raise GitError(f"{path} at {commit[:12]} is not a regular file")
    kind, blob = _checked(objects[-1], expected, algorithm)
    if kind != "blob":
        raise GitError(f"{path} at {commit[:12]} is not a file")
    return blob


def _batch(output: bytes, count: int) -> list[tuple[str, str, bytes] | None]:
    """``git cat-file --batch``'s answers: (id, type, contents), None for a missing name."""
    found: list[tuple[str, str, bytes] | None] = []
    position = 0
    for _ in range(count):
        end = output.find(b"\n", position)
        if end < 0:
            raise GitError("git cat-file answered fewer objects than it was asked")
        header = output[position:end].decode("utf-8", "replace").split()
        position = end + 1
        if len(header) != 3 or not header[2].isdigit():
            found.append(None)  # "<name> missing" (or ambiguous)
            continue
        size = int(header[2])
        found.append((header[0], header[1], output[position : position + size]))
        position += size + 1
    return found


def _checked(found: tuple[str, str, bytes] | None, oid: str, algorithm: str) -> tuple[str, bytes]:
    """The object's type and contents, once they hash to ``oid``."""
    if found is None:
        raise GitError(f"object {oid[:12]} is missing from the repository")
    _, kind, data = found
    actual = hashlib.new(algorithm, f"{kind} {len(data)}\0".encode() + data).hexdigest()
    if actual != oid:
        raise GitError(
            f"object {oid[:12]} in the repository does not hash to its id (it hashes to "
            f"{actual[:12]}): the repository's objects were changed; refusing to read through it"
        )
    return kind, data


def _tree_entry(tree: bytes, name: bytes, id_bytes: int) -> tuple[bytes, str] | None:
    """The (mode, id) of ``name`` in a raw tree object."""
    position = 0
    while position < len(tree):
        space = tree.index(b" ", position)
        nul = tree.index(b"\0", space)
        if tree[space + 1 : nul] == name:
            return tree[position:space], tree[nul + 1 : nul + 1 + id_bytes].hex()
        position = nul + 1 + id_bytes
    return None


def deployed_commit(git: GitReader) -> str | None:
    """The commit being deployed: HEAD of the workspace's repository, whose scripts the steps
    run (asked of git: a worktree's ``.git`` file, packed refs and the like are git's to read);
    the CI's ``$GITHUB_SHA`` or ``$CI_COMMIT_SHA`` only where there is no repository. Taking
    the CI's first bound approvals to a commit other than the code that ran: a job that
    checked out another ref, or set ``GITHUB_SHA`` to a reviewed commit, had the approvers
    sign for that one while its own scripts ran."""
    try:
        found = head(git)
    except GitError:
        if shutil.which("git") is not None:
            raise
        found = None  # no git here: no repository it could read (a CI image without git)
    if found is not None:
        return found
    for name in ("GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(name):
            return os.environ[name]
    return None
