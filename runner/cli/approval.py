"""``runner approval new|verify``: sign an approval file, or check one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner.approvals.document import MAX_BODY_BYTES, MAX_VALIDITY, new_body
from runner.approvals.files import FIELD_PLACEHOLDER
from runner.approvals.quorum import check_fields
from runner.approvals.request import GUIDED, describe_field, field_specs
from runner.approvals.request import inputs_digest as digest_of_inputs
from runner.approvals.server_client import ServerClient
from runner.approvals.sshsig import sign_with_ssh_keygen
from runner.approvals.verify import verify_signed_file
from runner.bounded import loads, read_argument_file
from runner.characters import visible
from runner.cli.out_folder import approvals_target, check_out_folder
from runner.errors import GitError, UsageError
from runner.git import Git
from runner.inputs import parse_pairs
from runner.model import STEP_ID, is_run_id
from runner.workspace import write_replacing

if TYPE_CHECKING:
    from runner.approvals.verify import SignedFileReport


def _principal(given: str | None) -> str:
    if given:
        return given

    try:
        found = Git(Path.cwd()).query("config", "user.email") or b""
    except GitError:
        found = b""  # no git here: the hint below says what to pass instead
    email = found.decode("utf-8", "replace").strip()
    if not email:
        raise UsageError(
            "no --principal given and `git config user.email` is empty",
            hint="pass the principal your key has in allowed_signers",
        )
    return email


_SHA256 = re.compile(r"[0-9a-f]{64}")


#: the option that gives each value of a request on the command line
_OPTIONS = {
    "run_id": "--run-id",
    "step_id": "--step",
    "environment": "--env",
    "digest": "--digest",
    "commit": "--commit",
}


def _check_request(request: dict[str, Any], request_file: str | None) -> None:
    """Refuse what no waiting run asks for: the run id and step id name the files written (a
    request file saying ``../../x`` must not write outside ``--out``), and every value is of the
    type the runner writes."""

    def refuse(key: str, message: str) -> UsageError:
        option = _OPTIONS.get(key, f"--{key}")
        where = f"--request {request_file}: `{key}`" if request_file else option
        return UsageError(
            f"{where} {message}",
            hint="pass the request file the waiting run wrote, unchanged, or the values it printed",
        )

    for key in ("run_id", "step_id", "environment", "digest"):
        if not isinstance(request[key], str):
            raise refuse(key, "must be a string")
    if request.get("commit") is not None and not isinstance(request["commit"], str):
        raise refuse("commit", "must be a string")
    if "inputs" in request and not isinstance(request["inputs"], dict):
        raise refuse("inputs", "must be a JSON object")
    skipped = request.get("skipped", [])
    if not isinstance(skipped, list) or not all(
        isinstance(step, str) and STEP_ID.fullmatch(step) for step in skipped
    ):
        raise refuse("skipped", "must be a list of step ids")
    run_id, step_id = request["run_id"], request["step_id"]
    if not is_run_id(run_id):
        raise refuse(
            "run_id", f"{run_id!r} is not a run id (1 to 64 letters, digits, `.`, `_` or `-`)"
        )
    if not STEP_ID.fullmatch(step_id):
        raise refuse(
            "step_id",
            f"{step_id!r} is not a step id (letters, digits, `_` and `-`, starting with a "
            "letter or `_`)",
        )
    attempt = request.get("attempt")
    if request.get("kind") == GUIDED and (
        not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1
    ):
        raise refuse("attempt", f"{attempt!r} is not an attempt number (1 or more)")


def _check_fields(asked: object, fields: dict[str, str], decision: str, request_file: str) -> None:
    """Refuse field values the waiting run would refuse, by the rule its gate judges them with
    (``quorum.check_fields``): signed and pushed, such a file cost a CI round trip before the
    resumed run said why it did not count (newcomer pass)."""
    try:
        specs = field_specs(asked if isinstance(asked, list) else ())
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--request {request_file}: `fields`: {exc}",
            hint="pass the request file the waiting run wrote, unchanged",
        ) from None
    reason = check_fields(specs, fields, decision)
    if reason is None:
        return
    raise UsageError(
        f"the run will refuse this {decision}: {reason}",
        hint=(
            "the step's fields: "
            + "; ".join(describe_field(spec) for spec in specs)
            + " (give each as --field NAME=VALUE)"
            if specs
            else "the step asks for no fields: leave out --field"
        ),
    )


def new_approval(
    *,
    run_id: str | None,
    step: str | None,
    environment: str | None,
    digest: str | None,
    commit: str | None,
    request_file: str | None,
    decision: str,
    notes: str,
    fields: dict[str, str],
    key: str,
    principal: str | None,
    namespace: str,
    out: str,
    valid_minutes: float,
    now: datetime | None = None,
    attempt: int | None = None,
    inputs_digest: str | None = None,
    branch: str | None = None,
) -> tuple[Path, Path, str | None]:
    """Write ``<out>/<run-id>/<step>.<principal>.json`` and its ``.sig``; return both paths,
    and the approvals branch ``out`` was checked to be on (None: not known). A guided-failure
    decision (``attempt``, or a request file of that kind) is bound to the failed attempt and
    goes to ``<step>.attempt-<n>.<principal>.json``."""

    request: dict[str, Any] = {}
    if request_file:
        try:
            request = loads(read_argument_file(request_file, what="request file"), what="request")
        except (OSError, ValueError) as exc:
            raise UsageError(f"--request {request_file}: {exc}") from None
        if not isinstance(request, dict):
            raise UsageError(
                f"--request {request_file}: not a request file (a JSON object), but a JSON "
                f"{type(request).__name__}",
                hint="pass the request file the waiting run wrote for the step",
            )
    given = {
        "run_id": run_id,
        "step_id": step,
        "environment": environment,
        "digest": digest,
        "commit": commit,
    }
    for name, value in given.items():
        if value is None:
            continue
        if name in request and request[name] != value:
            raise UsageError(
                f"{_OPTIONS[name]} {value} does not match the request file ({request[name]})"
            )
        request[name] = value
    if inputs_digest is not None:
        if not _SHA256.fullmatch(inputs_digest):
            raise UsageError(
                "--inputs-digest must be the 64 lower-case hex digits the waiting run printed",
                hint="copy it from the log, or pass --request FILE instead",
            )
        given_inputs = request.get("inputs")
        skipped = request.get("skipped") or ()
        if (
            isinstance(given_inputs, dict)
            and digest_of_inputs(given_inputs, skipped) != inputs_digest
        ):
            raise UsageError(
                f"--inputs-digest {inputs_digest} does not match the request file's inputs"
            )
        request["inputs_digest"] = inputs_digest
    if attempt is not None:
        if request_file and request.get("kind") != GUIDED:
            raise UsageError(
                f"--attempt {attempt}: the request file is a manual step's, which a proceed or "
                "abort answers"
            )
        if request.get("attempt", attempt) != attempt:
            raise UsageError(
                f"--attempt {attempt} does not match the request file ({request.get('attempt')})"
            )
        request["kind"], request["attempt"] = GUIDED, attempt
    guided = request.get("kind") == GUIDED
    allowed = ("retry", "skip", "fail") if guided else ("proceed", "abort")
    if decision not in allowed:
        raise UsageError(
            f"--decision {decision} does not answer "
            + (
                f"a failed step's question (attempt {request.get('attempt')}): choose retry, "
                "skip or fail"
                if guided
                else "a manual step: choose proceed or abort (retry, skip and fail answer a "
                "failed step, with --attempt N)"
            )
        )
    for name in ("run_id", "step_id", "environment", "digest"):
        if not request.get(name):
            raise UsageError(
                f"{_OPTIONS[name]} is required (or --request FILE from the waiting run)"
            )
    _check_request(request, request_file)
    for name, value in fields.items():
        if value == FIELD_PLACEHOLDER:
            # the waiting run's log prints `--field ticket=...`: copied unchanged, without
            # --request to judge it by, it signed a value the run refuses
            raise UsageError(
                f"--field {name}={value}: `{value}` is the log's placeholder",
                hint=f"give the value, --field {name}=VALUE (the log lists what it takes)",
            )
    if request_file and "fields" in request:
        _check_fields(request["fields"], fields, decision, request_file)

    target = approvals_target(request, branch)
    if target is not None:
        check_out_folder(out, target)
    if not 0 < valid_minutes <= MAX_VALIDITY.total_seconds() / 60:
        raise UsageError(
            f"--valid-minutes must be between 0 and {MAX_VALIDITY.days} days "
            f"({int(MAX_VALIDITY.total_seconds() // 60)} minutes): the runner refuses "
            "longer approvals"
        )
    who = _principal(principal)
    body = new_body(
        request,
        decision,
        who,
        notes,
        fields,
        now or datetime.now(UTC),
        timedelta(minutes=valid_minutes),
    )
    raw = body.encode()
    if len(raw) > MAX_BODY_BYTES:
        # signed anyway, the runner refuses it as too large and waits on: the approver
        # believed the step approved, and the approval was lost
        raise UsageError(
            f"the approval would be {len(raw):,} bytes, more than the "
            f"{MAX_BODY_BYTES // 1024} KiB a runner accepts; nothing was signed",
            hint="shorten --notes (or the --field values): link to a longer text instead",
        )
    folder = Path(out) / body.run_id
    linked = folder.is_symlink()  # looked at first: a link to no folder yet fails the mkdir
    if not linked:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # a file committed at the run's name: it was an internal error (exit 70)
            raise UsageError(
                f"cannot make the folder {folder}: {exc.strerror or exc}",
                hint="the approvals branch holds a folder for each run; remove what is there "
                "(someone who can push to the branch put it there) and sign again",
            ) from None
    if linked or not folder.resolve().is_relative_to(Path(out).resolve()):
        # anyone who can push to the approvals branch can commit a link in the approver's
        # clone: the signed files went wherever it pointed (a link to a folder not made yet
        # was an internal error, exit 70, before this refusal was reached)
        raise UsageError(
            f"{folder} is a link out of {out}: not writing through it",
            hint="the approvals branch holds no links; remove it (someone who can push to the "
            "branch put it there) and sign again",
        )
    safe = re.sub(r"[^A-Za-z0-9@._-]", "_", who)
    attempt_part = f"attempt-{body.attempt}." if body.attempt is not None else ""
    path = folder / f"{body.step_id}.{attempt_part}{safe}.json"
    signature = sign_with_ssh_keygen(raw, key, namespace)
    sig = path.with_name(path.name + ".sig")
    # each written aside and renamed into place: a link committed under either name is
    # replaced, never followed (it overwrote the file it named: ~/.bashrc, authorized_keys),
    # and a kill leaves the old file or the new one, never half of one
    write_replacing(path, raw, mode=0o644)  # read by git and people, as before
    write_replacing(sig, signature, mode=0o644)
    return path, sig, target.branch if target else None


def report_text(path: str, report: SignedFileReport, at: str | None) -> str:
    """What ``runner approval verify`` prints of ``report`` (the check of ``path`` as of ``at``)."""
    # a file's notes are anyone's text who has a key (an unknown one's too): an escape code of
    # theirs concealed the "NOT valid" verdict printed after them (``characters.visible``)
    if report.refusal is not None:
        return visible(f"{path}: NOT valid: {report.refusal}") + "\n"
    signed = report.signed
    assert signed is not None  # a report without a refusal holds what was verified
    body, person = signed.body, report.person
    lines = [
        f"{path}: signature valid ({signed.key_type} {signed.fingerprint}, "
        f"namespace {report.namespace})",
        f"  who:      {signed.principal}"
        + (
            f" = {person.display_name} ({person.username}; teams: "
            f"{', '.join(report.teams) or 'none'})"
            if person
            else " (not in the people file)"
        ),
        f"  decision: {body.decision}" + (f": {body.notes}" if body.notes else ""),
        f"  run:      {body.run_id}, step {body.step_id}, environment {body.environment}",
        f"  workflow: digest {body.workflow_digest}"
        + (f", commit {body.commit}" if body.commit else ""),
        f"  valid:    {body.issued_at} to {body.expires_at}",
        f"  sha256:   {report.sha256}",
    ]
    if report.problems:
        lines.append(
            "NOT valid: "
            + "; ".join(report.problems)
            + (f"; the run will refuse it too: {report.will_refuse}" if report.will_refuse else "")
        )
    elif report.will_refuse:
        lines.append(f"signature valid, but the run will refuse it: {report.will_refuse}")
    else:
        lines.append("valid" + (f" as of {at}" if at else ""))
    return visible("\n".join(lines)) + "\n"


@click.group()
def approval() -> None:
    """Approve manual steps with signed files (and, with a server, from the terminal)."""


@approval.command("new")
@click.option("--run-id")
@click.option("--step")
@click.option("--env", "environment")
@click.option("--digest", help="The workflow digest the waiting run printed.")
@click.option("--commit", help="The source commit the waiting run printed.")
@click.option(
    "--inputs-digest", help="The digest of the run's inputs the waiting run printed, if any."
)
@click.option(
    "--request",
    "request_file",
    type=click.Path(dir_okay=False),
    help="The request file the waiting run wrote (fills the options above).",
)
@click.option(
    "--decision",
    type=click.Choice(["proceed", "abort", "retry", "skip", "fail"]),
    required=True,
    help="proceed or abort a manual step; retry, skip or fail a failed step (with --attempt).",
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    help="The failed attempt a retry, skip or fail decides (guided failure).",
)
@click.option("--notes", default="")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE")
@click.option("--key", required=True, help="Your SSH private key (or its .pub with ssh-agent).")
@click.option("--principal", help="Your principal in allowed_signers (default: git user.email).")
@click.option("--namespace", default="runner-approval", show_default=True)
@click.option(
    "--branch",
    help="The branch the run reads approvals from (the `file` source's `branch`; default: the "
    "request file's): --out must be in a checkout of it.",
)
@click.option(
    "--out",
    default="approvals",
    show_default=True,
    help="The folder of approval files (the `file` source's `path`) in a checkout of the "
    "approvals branch.",
)
@click.option(
    "--valid-minutes", default=720.0, show_default=True, help="How long the approval stays valid."
)
def new_command(fields: tuple[str, ...], **options: Any) -> int:
    """Write and sign an approval file (through `ssh-keygen -Y sign`)."""

    if options["decision"] in ("abort", "skip", "fail") and not options["notes"].strip():
        article = "an" if options["decision"] == "abort" else "a"
        raise UsageError(f"{article} {options['decision']} needs --notes saying why")
    path, sig, branch = new_approval(fields=parse_pairs(fields, "--field"), **options)
    click.echo(signed_summary(path, options.get("request_file")))
    click.echo(f"wrote {path}\n  and {sig}")
    click.echo(publish_hint(path, sig, branch))
    return 0


def signed_summary(path: Path, request_file: str | None) -> str:
    """What the file just signed approves, said before anything else: a request file comes
    from a state folder anyone who can write the CI artifact may have swapped (another run's,
    under the same run id, with other inputs), and the approver signed it unseen."""
    body = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"signed: {body['decision']} of run {body['run_id']}, step {body['step_id']}, "
        f"environment {body['environment']}",
        f"  commit {str(body.get('commit') or '-')[:12]}, workflow digest "
        f"{str(body['workflow_digest'])[:12]}",
    ]
    inputs: object = None
    skipped: object = None
    if request_file:
        with contextlib.suppress(OSError, ValueError):
            request = loads(read_argument_file(request_file, what="request file"), what="request")
            if isinstance(request, dict):
                inputs, skipped = request.get("inputs"), request.get("skipped")
    digest = body.get("inputs_digest")
    if isinstance(inputs, dict) and inputs:
        shown = json.dumps(inputs, ensure_ascii=False, sort_keys=True)
        lines.append(f"  inputs {shown} (digest {str(digest)[:12]})")
    elif digest:
        lines.append(f"  inputs digest {str(digest)[:12]}")
    if isinstance(skipped, list) and skipped:
        # bound with the inputs: a run skipping a backup is another deployment
        lines.append("  skipping (--skip) " + ", ".join(str(step) for step in skipped))
    lines.append(f"  valid until {body['expires_at']}")
    lines.append("check that this is the run you reviewed: the file approves exactly it")
    # the request file's inputs are the deployer's text: no control character of theirs may
    # rewrite what the approver checks (json.dumps leaves a C1 CSI and U+202E as they are)
    return visible("\n".join(lines))


def publish_hint(path: Path, sig: Path, branch: str | None) -> str:
    """The commands that publish an approval file, runnable from where the user is: ``git -C``
    the folder the files are in (``--out`` may point into another clone, outside this one); the
    push only when ``--out`` was found to be on the approvals ``branch``."""

    folder = path.parent
    try:
        inside = Git(folder).query("rev-parse", "--is-inside-work-tree") or b""
    except GitError:
        inside = b""
    if inside.strip() != b"true":
        return (
            f"now: {folder} is not in a git repository; copy both files into a clone of the "
            "approvals branch (same folder layout), then git add, commit and push them there"
        )
    git = f"git -C {shlex.quote(str(folder))}"
    message = shlex.quote(f"Approve {folder.name}")
    names = f"{shlex.quote(path.name)} {shlex.quote(sig.name)}"
    commit = f"now: {git} add {names} && {git} commit -m {message}"
    if branch is None:
        # which branch the run reads is not known here: a `git push` could go to the deployed
        # branch, where approvals never count (newcomer pass)
        return (
            f"{commit}, then push it to the branch the workflow's `file` source reads "
            "(approvals.file.branch; pass --branch, or --request, to have --out checked)"
        )
    return f"{commit} && {git} push"


@approval.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--workflow", required=True, type=click.Path(dir_okay=False))
@click.option("--run-id")
@click.option(
    "--at", help="Re-verify as of this UTC time (audit evidence), e.g. 2026-01-31T12:00:00Z."
)
@click.option(
    "--insecure-local-trust",
    is_flag=True,
    help="Accept trust files from the working tree (local tries only).",
)
def verify_command(
    file: str, workflow: str, run_id: str | None, at: str | None, insecure_local_trust: bool
) -> int:
    """Check one approval file: who, what, for which run, and valid or why not."""

    report = verify_signed_file(file, workflow, run_id=run_id, at=at, insecure=insecure_local_trust)
    click.echo(report_text(file, report, at), nl=False)
    return 0 if report.valid else 1


# -- approvers at a terminal, against the approval server ------------------------------------

server_option = click.option(
    "--server",
    "server_url",
    required=True,
    envvar="RUNNER_SERVER_URL",
    help="The approval server's URL ($RUNNER_SERVER_URL).",
)
token_option = click.option(
    "--token-env",
    default="RUNNER_APPROVER_TOKEN",
    show_default=True,
    help="The environment variable holding your approver token.",
)


def _client(server_url: str, token_env: str) -> Any:

    token = os.environ.get(token_env)
    if not token:
        raise UsageError(f"${token_env} must hold your approver token")
    return ServerClient(server_url, token, attempts=3)


def _describe(view: dict[str, Any]) -> str:
    request = view.get("request", {})
    lines = [
        f"{view['id']}: {request.get('title', view.get('step_id'))} [{view['state']}]",
        f"  {request.get('workflow')} -> {request.get('environment')}, run {view['run_id']}, "
        f"digest {str(request.get('digest', ''))[:12]}"
        + (f", commit {str(request.get('commit'))[:12]}" if request.get("commit") else ""),
        f"  teams: {', '.join(request.get('teams') or []) or 'anyone'}; {_who_has_it(view)}",
    ]
    for sub in view.get("submissions", []):
        lines.append(
            f"  {sub['result']} by {sub['username']} at {sub['at']}"
            + (f": {sub['notes']}" if sub.get("notes") else "")
        )
    return "\n".join(lines)


def _who_has_it(view: dict[str, Any]) -> str:
    """Who is responsible for a waiting interruption, or who decided a decided one (the server
    clears ``responsible`` once it is decided)."""
    state = view.get("state")
    if state == "waiting":
        return f"responsible: {view.get('responsible') or 'nobody'}"
    wanted = {"approved": "proceed", "aborted": "abort"}.get(str(state))
    deciders = [s.get("username") for s in view.get("submissions", []) if s.get("result") == wanted]
    if deciders:
        return f"decided by: {deciders[-1]}"
    return "decided by: nobody"


def _fields(view: dict[str, Any]) -> list[str]:
    """The fields a proceed must give, and how to answer."""
    lines = []
    args = []
    for spec in view.get("request", {}).get("fields") or []:
        about = [
            str(spec.get("type", "string")),
            "required" if spec.get("required") else "optional",
        ]
        if spec.get("options"):
            about.append("one of " + "/".join(str(o) for o in spec["options"]))
        if spec.get("pattern"):
            about.append(f"matching {spec['pattern']}")
        label = f" ({spec['label']})" if spec.get("label") else ""
        lines.append(f"  field {spec.get('name')}{label}: {', '.join(about)}")
        if spec.get("required"):
            args.append(f" --field {spec.get('name')}=...")
    if view.get("state") == "waiting":
        lines.append(
            f"  to answer: runner approval assign {view['id']}, then runner approval proceed "
            f"{view['id']}{''.join(args)} --notes ... (or abort --notes ...)"
        )
    return lines


@approval.command("list")
@server_option
@token_option
@click.option("--all", "show_all", is_flag=True, help="Also decided ones.")
@click.option("--run", "run_id")
def list_command(server_url: str, token_env: str, show_all: bool, run_id: str | None) -> int:
    """Interruptions waiting for a decision."""
    params: dict[str, Any] = {"pending": not show_all}
    if run_id:
        params["run"] = run_id
    views = _client(server_url, token_env).call("GET", "/interruptions", params=params)
    if not views:
        click.echo("nothing waits for approval")
    for view in views:
        click.echo(_describe(view))
    return 0


@approval.command("show")
@click.argument("interruption_id")
@server_option
@token_option
def show_command(interruption_id: str, server_url: str, token_env: str) -> int:
    """One interruption, with its instructions and decisions."""
    view = _client(server_url, token_env).call("GET", f"/interruptions/{interruption_id}")
    click.echo(_describe(view))
    for line in _fields(view):
        click.echo(line)
    instructions = view.get("request", {}).get("instructions", "")
    if instructions:
        click.echo("\n" + instructions.rstrip())
    return 0


@approval.command("assign")
@click.argument("interruption_id")
@server_option
@token_option
@click.option("--reassign", is_flag=True, help="Take responsibility from whoever has it.")
def assign_command(interruption_id: str, server_url: str, token_env: str, reassign: bool) -> int:
    """Take responsibility for an interruption (needed before proceeding or aborting)."""
    view = _client(server_url, token_env).call(
        "PUT", f"/interruptions/{interruption_id}/responsible", json={"reassign": reassign}
    )
    click.echo(f"you are responsible for {view['id']}")
    return 0


def _submit(
    interruption_id: str,
    server_url: str,
    token_env: str,
    result: str,
    notes: str,
    fields: tuple[str, ...],
) -> int:

    values = parse_pairs(fields, "--field")
    view = _client(server_url, token_env).call(
        "POST",
        f"/interruptions/{interruption_id}/submit",
        json={"result": result, "notes": notes, "fields": values},
    )
    click.echo(f"{result}: {view['id']} is now {view['state']}")
    return 0


@approval.command("proceed")
@click.argument("interruption_id")
@server_option
@token_option
@click.option("--notes", default="")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE")
def proceed_command(
    interruption_id: str, server_url: str, token_env: str, notes: str, fields: tuple[str, ...]
) -> int:
    """Proceed (you must have taken responsibility with `assign`)."""
    return _submit(interruption_id, server_url, token_env, "proceed", notes, fields)


@approval.command("abort")
@click.argument("interruption_id")
@server_option
@token_option
@click.option("--notes", required=True, help="Why (required).")
def abort_command(interruption_id: str, server_url: str, token_env: str, notes: str) -> int:
    """Abort the deployment at this step."""
    return _submit(interruption_id, server_url, token_env, "abort", notes, ())
