"""``runner server``: the approval server, and its administration (users, teams, tokens, audit).

Needs the ``server`` extra: ``pip install 'deploy-runner[server]'``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from runner.approvals.identity import Person, parse_directory
from runner.bounded import loads
from runner.errors import UsageError
from runner.gc_pause import more_start_up
from runner.server.limits import BODY_SECONDS, CONNECTIONS, HEADER_SECONDS, KEEP_ALIVE_SECONDS

#: shown in --help; the file itself is ``default_database()``
DEFAULT_DATABASE = "sqlite:///$XDG_DATA_HOME/runner/runner-server.db"


def default_database(environ: Mapping[str, str] | None = None) -> str:
    """The SQLite file in the user's data folder (``$XDG_DATA_HOME``, else ~/.local/share), not
    in the current folder: started from a clone, the database landed in the repository, and
    ``runner server`` started elsewhere opened another, empty, one."""
    env = os.environ if environ is None else environ
    data = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "sqlite:///" + os.path.join(os.path.abspath(data), "runner", "runner-server.db")


def database_url(database: str | None) -> str:
    return database or os.environ.get("RUNNER_SERVER_DATABASE") or default_database()


def shown_url(url: str) -> str:
    """The database URL with its password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(an unparsable database URL)"


def open_store(database: str | None) -> Any:
    try:
        from runner.server.storage import Store, make_engine, migrate
    except ImportError as exc:
        raise _missing_extra(exc) from None
    url = database_url(database)
    if url == default_database():
        os.makedirs(os.path.dirname(url.removeprefix("sqlite:///")), exist_ok=True)
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = make_engine(url)
    except ArgumentError as exc:  # no URL at all, or a database no installed driver speaks
        raise UsageError(_not_a_database(url, exc), hint=_database_hint(url)) from None
    try:
        migrate(engine)
    except ImportError as exc:  # Alembic is imported only when the schema must change
        raise _missing_extra(exc) from None
    except SQLAlchemyError as exc:
        # a database that cannot be reached is the user's to fix, not an internal error; the
        # driver's first line says why and never holds the URL's password
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UsageError(
            f"cannot open the database {shown_url(url)}: {reason}",
            hint="check --database (or $RUNNER_SERVER_DATABASE) and that the server is up",
        ) from None
    return Store(engine)


def _missing_extra(exc: ImportError) -> UsageError:
    return UsageError(
        f"the approval server needs the server extra ({exc.name} is missing)",
        hint="in a checkout of the runner: pip install -e '.[server]' (from a package index: "
        "pip install 'deploy-runner[server]')",
    )


def _not_a_database(url: str, exc: Exception) -> str:
    """What is wrong with a ``--database`` SQLAlchemy refused, without echoing a value that is
    no URL (it may be a mistyped one holding a password)."""
    if "://" not in url:
        return "--database is not a database URL"
    return f"cannot open the database {shown_url(url)}: {str(exc).splitlines()[0]}"


def _database_hint(url: str) -> str:
    if "://" not in url and "@" not in url:
        # a file path, the mistake a newcomer makes: say the URL that means it
        return f"a SQLite file is a URL: --database sqlite:///{os.path.abspath(url)}"
    return "give an SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST/DATABASE"


database_option = click.option(
    "--database",
    envvar="RUNNER_SERVER_DATABASE",
    help=f"SQLAlchemy URL: sqlite:///FILE or postgresql://... (default {DEFAULT_DATABASE}).",
)


