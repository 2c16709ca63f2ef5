"""The chapters of the book: name -> notebook, and the check on a chapter name."""
from __future__ import annotations

from pathlib import Path

from .errors import UnknownChoiceError

BOOK_DIR = Path(__file__).resolve().parents[2] / "book"

# name -> notebook path relative to book/
CHAPTERS = {
    "hypernets": "chapters/hypernets.ipynb",
    "functional_images": "chapters/functional_images.ipynb",
    "hecnn": "chapters/hecnn.ipynb",
    "hcnn": "chapters/hcnn.ipynb",
    "thesis_rfnn": "chapters/thesis/rfnn.ipynb",
    "thesis_steerable": "chapters/thesis/steerable.ipynb",
    "thesis_irevnet": "chapters/thesis/irevnet.ipynb",
}


def available_chapters() -> list[str]:
    """Chapters whose notebook exists (the others are planned, not yet written)."""
    return [name for name, rel in CHAPTERS.items() if (BOOK_DIR / rel).exists()]


def check_chapter(name: str) -> str:
    if name not in CHAPTERS:
        raise UnknownChoiceError("chapter", name, CHAPTERS)
    return name


def notebook_path(name: str) -> Path:
    return BOOK_DIR / CHAPTERS[check_chapter(name)]
