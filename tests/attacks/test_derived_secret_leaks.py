"""Values computed from a secret by Octostache stay masked.

A masker that knows a secret and its encodings still missed what a ``#{}`` filter makes of it:
``#{DbPassword | ToUpper}`` printed ``HUNTER2-...`` in clear, ``Substring`` printed a part of it,
a field of a secret JSON value (``#{Creds.password}``) or an item of one in ``#{each}`` came out
unescaped, and a non-secret variable defined as ``#{DbPassword | ToLower}`` showed it in the log
and in ``runner plan``'s variables. Octopus masks only the value itself; an attacker who can
edit a workflow (or a reviewer who copies a filter from the docs) gets the secret printed.

Every one runs here through real bash, ``runner run --format json`` and ``runner plan`` (text
and JSON), and is sought in the log, the JSON events, the run record, the journal and the
step's outputs. The secrets come from the environment, so the workflow never spells them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
from helpers.environ import host_env
from helpers.run_helpers import RUNNER, Outcome, Workspace
from helpers.server_helpers import serving, workspace_store

PASSWORD = "hunter2-Secret-e5f1"
CREDS = json.dumps(
    {
        "user": "deploy-bot-7",
        "password": 'pa"ss\\word-93c',
        "hosts": ["h-41a", "h-52b"],
    }
)
CLOUD = json.dumps({"region": "eu-west-1", "token": "tok-5b7c9e"})
PIN = "48213"

WORKFLOW = """
name: derived secret leaks
variables:
  DbPassword:
    from-env: TEST_PASSWORD
    secret: true
  Creds:
    from-env: TEST_CREDS
    secret: true
  Pin:
    from-env: TEST_PIN
    secret: true
  Cloud:
    from-env: TEST_CLOUD
    secret: true
  Shouted:
    value: "#{DbPassword | ToLower}"
  Plain:
    value: "nothing-secret"
  Wrapper:
    value: '{"env": "dev", "primary": #{Cloud}}'
  Conn:
    value: "postgres://app:#{DbPassword}@db.internal.example:5432/shop"
steps:
  - id: filters
    name: filters
    env:
      UPPER: "#{DbPassword | ToUpper}"
      LOWER: "#{DbPassword | ToLower}"
      PART: "#{DbPassword | Substring 11}"
      FIELD: "#{Creds.password}"
      USER: "#{Creds.user}"
      HOSTS: "#{each host in Creds.hosts}#{host};#{/each}"
      VALUES: "#{each entry in Creds}#{entry.Key}=#{entry.Value};#{/each}"
      KEYS: "#{each entry in Cloud}#{entry.Key};#{/each}"
      NESTED: "#{Wrapper.primary.token}"
      SHOUTED: "#{Shouted | ToUpper}"
      NEXT: "#{calc Pin + 1}"
      PLAIN: "#{Plain | ToUpper}"
      HOST: "#{Conn | UriPart Host}"
      LOUD: "#{Conn | ToUpper}"
      DASH: '#{if DbPassword | Contains "-"}true#{/if}'
    run: |
      echo "upper $UPPER"
      echo "lower $LOWER"
      echo "part $PART"
      echo "field $FIELD"
      echo "user $USER"
      echo "hosts $HOSTS"
      echo "values $VALUES"
      echo "cloud $KEYS $NESTED in eu-west-1"
      echo "shouted $SHOUTED"
      echo "next $NEXT"
      echo "plain $PLAIN"
      echo "host $HOST"
      echo "loud $LOUD"
      echo "dash $DASH"
      echo "upper=$UPPER" >> "$RUNNER_OUTPUT"
      echo "dash=$DASH" >> "$RUNNER_OUTPUT"
  - id: action
    name: in a composite action
    uses: ./actions/shout
  - id: gate
    name: gate
    if: false
    manual:
      instructions: "Check #{DbPassword | ToUpper} and #{Shouted}"
      fields:
        - name: ticket
          type: string
          label: "Ticket for #{Creds.user} (#{DbPassword})"
"""

ACTION = """
name: shout
outputs:
  said:
    value: "#{DbPassword | ToUpper}"
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: |
        echo "action #{DbPassword | Substring 11}"