@click.group(invoke_without_command=True)
@database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--people", type=click.Path(dir_okay=False), help="Import this people-and-teams file at start."
)
@click.option(
    "--public-url",
    default="",
    envvar="RUNNER_SERVER_PUBLIC_URL",
    help="The server's address as approvers reach it (links in notifications).",
)
@click.option(
    "--webhook",
    envvar="RUNNER_SERVER_WEBHOOK",
    help="Post chat-compatible JSON here on created, assigned and decided.",
)
@click.option(
    "--limit-concurrency",
    default=CONNECTIONS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Answer 503 to new requests while this many connections are open (each waiting "
    "runner holds one).",
)
@click.option(
    "--header-timeout",
    default=HEADER_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Close a connection that takes longer to send a request's headers (seconds).",
)
@click.option(
    "--body-timeout",
    default=BODY_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Answer 408 to a request whose body takes longer to arrive (seconds).",
)
@click.option(
    "--keep-alive-timeout",
    default=KEEP_ALIVE_SECONDS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Close a kept-alive connection idle this long (seconds; the --header-timeout "
    "closes it first when it is shorter).",
)
@click.pass_context
def server(
    ctx: click.Context,
    database: str | None,
    host: str,
    port: int,
    people: str | None,
    public_url: str,
    webhook: str | None,
    limit_concurrency: int,
    header_timeout: float,
    body_timeout: float,
    keep_alive_timeout: int,
) -> int:
    """Serve the approval server (with no subcommand), or administer it."""
    ctx.obj = {"database": database}
    if ctx.invoked_subcommand is not None:
        return 0
    listening = _bind(host, port)
    with more_start_up():
        store = open_store(database)
        import uvicorn

        from runner.server.connections import with_header_deadline
        from runner.server.web import create_full_app

        address = public_url or f"http://{host}:{port}"
        app = create_full_app(
            store,
            public_url=public_url,
            webhook=webhook,
            address=address,
            body_seconds=body_timeout,
        )
    if people:
        _import(store, people)
    open_files = _raise_open_files(limit_concurrency + SPARE_FILES)
    banner = [
        f"runner server: listening on http://{host}:{port}/",
        f"  database: {shown_url(database_url(database))}",
        "  stop with Ctrl-C (or SIGTERM)",
    ]
    if open_files < limit_concurrency + SPARE_FILES:
        banner.append(
            f"  warning: the open-files limit is {open_files}, below --limit-concurrency "
            f"{limit_concurrency}: raise it (ulimit -n) or lower --limit-concurrency"
        )

    class Server(uvicorn.Server):
        """Says where it listens, on which database and how to stop it, once the socket is
        bound (uvicorn's own lines are off: ``log_level``); nothing if it could not start."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                click.echo("\n".join(banner), err=True)

    # waiting runners hold long-polls of up to a minute: on SIGTERM, close them after 2 s (a
    # runner takes a dropped poll as "no answer yet" and polls again) rather than wait them out
    # slow or idle clients must not hold connections for ever (attack pass): a deadline for
    # a request's headers (our protocol: h11 has none) and its body (the app), and a ceiling
    # on connections above which requests get 503
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
        http=with_header_deadline(header_timeout),
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=keep_alive_timeout,
    )
    with _signals_noted() as stopped, contextlib.closing(listening):
        Server(config).run(sockets=[listening])
    if stopped:
        # uvicorn shut down gracefully on it: end as every command does (130, one line)
        raise KeyboardInterrupt(stopped[0])
    return 0


#: files the server needs beside its connections (the database, logs, the listening socket)
SPARE_FILES = 100


def _raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards ``wanted`` (within its hard limit: the
    usual soft one, 1,024, is below the connections a server holds); the limit now, or
    ``wanted`` when it is at least that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def _bind(host: str, port: int) -> socket.socket:
    """The server's socket, bound here rather than by uvicorn: uvicorn logged its own ERROR line
    for a port in use and exited 3, which says "aborted at a manual intervention" (newcomer
    pass). Bound as uvicorn binds (``Config.bind_socket``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
        raise UsageError(
            f"cannot listen on {host}:{port}: {why[:1].lower()}{why[1:]}",
            hint="another program listens there: use --port N"
            if in_use
            else "use --port N (1024 or above without privileges) and --host with an address "
            "of this machine",
        ) from None
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _signals_noted() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` as usual, and are noted: uvicorn handles
    them while it serves, then raises them again here once it has stopped."""

    stopped: list[int] = []

    def note(signum: int, frame: object) -> None:
        stopped.append(signum)
        raise KeyboardInterrupt(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _import(store: Any, path: str) -> int:

    directory = parse_directory(Path(path).read_bytes(), path)
    count: int = store.import_directory(directory)
    return count


#: what to do about a refusal of the server's storage, by its code
FIXES = {
    "unknown_person": "add them first with `runner server users add USERNAME` (or `runner server "
    "users import FILE`); `runner server users list` shows who there is",
    "person_exists": "`runner server users list` shows who there is; `runner server users "
    "import FILE` updates people in place",
}


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The storage's refusals (an unknown person, a duplicate) as usage errors that name the
    fix: they reached the CLI's boundary as internal errors with a traceback log."""
    from runner.server.errors import ServerError

    try:
        yield
    except ServerError as exc:
        raise UsageError(exc.message, hint=FIXES.get(exc.code)) from None


@server.group()
def users() -> None:
    """People who may approve."""


@users.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.pass_context
def users_import(ctx: click.Context, file: str) -> int:
    """Import people and teams from a people-and-teams file (the one the runner uses)."""
    count = _import(open_store(ctx.obj["database"]), file)
    click.echo(f"imported {count} people")
    return 0


@users.command("add")
@click.argument("username")
@click.option("--id", "person_id")
@click.option("--display-name", default="")
@click.option("--email", default="")
@click.option("--ci-login", "ci_logins", multiple=True)
@click.pass_context
def users_add(
    ctx: click.Context,
    username: str,
    person_id: str | None,
    display_name: str,
    email: str,
    ci_logins: tuple[str, ...],
) -> int:

    store = open_store(ctx.obj["database"])
    with _refusals():
        store.add_person(
            Person(
                person_id or username,
                username,
                display_name or username,
                email,
                (),
                tuple(ci_logins),
            )
        )
    click.echo(f"added {username}")
    return 0


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> int:
    directory = open_store(ctx.obj["database"]).directory()
    if not directory.people:
        # it printed nothing, which read as a failure or the wrong database (newcomer pass);
        # said on stderr: the list itself, on stdout, stays empty for scripts reading it
        click.echo(f"no users in {shown_url(database_url(ctx.obj['database']))}", err=True)
        click.echo(
            "add them with `runner server users import FILE` (a people-and-teams file) or "
            "`runner server users add USERNAME`",
            err=True,
        )
        return 0
    for person in directory.people:
        teams = ", ".join(directory.teams_of(person))
        click.echo(f"{person.username:<20} {person.display_name:<30} {teams}")
    return 0


@server.group()
def teams() -> None:
    """Teams of people."""


@teams.command("set")
@click.argument("team")
@click.argument("members", nargs=-1)
@click.pass_context
def teams_set(ctx: click.Context, team: str, members: tuple[str, ...]) -> int:
    store = open_store(ctx.obj["database"])
    with _refusals():
        store.set_team(team, list(members))
    click.echo(f"team {team}: {', '.join(members) or '(empty)'}")
    return 0


@server.group()
def tokens() -> None:
    """API tokens: shown once, stored hashed."""


@tokens.command("issue")
@click.option("--kind", type=click.Choice(["runner", "approver", "admin"]), required=True)
@click.option("--user", "username", help="The person an approver token acts as.")
@click.option("--label", default="")
@click.pass_context
def tokens_issue(ctx: click.Context, kind: str, username: str | None, label: str) -> int:
    """Print a new token once; only its hash is kept."""
    if kind == "approver" and not username:
        raise UsageError(
            "an approver token acts as a person: name them with --user USERNAME",
            hint="`runner server users list` shows who there is",
        )
    if kind != "approver" and username:
        # Silently dropped, it would let an operator believe the token is tied to a person.
        raise UsageError(
            f"a {kind} token acts for no person: --user is only for --kind approver",
            hint=f"drop --user, or issue `--kind approver --user {username}`",
        )
    store = open_store(ctx.obj["database"])
    with _refusals():
        token = store.issue_token(kind, username, label)
    click.echo(token)
    return 0


@tokens.command("revoke")
@click.argument("token_id")
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str) -> int:
    if not open_store(ctx.obj["database"]).revoke_token(token_id):
        raise UsageError(f"no token {token_id!r}")
    click.echo(f"revoked {token_id}")
    return 0


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> int:
    for token in open_store(ctx.obj["database"]).list_tokens():
        click.echo(
            f"{token['id']}  {token['kind']:<9} {token['person_id'] or '-':<16} "
            f"{'revoked' if token['revoked'] else 'active':<8} {token['label']}"
        )
    return 0


@server.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("export")
@click.pass_context
def audit_export(ctx: click.Context) -> int:
    """The audit log as JSON lines."""
    for entry in open_store(ctx.obj["database"]).audit_entries():
        click.echo(json.dumps(entry, ensure_ascii=False, sort_keys=True))
    return 0


@audit.command("verify")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, exists=True),
    help="Verify an exported JSON-lines file instead of the database.",
)
@click.pass_context
def audit_verify(ctx: click.Context, path: str | None) -> int:
    """Check the hash chain: exit 1 if an entry was changed, removed or reordered."""
    from runner.server.audit import verify_chain

    if path:
        entries = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    entries.append(loads(line, what="audit entry"))
                except ValueError as exc:
                    raise UsageError(f"{path}:{number}: not an audit entry: {exc}") from None
    else:
        entries = open_store(ctx.obj["database"]).audit_entries()
    problems = verify_chain(entries)
    for problem in problems:
        click.echo(problem)
    click.echo(
        f"{len(entries)} entries, "
        + ("chain intact" if not problems else f"{len(problems)} problem(s)")
    )
    return 1 if problems else 0


