"""The approvals branch as the ``file`` source reads it: every version of a step's files, ever.

Anyone who can push to the approvals branch can also delete or rewrite a file there with an
ordinary commit. So the source does not read the branch's tip alone: it reads the history of the
run's folder on the branch (``git log --full-history -m`` of the step's file names), and every
version of a ``<step>.<who>.json`` and its ``.json.sig`` that sat side by side in some commit is a
candidate. A valid abort pushed once still counts after it is deleted, and a merge that drops it
cannot hide it (``--full-history``: no history simplification).

Bounds (each one, when passed, is an error: the step keeps waiting, it never decides on a partial
read):

* ``MAX_COMMITS`` commits that changed the step's files, per read of new history;
* ``MAX_LOG_BYTES`` of ``git log`` output, so a commit adding a million matching names costs
  nothing more than that;
* ``MAX_BLOBS`` distinct file versions per source, each at most ``MAX_FILE_BYTES`` (checked with
  ``git cat-file --batch-check`` before a byte is read; a larger one is reported, not read).

Names are filtered by git (a pathspec of the step's pattern) before anything is listed, so junk in
the folder is never listed nor read. Each new commit is walked once (``--not`` the tips walked
before) and each blob is read once.

Every ref is named in full (``refs/heads/<branch>`` on the remote, ``refs/runner/approvals/...``
locally) and read with ``git show-ref --verify``, never through git's short-name rules, under
which a tag can shadow a branch.
"""

from __future__ import annotations

import re

from msgspec import Struct

from runner.errors import ApprovalError
from runner.git import GitReader, exact_ref

PRIVATE_REF = "refs/runner/approvals"
MAX_COMMITS = 1000
MAX_LOG_BYTES = 16 * 1024 * 1024
MAX_BLOBS = 512
#: an approval body is at most 64 KiB (``document.MAX_BODY_BYTES``); a signature is far smaller
MAX_FILE_BYTES = 64 * 1024
#: tips walked before, given to ``git log --not``; beyond this many the oldest are dropped (a
#: commit walked twice is harmless: its blobs are read once)
MAX_TIPS = 64


class Version(Struct, frozen=True):
    """One version of an approval file and the signature that sat beside it (None: no .sig)."""

    name: str
    body: str
    body_size: int
    signature: str | None
    signature_size: int


def glob_escape(text: str) -> str:
    """``text`` matched literally in a ``:(glob)`` pathspec."""
    return re.sub(r"([*?\[\\])", r"\\\1", text)


