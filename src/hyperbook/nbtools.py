"""Notebook housekeeping: keep stored outputs only where nbval compares them.

`python -m hyperbook.nbtools keep-checked book/chapters/x.ipynb --from executed.ipynb`
copies the outputs of cells whose first line is `# NBVAL_CHECK_OUTPUT` from an
executed copy into the source notebook and clears every other output, so the
committed notebooks stay small and nbval (--nbval-lax) compares only what is
deterministic.
"""
from __future__ import annotations

import argparse

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def keep_checked(source_path, executed_path=None) -> int:
    nb = nbformat.read(source_path, as_version=4)
    executed = nbformat.read(executed_path, as_version=4) if executed_path else None
    by_source = {}
    if executed is not None:
        for cell in executed.cells:
            if is_checked(cell):
                by_source[cell.source] = cell
    kept, count = 0, 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        if is_checked(cell) and cell.source in by_source:
            cell.outputs = [o for o in by_source[cell.source].outputs if o.get("name") != "stderr"]
            cell.execution_count = count
            kept += 1
        elif is_checked(cell) and executed is None:
            cell.execution_count = count
            kept += 1
        else:
            cell.outputs, cell.execution_count = [], None
    missing = [c.source.splitlines()[0] for c in nb.cells if is_checked(c)
               and executed is not None and c.source not in by_source]
    if missing:
        raise SystemExit(f"checked cells not found in the executed notebook: {missing}")
    nbformat.write(nb, source_path)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hyperbook.nbtools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep-checked", help="keep outputs only in # NBVAL_CHECK_OUTPUT cells")
    k.add_argument("notebook")
    k.add_argument("--from", dest="executed", help="executed copy to take those outputs from")
    args = parser.parse_args(argv)
    kept = keep_checked(args.notebook, args.executed)
    print(f"{args.notebook}: kept outputs of {kept} checked cells, cleared the rest")


if __name__ == "__main__":
    main()