"""

ENV = {"TEST_PASSWORD": PASSWORD, "TEST_CREDS": CREDS, "TEST_PIN": PIN, "TEST_CLOUD": CLOUD}

#: what the filters above make of the secrets, each of which the old runner printed in clear
DERIVED = {
    "ToUpper": PASSWORD.upper(),
    "ToLower": PASSWORD.lower(),
    "Substring": PASSWORD[:11],
    "JSON field": 'pa"ss\\word-93c',
    "JSON field of a user": "deploy-bot-7",
    "each item": "h-41a",
    "each value": "h-52b",
    "calc": str(int(PIN) + 1),
    "a field of a JSON secret inside another JSON value": "tok-5b7c9e",
}


def leaks(text: str) -> list[str]:
    return sorted(name for name, value in DERIVED.items() if value in text)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("derived"))


@pytest.fixture(scope="module")
def outcome(workspace: Workspace) -> Outcome:
    workspace.action("shout", ACTION)
    return workspace.cli(WORKFLOW, "--format", "json", env=ENV)


def plan(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    # the gate runs in the plan (a run has no one to ask here, so it skips it)
    workspace.write(WORKFLOW.replace("    if: false\n", ""), "plan.yml")
    workspace.action("shout", ACTION)
    return subprocess.run(
        [str(RUNNER), "plan", "plan.yml", "--env", "staging", *args],
        cwd=workspace.root,
        env=workspace.environ(ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_log_shows_no_value_computed_from_a_secret(outcome: Outcome) -> None:
    assert outcome.code == 0, outcome.out + outcome.err
    assert leaks(outcome.out + outcome.err) == []
    lines = [e["text"] for e in outcome.events() if e.get("step") == "filters" and "text" in e]
    assert lines == [
        "upper ***",
        "lower ***",
        "part ***",
        "field ***",
        "user ***",
        "hosts ***;***;",
        # an object's keys are names, not its secret content
        "values user=***;password=***;hosts=***;",
        # what a template read of a JSON secret is masked, not the values it never read;
        # read here through another JSON value that holds the secret, which #{} rewrites
        # without its spaces
        "cloud region;token; *** in eu-west-1",
        "shouted ***",
        "next ***",
        # a filter of a value that holds no secret is not masked
        "plain NOTHING-SECRET",
        # nor a part of one that holds a secret elsewhere, nor a test of a secret: masking
        # them would mask every `true` and host name of the log
        "host db.internal.example",
        # the secret inside a text a filter changed is, as the filter makes it
        "loud POSTGRES://APP:***@DB.INTERNAL.EXAMPLE:5432/SHOP",
        "dash true",
    ]
    said = [e["text"] for e in outcome.events() if e.get("step") == "action" and "text" in e]
    assert said == ["action ***"]


def test_the_record_journal_and_outputs_hold_none_either(outcome: Outcome) -> None:
    folder = outcome.record_path.parent
    texts = {p.name: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}
    assert {"record.json", "events.jsonl"} <= set(texts)
    assert {name: leaks(text) for name, text in texts.items() if leaks(text)} == {}
    assert outcome.step("filters").outputs == {"upper": "***", "dash": "true"}
    assert outcome.step("filters").secret_outputs == ["upper"]
    assert outcome.step("action").outputs == {"said": "***"}


def test_the_plan_masks_them_in_variables_and_instructions(workspace: Workspace) -> None:
    text = plan(workspace)
    assert text.returncode == 0, text.stdout + text.stderr
    assert leaks(text.stdout + text.stderr) == []
    assert "Shouted    = ***" in text.stdout
    as_json = plan(workspace, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert leaks(as_json.stdout) == []
    [gate] = [s for s in json.loads(as_json.stdout)["steps"] if s["id"] == "gate"]
    assert gate["approval"]["instructions"] == "Check *** and ***"
    # a field's label was shown in clear, the secret itself too (before this fix as well)
    assert [f["label"] for f in gate["approval"]["fields"]] == ["Ticket for *** (***)"]
    assert "field ticket (Ticket for *** (***))" in text.stdout


RESUMED = """\
name: derived after a resume
environments: [production]
variables:
  Creds:
    from-env: TEST_CREDS
    secret: true
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
steps:
  - id: write
    name: Write
    env:
      USER_NAME: ${{{{ fromJSON(secrets.Creds).user }}}}
    run: |
      cat > "$HOME/password.txt" <<'EOF'
      #{{Creds.password}}
      EOF
      echo "$USER_NAME" >> "$HOME/password.txt"
  - id: config
    name: Config
    env:
      C: ${{{{ secrets.Creds }}}}
    run: |
      echo "config={{\\"creds\\": $C}}" >> "$RUNNER_OUTPUT"
  - id: from-output
    name: From output
    run: |
      echo '${{{{ fromJSON(steps.config.outputs.config).creds.hosts[1] }}}}' >> "$HOME/password.txt"
  - id: action
    name: Action
    uses: ./actions/hosts
    with:
      creds: ${{{{ secrets.Creds }}}}
  - id: gate
    name: Gate
    manual:
      instructions: go on
      teams: [trading-desk]
  - id: read
    name: Read
    run: echo "read $(paste -sd ' ' "$HOME/password.txt")"