class ApprovalsBranch:
    """The approvals branch of ``remote``, for one step of one run."""

    def __init__(self, git: GitReader, remote: str, branch: str, folder: str, step: str) -> None:
        self.git = git
        self.remote = remote
        self.branch = branch
        self.remote_ref = f"refs/heads/{branch}"
        self.local_ref = f"{PRIVATE_REF}/{branch}"
        self.folder = folder.strip("/")
        self.step = step
        self.body_name = re.compile(re.escape(step) + r"\.[^/]+\.json")
        #: the tip whose history is read, and the tips walked before (for ``--not``)
        self.tip: str | None = None
        self.walked: list[str] = []
        #: (body oid, signature oid or "") pairs found so far, and the blob sizes
        self.pairs: dict[tuple[str, str], str] = {}
        self.sizes: dict[str, int] = {}
        self.oids: set[str] = set()
        #: a tip whose history passed a bound, and the error: not walked again until it moves
        self.failed: tuple[str, ApprovalError] | None = None
        #: how many git processes this reader started (reported by the benchmark)
        self.calls = 0

    # -- the remote --------------------------------------------------------------------------

    def remote_tip(self) -> str | None:
        """The branch's commit on the remote (one round trip, nothing fetched), or None when the
        branch does not exist there yet."""
        self.calls += 1
        listing = self.git.read("ls-remote", "--", self.remote, self.remote_ref, limit=1024 * 1024)
        # ls-remote matches patterns by their tail (refs/tags/refs/heads/x would match): keep
        # only the exact name
        for line in listing.decode("utf-8", "replace").splitlines():
            oid, _, name = line.partition("\t")
            if name == self.remote_ref:
                return oid
        return None

    def fetch(self) -> str:
        """Fetch the branch into the private ref; the commit it now names."""
        self.calls += 2
        self.git.read(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            self.remote,
            f"+{self.remote_ref}:{self.local_ref}",
            limit=1024 * 1024,
        )
        tip = exact_ref(self.git, self.local_ref)
        if tip is None:
            raise ApprovalError(f"git fetch did not create {self.local_ref}")
        return tip

    def refresh(self) -> None:
        """Ask where the branch is; fetch and read its new history only when it moved."""
        tip = self.remote_tip()
        if tip is None or tip == self.tip:
            return
        if self.failed is not None and self.failed[0] == tip:
            raise self.failed[1]
        self.update(self.fetch())

    # -- the history -------------------------------------------------------------------------

    def update(self, tip: str) -> None:
        """Read the history reachable from ``tip`` that was not read before."""
        if tip == self.tip:
            return
        if self.failed is not None and self.failed[0] == tip:
            raise self.failed[1]  # the same history again: the same answer, without the work
        try:
            try:
                changed = self._changes(tip, self.walked)
            except ApprovalError as exc:
                if not self.walked or not exc.message.startswith("git log failed"):
                    raise
                # a tip walked before is gone (a force push, then gc): read it all again; the
                # blobs already known are not read twice
                changed = self._changes(tip, [])
            self._pair(changed)
        except ApprovalError as exc:
            self.failed = (tip, exc)
            raise
        self.tip = tip
        self.walked = [*self.walked, tip][-MAX_TIPS:]

    def _pathspecs(self) -> list[str]:
        base = f"{glob_escape(self.folder)}/{glob_escape(self.step)}.*.json"
        return [f":(top,glob){base}", f":(top,glob){base}.sig"]

    def _changes(self, tip: str, walked: list[str]) -> dict[str, set[str]]:
        """For each commit that changed the step's files, the body names it changed."""
        self.calls += 1
        output = self.git.read(
            "log",
            "--format=@%H",
            "--no-renames",
            "--full-history",
            "-m",
            "--raw",
            "--no-abbrev",
            "-z",
            f"--max-count={MAX_COMMITS + 1}",
            tip,
            *(["--not", *walked] if walked else []),
            "--",
            *self._pathspecs(),
            limit=MAX_LOG_BYTES,
        )
        changed: dict[str, set[str]] = {}
        commit = ""
        tokens = iter(output.split(b"\0"))
        prefix = self.folder + "/"
        for token in tokens:
            token = token.lstrip(b"\n")
            if token.startswith(b"@"):
                commit = token[1:].decode("ascii")
                changed.setdefault(commit, set())
            elif token.startswith(b":"):
                path = next(tokens, b"").decode("utf-8", "replace")
                if not path.startswith(prefix):
                    continue
                name = path[len(prefix) :].removesuffix(".sig")
                if self.body_name.fullmatch(name) and commit:
                    changed[commit].add(name)
        if len(changed) > MAX_COMMITS:
            raise ApprovalError(
                f"more than {MAX_COMMITS} commits on branch {self.branch} changed step "
                f"{self.step}'s files in {self.folder}/; refusing to read its history in part "
                "(an abort could hide in the rest)",
                hint="a fresh run id starts a fresh folder",
            )
        return changed

    def _pair(self, changed: dict[str, set[str]]) -> None:
        """Look up, in each commit, each changed body and the signature beside it."""
        queries = [
            f"{commit}:{self.folder}/{name}{suffix}"
            for commit, names in changed.items()
            for name in sorted(names)
            for suffix in ("", ".sig")
        ]
        if not queries:
            return
        names = [q.rsplit("/", 1)[-1] for q in queries]
        self.calls += 1
        output = self.git.read(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
            input=("\n".join(queries) + "\n").encode("utf-8"),
            limit=MAX_LOG_BYTES,
        )
        answers = output.decode("utf-8", "replace").splitlines()
        if len(answers) != len(queries):
            raise ApprovalError("git cat-file answered fewer lines than it was asked")
        for index in range(0, len(queries), 2):
            body = _blob(answers[index])
            if body is None:
                continue  # the body was deleted by this commit: its earlier versions stay
            signature = _blob(answers[index + 1])
            self.sizes[body[0]] = body[1]
            if signature is not None:
                self.sizes[signature[0]] = signature[1]
            key = (body[0], signature[0] if signature else "")
            self.pairs.setdefault(key, names[index])
            self.oids.update(oid for oid in key if oid)
            if len(self.oids) > MAX_BLOBS:
                raise ApprovalError(
                    f"more than {MAX_BLOBS} versions of step {self.step}'s files in "
                    f"{self.folder}/ on branch {self.branch}; refusing to read them in part",
                    hint="a fresh run id starts a fresh folder",
                )

    def versions(self) -> list[Version]:
        """Every body version found, with the signature beside it; a body that was ever signed
        is not reported again unsigned."""
        signed = {body for body, signature in self.pairs if signature}
        return [
            Version(name, body, self.sizes[body], signature or None, self.sizes.get(signature, 0))
            for (body, signature), name in self.pairs.items()
            if signature or body not in signed
        ]

    def read(self, oids: list[str]) -> dict[str, bytes]:
        """The contents of ``oids``, each of a size checked before (at most MAX_FILE_BYTES)."""
        wanted = [oid for oid in dict.fromkeys(oids) if self.sizes.get(oid, 0) <= MAX_FILE_BYTES]
        if not wanted:
            return {}
        self.calls += 1
        total = sum(self.sizes[oid] + 128 for oid in wanted)
        output = self.git.read(
            "cat-file",
            "--batch",
            input=("\n".join(wanted) + "\n").encode("ascii"),
            limit=total,
        )
        found: dict[str, bytes] = {}
        position = 0
        for oid in wanted:
            end = output.index(b"\n", position)
            header = output[position:end].split()
            size = int(header[2]) if len(header) == 3 else -1
            if size < 0 or header[0].decode() != oid:
                raise ApprovalError(f"git cat-file could not read {oid}")
            found[oid] = output[end + 1 : end + 1 + size]
            position = end + 1 + size + 1
        return found


def _blob(answer: str) -> tuple[str, int] | None:
    parts = answer.split()
    if len(parts) == 3 and parts[1] == "blob" and parts[2].isdigit():
        return parts[0], int(parts[2])
    return None
