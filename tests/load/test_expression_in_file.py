"""``runner.load.yaml.expression_in_file``: the place of an expression that fails at run time,
found in the workflow file as it is then, and never a wrong one."""

from __future__ import annotations

from pathlib import Path

from runner.errors import Location
from runner.load.yaml import expression_in_file

WORKFLOW = """\
steps:
  - run: |
      echo one
      echo "${{ fromJSON(x) }}"
    with:
      quoted: "a ${{ b }}"
"""
SCRIPT = 'echo one\necho "${{ fromJSON(x) }}"\n'


def test_a_block_scalars_expression_is_found_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(WORKFLOW)
    start = Location(str(path), 2, 10)  # the `|`
    assert expression_in_file(start, SCRIPT, SCRIPT.index("${{")) == Location(str(path), 4, 13, 3)
    quoted = Location(str(path), 6, 15)  # the opening quote
    assert expression_in_file(quoted, "a ${{ b }}", 2) == Location(str(path), 6, 18, 3)


def test_a_changed_or_missing_file_gives_the_start_of_the_value(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    start = Location(str(path), 2, 10)
    offset = SCRIPT.index("${{")
    assert expression_in_file(start, SCRIPT, offset) == start  # no file
    path.write_text(WORKFLOW.replace('echo "${{', 'printf "${{'))  # edited since it was loaded
    assert expression_in_file(start, SCRIPT, offset) == start
    path.write_text("")  # emptied
    assert expression_in_file(start, SCRIPT, offset) == start
    path.unlink()
    path.mkdir()  # not a file
    assert expression_in_file(start, SCRIPT, offset) == start


def test_an_offset_past_the_file_gives_the_start(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(WORKFLOW)
    start = Location(str(path), 2, 10)
    long = SCRIPT + "x\n" * 50 + "${{ y }}"
    assert expression_in_file(start, long, long.index("${{ y")) == start


def test_a_folded_block_or_escapes_give_the_start_never_another_expression(tmp_path: Path) -> None:
    # a folded block joins its lines, and escapes in a quoted value are longer in the file than
    # in the text: the place computed from the text holds another `${{`, which must not be named
    path = tmp_path / "deploy.yml"
    path.write_text(
        "steps:\n"
        "  - run: >\n"
        "      echo ${{ 'aaaa' }}\n"
        "      echo ${{ 'bb' }}\n"
        "\n"
        "      echo ${{ fromJSON(x) }}\n"
        """    name: "\\u00e9\\u00e9${{ 'a' }}${{ fromJSON(x) }}"\n"""
    )
    folded = "echo ${{ 'aaaa' }} echo ${{ 'bb' }}\necho ${{ fromJSON(x) }}\n"
    start = Location(str(path), 2, 9)
    assert expression_in_file(start, folded, folded.index("${{ fromJSON")) == start
    quoted = "\u00e9\u00e9${{ 'a' }}${{ fromJSON(x) }}"
    name = Location(str(path), 7, 11)
    assert expression_in_file(name, quoted, quoted.index("${{ fromJSON")) == name
    assert expression_in_file(name, quoted, quoted.index("${{ 'a'")) == name


def test_a_file_shorter_than_the_value_gives_the_start(tmp_path: Path) -> None:
    # a step rewrote the workflow during the run (to fewer lines than the value's line)
    path = tmp_path / "deploy.yml"
    path.write_text("name: x\n")
    start = Location(str(path), 8, 10)
    assert expression_in_file(start, "echo ${{ fromJSON('bad') }}", 5) == start
    block = Location(str(path), 1, 1)
    assert expression_in_file(block, "a\nb\n${{ x }}", 4) == block


def test_a_folded_block_never_names_a_line_that_only_begins_like_the_text(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(
        "steps:\n"
        "  - run: >\n"
        "      echo a\n"
        "\n"
        "      echo ${{ fromJSON(\n"
        "      '\"good\"') }}\n"
        "\n"
        "      echo ${{ fromJSON('bad') }}\n"
    )
    text = "echo a\necho ${{ fromJSON( '\"good\"') }}\necho ${{ fromJSON('bad') }}\n"
    start = Location(str(path), 2, 9)
    assert expression_in_file(start, text, text.index("${{ fromJSON('bad")) == start
