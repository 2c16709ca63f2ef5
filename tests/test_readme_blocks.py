"""The README's generated blocks are rewritten in place by their generator, never pasted by hand."""
import pytest

from hyperbook.errors import BookError
from hyperbook.readme_blocks import read_block, write_block

TEXT = "# Title\n\nintro\n<!-- costs:begin -->\nold table\n<!-- costs:end -->\n\nafter\n"


def test_write_block_replaces_only_the_block_and_reports_a_change(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(TEXT)
    assert write_block("costs", "| new | table |", p) is True
    assert p.read_text() == TEXT.replace("old table", "| new | table |")
    assert read_block("costs", p) == "| new | table |"
    assert write_block("costs", "| new | table |", p) is False          # unchanged: not rewritten
    assert not (tmp_path / "README.md.tmp").exists()


def test_missing_or_doubled_markers_are_a_clear_error_and_leave_the_file_alone(tmp_path):
    p = tmp_path / "README.md"
    for bad in ("no markers here\n", TEXT + TEXT, TEXT.replace("<!-- costs:end -->", "")):
        p.write_text(bad)
        with pytest.raises(BookError, match="exactly one '<!-- costs:begin -->'"):
            write_block("costs", "x", p)
        assert p.read_text() == bad


def test_plan_write_needs_readme(capsys):
    from hyperbook import cli
    assert cli.main(["plan", "--write", "--profile", "full"]) == 2
    assert "--write goes with --readme" in capsys.readouterr().err