"""


HOSTS_ACTION = """
name: hosts
inputs:
  creds:
    required: true
runs:
  using: composite
  steps:
    - shell: bash
      run: echo '${{ fromJSON(inputs.creds).hosts[0] }}' >> "$HOME/password.txt"
"""


def test_a_resumed_run_still_masks_what_the_steps_before_computed(tmp_path: Path) -> None:
    """Steps before the pause wrote ``#{Creds.password}`` (and, from its environment,
    ``${{ fromJSON(secrets.Creds).user }}``) to a file; the step after the resume printed it
    in clear: only the resumed process's own computations were known. So did a field read
    out of a secret step output (which a resumed run no longer has) and one read by a
    composite action's own step: what cannot be told again is every part of the secret."""
    root = tmp_path / "ws"
    (root / "actions" / "hosts").mkdir(parents=True)
    (root / "actions" / "hosts" / "action.yml").write_text(HOSTS_ACTION)
    with workspace_store(root) as store, serving(store) as url:
        runner_token = store.issue_token("runner", label="derived")
        alice = {
            "Authorization": f"Bearer {store.issue_token('approver', 'alice', label='derived')}"
        }
        (root / "deploy.yml").write_text(RESUMED.format(url=url))
        env = host_env(RUNNER_SERVER_TOKEN=runner_token, TEST_CREDS=CREDS, HOME=str(tmp_path))

        def runner(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(RUNNER), *args, "--state-dir", "S"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        first = runner(
            "run", "deploy.yml", "--env", "production", "--run-id", "r1", "--detach-on-wait"
        )
        assert first.returncode == 75, first.stdout + first.stderr
        base = f"{url}/api/v1/interruptions/r1--gate"
        assert requests.put(base + "/responsible", json={}, headers=alice).ok
        decided = requests.post(base + "/submit", json={"result": "proceed"}, headers=alice)
        assert decided.ok, decided.text
        resumed = runner("resume", "r1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "read *** *** *** ***" in resumed.stdout
    assert leaks(first.stdout + first.stderr + resumed.stdout + resumed.stderr) == []


EACH = """
name: items of secrets
variables:
  Servers:
    from-env: TEST_SERVERS
    secret: true
  List:
    from-env: TEST_LIST
    secret: true
  Both:
    value: "public-host,#{List}"
steps:
  - id: each
    name: each
    env:
      NESTED: "#{each e in Servers}#{each h in e.Value}#{h};#{/each}#{/each}"
      HASHED: "#{each e in Servers}#{e.Value | ToUpper};#{/each}"
      LAST: "#{each i in Both}#{if Octopus.Template.Each.Last}#{i}#{/if};#{/each}"
    run: |
      echo "nested $NESTED"
      echo "hashed $HASHED"
      echo "last $LAST"
"""


def test_items_read_in_a_nested_each_holding_a_hash_or_among_other_items_are_masked(
    tmp_path: Path,
) -> None:
    """Each was in clear in a version that told an item only as it was read: an inner
    collection read by an inner #{each}, an item holding `#` (read through the template
    expansion, which made a new binding), and the second item of a secret list inside a
    longer list (the item at the same place of the secret was masked instead)."""
    servers = json.dumps({"hosts": ["h-41a-xyz", "h-52b-xyz"], "pw": "p#ss-word-93c"})
    ran = Workspace(tmp_path).cli(
        EACH, env={"TEST_SERVERS": servers, "TEST_LIST": "aaaa-1111,bbbb-2222"}
    )
    assert ran.code == 0, ran.out + ran.err
    assert "nested ***;***;***;" in ran.out
    assert "hashed ***;***;" in ran.out
    assert "last ;;***;" in ran.out
    for value in ("h-41a-xyz", "p#ss-word-93c", "P#SS-WORD-93C", "bbbb-2222"):
        assert value not in ran.out + ran.err


SPACED = """
name: secrets as they are read
variables:
  List:
    from-env: TEST_LIST
    secret: true
  Pin:
    from-env: TEST_PIN
    secret: true
  Key:
    from-env: TEST_KEY
    secret: true
steps:
  - id: spaced
    name: spaced
    run: |
      echo "b64 #{each i in List}#{i | ToBase64};#{/each}"
      echo "sub #{each i in List}#{i | Substring 6};#{/each}"
      echo "calc #{calc Pin * 2}"
      echo "hash #{Key | Sha256}"
"""


def test_what_is_computed_from_a_secret_with_spaces_or_a_newline_is_masked(
    tmp_path: Path,
) -> None:
    """The masker computed again from the secret trimmed, #{} from it as read: the second
    item of `a, b` (` b`), a PIN from a file with its newline and a key's hash were in clear."""
    ran = Workspace(tmp_path).cli(
        SPACED,
        env={
            "TEST_LIST": "aaaa-1111, bbbb-2222",
            "TEST_PIN": "48213\n",
            "TEST_KEY": "hunter2-Secret-e5f1\n",
        },
    )
    assert ran.code == 0, ran.out + ran.err
    lines = [line.strip() for line in ran.out.splitlines()]
    assert {"b64 ***;***;", "sub ***;***;", "calc ***", "hash ***"} <= set(lines), ran.out


EXPRESSIONS = """
name: reads of a JSON secret in expressions
variables:
  Creds:
    from-env: TEST_CREDS
    secret: true
  Nested:
    from-env: TEST_NESTED
    secret: true
  Big:
    from-env: TEST_BIG
    secret: true
steps:
  - id: doc
    name: documents holding a secret
    env:
      C: ${{ secrets.Creds }}
    run: |
      echo 'doc={"owner": "ops-team-9", "key": "#{Creds.user}", "count": 3}' >> "$RUNNER_OUTPUT"
      echo "config={\\"region\\": \\"eu\\", \\"creds\\": $C}" >> "$RUNNER_OUTPUT"
  - id: reads
    name: reads
    env:
      FIELD: ${{ fromJSON(secrets.Creds).password }}
      KEY: user
      TESTED: ${{ contains(toJSON(fromJSON(secrets.Big)), 'big-0001-field') }}
    run: |
      echo "field $FIELD"
      echo "user ${{ fromJSON(secrets.Creds).user }}"
      echo "dynamic ${{ fromJSON(secrets.Creds)[env.KEY] }}"
      echo "hosts ${{ join(fromJSON(secrets.Creds).hosts.*, ',') }}"
      echo "item ${{ fromJSON(secrets.Creds).hosts[1] }}"
      echo "missing [${{ fromJSON(secrets.Creds).nothing }}]"
      echo "owner ${{ fromJSON(steps.doc.outputs.doc).owner }}"
      echo "count ${{ fromJSON(steps.doc.outputs.doc).count }}"
      echo "tested $TESTED big-0001-field"
      echo "wrapped ${{ fromJSON(format('[{0}]', secrets.Creds))[0].user }}"
      echo "in an output ${{ fromJSON(steps.doc.outputs.config).creds.user }}"
      echo "region ${{ fromJSON(steps.doc.outputs.config).region }}"
      echo "nested ${{ fromJSON(fromJSON(secrets.Nested).inner).pin }}"
      echo "either ${{ (fromJSON(secrets.Creds) || fromJSON('{}')).user }}"
      echo "big ${{ fromJSON(secrets.Big).f2999 }}"
      echo "encoded $(printf %s "$FIELD" | base64)"
      echo 'whole ${{ toJSON(fromJSON(secrets.Creds)) }}'
  - id: quoted
    name: an error quoting what it read
    run: echo "${{ format(fromJSON(secrets.Nested).brace) }}"
"""

BIG = json.dumps({f"f{i}": f"big-{i:04d}-field" for i in range(3000)})
NESTED = json.dumps({"inner": json.dumps({"pin": 97531}), "brace": "ab{cd-e7f"})


def test_what_an_expression_reads_out_of_a_json_secret_is_masked(tmp_path: Path) -> None:
    """``${{ fromJSON(secrets.Creds).password }}`` printed the password in clear: the masker
    knew the JSON text and its encodings, never one field of it; then a review got it through
    wrapped by ``format``, inside a step's output, nested, behind ``||``, past the first 1,000
    fields of a big secret, and in an error message. What is read of a document that only
    holds a secret in another field (its owner, its count, its region) stays readable, as
    does a test of a secret (``contains`` read the whole document; its `true` shows none)."""
    env = {"TEST_CREDS": CREDS, "TEST_NESTED": NESTED, "TEST_BIG": BIG}
    ran = Workspace(tmp_path).cli(EXPRESSIONS, "--format", "json", env=env)
    assert ran.code == 1, ran.out + ran.err  # the step whose format() fails
    everything = ran.out + ran.err
    assert leaks(everything) == []
    assert "97531" not in everything and "big-2999-field" not in everything
    assert "ab{cd-e7f" not in everything
    lines = [e["text"] for e in ran.events() if e.get("step") == "reads" and "text" in e]
    assert lines[:16] == [
        "field ***",
        "user ***",
        "dynamic ***",
        "hosts ***,***",
        "item ***",
        "missing []",
        "owner ops-team-9",
        "count 3",
        "tested true big-0001-field",
        "wrapped ***",
        "in an output ***",
        "region eu",
        "nested ***",
        "either ***",
        "big ***",
        # a field read (one of a few) is masked in the encodings a whole secret is
        "encoded ***",
    ]
    whole = json.loads("\n".join(lines[16:]).removeprefix("whole "))
    assert whole == {"user": "***", "password": "***", "hosts": ["***", "***"]}
    assert ran.step("quoted").error is not None
    assert "The following format string is invalid: ***" in ran.step("quoted").error
    folder = ran.record_path.parent
    texts = {p.name: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}
    assert {name: leaks(text) for name, text in texts.items() if leaks(text)} == {}


ERRORS = """
name: errors quoting what was read
variables:
  Nested:
    from-env: TEST_NESTED
    secret: true
env:
  C: ${{ secrets.Nested }}
steps:
  - id: cond
    name: a condition that fails
    if: format(fromJSON(env.C).brace) == 'x'
    run: echo never
  - id: tolerance
    name: a continue-on-error that fails
    if: always()
    continue-on-error: ${{ format(fromJSON(env.C).brace) }}
    run: exit 1
  - id: after
    name: after
    if: always()
    run: echo "after"
"""


def test_an_if_or_continue_on_error_that_fails_quoting_a_field_shows_it_masked(
    tmp_path: Path,
) -> None:
    """``if:`` and ``continue-on-error:`` evaluate without the renderer: a ``format()`` error
    quoting a field of a JSON secret printed it; a failing ``continue-on-error`` also ended
    the run at once (exit 2), its record left `running`. The field is masked, the step's
    failure is not tolerated, and the run goes on to its end."""
    ran = Workspace(tmp_path).cli(ERRORS, "--format", "json", env={"TEST_NESTED": NESTED})
    assert ran.code == 1, ran.out + ran.err
    folder = ran.record_path.parent
    texts = {p.name: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}
    assert all("ab{cd-e7f" not in text for text in [ran.out, ran.err, *texts.values()])
    record = json.loads(texts["record.json"])
    assert record["status"] == "failure"
    assert [s["conclusion"] for s in record["steps"]] == ["failure", "failure", "success"]
    assert "The following format string is invalid: ***" in (ran.step("cond").error or "")
    errors = [e["message"] for e in ran.events() if e["event"] == "step-error"]
    assert any(
        "format string is invalid: ***; the step's failure is not tolerated" in m for m in errors
    ), errors
