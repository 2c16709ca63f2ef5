"""Command line of the book (the Makefile calls it).

  python -m hyperbook.cli run CHAPTER PROFILE [-p name=value ...] [--device auto|cpu|cuda] [--no-reuse]
  python -m hyperbook.cli book            execute every chapter (recorded runs reused) and build the site
  python -m hyperbook.cli status          regenerate book/status.md from results/
  python -m hyperbook.cli data [NAME ...] fetch datasets into data/
  python -m hyperbook.cli chapters        list chapters and whether their notebook exists
"""
from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from pathlib import Path

from .chapters import BOOK_DIR, CHAPTERS, available_chapters, check_chapter, notebook_path
from .context import resolve_device
from .errors import BookError, UnknownChoiceError
from .profiles import PROFILES, check_profile
from .results import REPO_ROOT
from .status import write_status

BUILD_DIR = BOOK_DIR / "_build"
STAGE_DIR = BUILD_DIR / "stage"
FIXED_PARAMS = ("profile", "device", "reuse")


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise BookError(f"parameter {pair!r} is not of the form name=value (e.g. -p seed=1)")
        name, value = pair.split("=", 1)
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def check_params(chapter: str, params: dict) -> None:
    import papermill
    valid = set(papermill.inspect_notebook(str(notebook_path(chapter))))
    for name in params:
        if name not in valid:
            raise UnknownChoiceError(f"parameter of chapter {chapter!r}", name, valid)


def execute(chapter: str, output: Path, params: dict) -> Path:
    import papermill
    source = notebook_path(chapter)
    if not source.exists():
        raise BookError(f"chapter {chapter!r} is planned but its notebook {source} is not written yet; "
                        f"written chapters: {', '.join(available_chapters())}")
    check_params(chapter, params)
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(source), str(output), parameters=params, kernel_name="python3",
                               cwd=str(source.parent), progress_bar=False)
    return output


def cmd_run(args) -> None:
    chapter, profile = check_chapter(args.chapter), check_profile(args.profile)
    device = resolve_device(args.device)   # fails at once if cuda is asked for without a GPU
    params = parse_params(args.param)
    for fixed in FIXED_PARAMS:
        if fixed in params:
            raise BookError(f"set {fixed} with its own option, not -p {fixed}=...")
    params.update(profile=profile, device=device, reuse=not args.no_reuse)
    out = BUILD_DIR / "runs" / f"{chapter}-{profile}.ipynb"
    execute(chapter, out, params)
    write_status()
    print(f"executed {chapter} ({profile}); notebook with outputs: {out.relative_to(REPO_ROOT)}; "
          f"results recorded under results/{chapter}/")


XREF_FAILURES = ("myst.xref_missing", "undefined label", "reference target not found", "unknown document")


def stage_chapter(chapter: str, out: Path) -> Path:
    """Execute one chapter in the 'book' profile into the staging folder, then apply the site's view
    (nbtools.stage_for_site): hidden setup cell first (no truncated table cell, 2x figures)."""
    import tempfile

    import nbformat
    import papermill

    from .nbtools import stage_for_site, with_book_setup
    source = notebook_path(chapter)
    if not source.exists():
        raise BookError(f"chapter {chapter!r} is planned but its notebook {source} is not written yet; "
                        f"written chapters: {', '.join(available_chapters())}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hyperbook-stage-") as tmp:
        prepared = Path(tmp) / source.name
        nbformat.write(with_book_setup(nbformat.read(source, as_version=4)), prepared)
        papermill.execute_notebook(str(prepared), str(out), parameters={"profile": "book", "reuse": True},
                                   kernel_name="python3", cwd=str(source.parent), progress_bar=False)
    nbformat.write(stage_for_site(nbformat.read(out, as_version=4), chapter), out)
    return out


def check_build_log(log: str) -> None:
    """Fail on an unresolved cross-reference (a dead link on the site)."""
    bad = [line for line in log.splitlines() if any(key in line for key in XREF_FAILURES)]
    if bad:
        raise BookError("the book has unresolved cross-references:\n  " + "\n  ".join(bad[:20]))


def cmd_book(args) -> None:
    """Stage the book sources, execute each written chapter in the 'book' profile, build HTML offline."""
    write_status()
    if STAGE_DIR.exists():
        shutil.rmtree(STAGE_DIR)
    shutil.copytree(BOOK_DIR, STAGE_DIR, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    chapters = args.chapters or available_chapters()
    for chapter in chapters:
        print(f"executing {chapter} ...", flush=True)
        stage_chapter(check_chapter(chapter), STAGE_DIR / CHAPTERS[chapter])
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(STAGE_DIR),
           "--path-output", str(BOOK_DIR), "--builder", "html", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (BUILD_DIR / "build.log").write_text(log)
    print(log[-3000:])
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); log: {BUILD_DIR / 'build.log'}")
    check_build_log(log)
    print(f"site: {(BUILD_DIR / 'html' / 'index.html').relative_to(REPO_ROOT)}")


def cmd_status(args) -> None:
    print(f"wrote {write_status().relative_to(REPO_ROOT)}")


def cmd_data(args) -> None:
    from .data.registry import DATASETS, fetch
    names = args.names or list(DATASETS)
    for name in names:
        fetch(name, REPO_ROOT / "data")


def cmd_chapters(args) -> None:
    written = set(available_chapters())
    for name, rel in CHAPTERS.items():
        print(f"{name:20s} {rel:40s} {'written' if name in written else 'planned'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="hyperbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute one chapter with papermill and record its results")
    run.add_argument("chapter")
    run.add_argument("profile", help=f"one of {', '.join(PROFILES)}")
    run.add_argument("-p", "--param", action="append", help="notebook parameter name=value")
    run.add_argument("--device", default="auto")
    run.add_argument("--no-reuse", action="store_true", help="retrain even where a run is recorded")
    run.set_defaults(fn=cmd_run)
    book = sub.add_parser("book", help="execute the chapters (reusing recorded runs) and build the site")
    book.add_argument("chapters", nargs="*")
    book.set_defaults(fn=cmd_book)
    sub.add_parser("status", help="regenerate book/status.md").set_defaults(fn=cmd_status)
    data = sub.add_parser("data", help="fetch datasets into data/")
    data.add_argument("names", nargs="*")
    data.set_defaults(fn=cmd_data)
    sub.add_parser("chapters", help="list the chapters").set_defaults(fn=cmd_chapters)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
