"""People files of one approver, alice, the whole trading desk: for the tests whose gate only
needs someone who may decide."""

from __future__ import annotations

#: alice with an e-mail address (as the approval server imports people)
ALICE_DESK = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    email: alice@example.com
teams:
  trading-desk: [alice]
"""

#: the same alice who also signs approval files (her ssh principal)
ALICE_DESK_SIGNING = ALICE_DESK.replace(
    "    email: alice@example.com\n",
    "    email: alice@example.com\n    ssh-principals: [alice@example.com]\n",
)