@server.group()
def locks() -> None:
    """Deployment locks held on the server (one deployment per workflow and environment)."""


@locks.command("list")
@click.pass_context
def locks_list(ctx: click.Context) -> int:
    """Every lock: its key, the run holding it, the holder's token, since when, its lease."""
    held = open_store(ctx.obj["database"]).list_locks()
    for lock in held:
        state = "expired" if lock["expired"] else ("detached" if lock["detached"] else "held")
        click.echo(
            f"{lock['key']}  run {lock['run_id']:<24} token {lock['token_id'] or '-':<12} "
            f"{state:<8} since {lock['since']}  lease until {lock['expires'] or '-'}"
        )
    if not held:
        click.echo("no locks held")
    return 0


@locks.command("break")
@click.argument("key")
@click.option("--reason", required=True, help="Why: kept in the audit log.")
@click.pass_context
def locks_break(ctx: click.Context, key: str, reason: str) -> int:
    """Remove a lock whoever holds it (its holder is gone for good); audited."""
    broken = open_store(ctx.obj["database"]).break_lock(key, "admin", reason)
    if broken is None:
        raise UsageError(f"no lock {key!r}", hint="`runner server locks list` shows them")
    click.echo(f"broke the lock {key} of run {broken['run_id']} (held since {broken['since']})")
    return 0
