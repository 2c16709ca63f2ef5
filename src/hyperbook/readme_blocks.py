"""The README's generated blocks (between `<!-- NAME:begin -->` and `<!-- NAME:end -->`): rewritten in place by
the command that generates them (`hyperbook plan --readme --write`, `python -m hyperbook.bench table --write`),
so no one pastes a table by hand; the tests keep each block equal to its generator."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BookError
from .results import REPO_ROOT

README = REPO_ROOT / "README.md"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"


def read_block(name: str, path: Path = README) -> str:
    begin, end = _markers(name)
    text = Path(path).read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise BookError(f"{path} must hold exactly one '{begin.strip()}' followed by one '{end.strip()}' "
                        f"(the generated {name} block); put them back around the block")
    return text.split(begin)[1].split(end)[0]


def write_block(name: str, content: str, path: Path = README) -> bool:
    """Replace the block's content (atomically: a temporary file renamed over the README); True if it changed."""
    path = Path(path)
    old = read_block(name, path)            # checks the markers first
    if old == content:
        return False
    begin, end = _markers(name)
    text = path.read_text()
    head, rest = text.split(begin)
    tail = rest.split(end, 1)[1]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(head + begin + content + end + tail)
    os.replace(tmp, path)
    return True
