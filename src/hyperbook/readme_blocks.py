"""The README's generated blocks (between `<!-- NAME:begin -->` and `<!-- NAME:end -->`): rewritten in place by
the command that generates them (`hyperbook plan --readme --write`, `python -m hyperbook.bench table --write`),
so no one pastes a table by hand; the tests keep each block equal to its generator."""
from __future__ import annotations

from pathlib import Path

from .errors import BookError
from .results import REPO_ROOT, write_text_atomic

README = REPO_ROOT / "README.md"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"


def _split(name: str, path: Path) -> tuple[str, str, str]:
    """(text before the block with its begin marker, the block, its end marker and the text after)."""
    begin, end = _markers(name)
    text = Path(path).read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise BookError(f"{path} must hold exactly one '{begin.strip()}' followed by one '{end.strip()}' "
                        f"(the generated {name} block); put them back around the block")
    head, rest = text.split(begin)
    block, tail = rest.split(end)
    return head + begin, block, end + tail


def read_block(name: str, path: Path = README) -> str:
    return _split(name, path)[1]


def write_block(name: str, content: str, path: Path = README) -> bool:
    """Replace the block's content (atomically); True if it changed."""
    head, old, tail = _split(name, path)
    if old == content:
        return False
    write_text_atomic(path, head + content + tail)
    return True
