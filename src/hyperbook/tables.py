"""One table style for the whole book.

`show(frame)` returns a `Table`: in a notebook and on the site a styled HTML table that renders every cell
in full (no 50-character cut), with no row-number index, integers as integers (with thousands separators),
floats to a fixed number of significant digits, NaN / None as an em dash, units in the column headers and
the provenance line as a caption under the table; as text (a terminal, nbval's comparison) the same table
as plain text. `compare(...)` puts the document's value and ours side by side with the difference.
`caption(records)` is the one-line provenance (profile, data, device, date, commit) of the recorded runs a
table or figure is drawn from; `here()` the same for a number measured when the page is built.

    from hyperbook import tables
    tables.show(frame, units={"accuracy": "%"}, caption=tables.caption(record))
"""
from __future__ import annotations

import hashlib
import html
import math
import numbers
from collections import Counter

DASH = "\u2014"
NOT_COMPARABLE = "not comparable"


def set_display_options() -> None:
    """pandas display options so that no printed cell or frame is cut (the book's staging step calls it)."""
    import pandas as pd
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.width", 250)
    pd.set_option("display.float_format", lambda v: format_value(v))


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd
        if value is pd.NA or value is pd.NaT:
            return True
    except ImportError:       # pragma: no cover
        pass
    return isinstance(value, float) and math.isnan(value)


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _is_missing(value)


def format_value(value, unit: str = "", digits: int = 4) -> str:
    """A number as a reader reads it: ints as ints (3,370), floats to `digits` significant digits
    (scientific below 1e-3), NaN/None as an em dash; strings as they are."""
    if _is_missing(value):
        return DASH
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, numbers.Integral):
        text = f"{int(value):,}"
    elif isinstance(value, numbers.Real):
        v = float(value)
        if math.isinf(v):
            text = "∞" if v > 0 else "-∞"
        elif v.is_integer() and abs(v) < 1e15:
            text = f"{int(v):,}"
        elif v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e7):
            text = f"{v:.{max(digits - 1, 1)}e}"
        else:
            text = f"{v:,.{digits}g}" if abs(v) >= 1 else f"{v:.{digits}g}"
            if "e" in text:                  # at least `digits` figures before the point: round to an integer
                text = f"{v:,.0f}"
    else:
        return str(value)              # text carries its own unit ("below 50%")
    if not unit or text == DASH:
        return text
    return f"{text}%" if unit == "%" else f"{text} {unit}"


def format_difference(value, unit: str = "", digits: int = 3) -> str:
    """A signed difference (+1.2, -0.05); an em dash where there is none."""
    if _is_missing(value):
        return DASH
    text = format_value(value, unit, digits)
    return text if text.startswith("-") or text == DASH else "+" + text


# ----------------------------------------------------------------------------- tables
class Table:
    """A table in the book's style: `_repr_html_` for notebooks and the site (the caption under the table),
    `str()` / `repr()` for text. Both are deterministic (no random element ids), so a `# NBVAL_CHECK_OUTPUT`
    cell may show one."""

    def __init__(self, shown, styler, caption: str | None, index: bool = False):
        self.frame = shown              # the formatted frame (strings), as the reader sees it
        self.styler = styler
        self.caption = caption
        self.index = index

    def to_html(self) -> str:
        return self.styler.to_html()

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string(index=self.index) + (f"\n{self.caption}" if self.caption else "")

    __str__ = __repr__


def _format_frame(frame, digits):
    """Every cell as the text the reader sees (digits: one number, or column -> significant digits)."""
    out = frame.copy().astype(object)
    for col in out.columns:
        d = digits.get(col, 4) if isinstance(digits, dict) else digits
        out[col] = [format_value(v, digits=d) for v in frame[col]]
    return out


def show(frame, *, units: dict | None = None, digits: int | dict = 4, caption: str | None = None,
         index: bool = False) -> Table:
    """`frame` in the book's style (see the module docstring).

    units: column -> unit, written into the header ("accuracy (%)"); cells keep bare numbers.
    digits: significant digits of floats, for all columns or per column (a dict).
    caption: one line under the table, usually `caption(records)`.
    index: keep the frame's index (only where it means something, e.g. a pivot table's rows)."""
    import pandas as pd
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"tables.show expects a pandas DataFrame, got {type(frame).__name__}")
    units = dict(units or {})
    unknown = [c for c in units if c not in frame.columns]
    if isinstance(digits, dict):
        unknown += [c for c in digits if c not in frame.columns]
    if unknown:
        raise KeyError(f"tables.show: units or digits given for columns not in the table: {unknown}; "
                       f"columns: {list(frame.columns)}")
    shown = frame if index else frame.reset_index(drop=True)
    shown = _format_frame(shown, digits)
    shown.columns = [f"{c} ({units[c]})" if c in units else str(c) for c in shown.columns]
    if index:
        shown.index = [format_value(v) if not isinstance(v, tuple) else " / ".join(map(format_value, v))
                       for v in shown.index]
    styler = shown.style.format(escape="html")       # "< 1e-9" is text, not a tag
    if not index:
        styler = styler.hide(axis="index")
    key = hashlib.sha1((shown.to_json() + (caption or "")).encode()).hexdigest()[:10]
    styler = styler.set_uuid(key).set_table_attributes('class="hb-table"')
    styler = styler.set_table_styles([
        {"selector": "td", "props": "text-align: right; white-space: normal; padding: 0.2em 0.6em;"},
        {"selector": "th", "props": "text-align: left; padding: 0.2em 0.6em;"},
        {"selector": "caption", "props": "caption-side: bottom; text-align: left; font-size: 0.85em; "
                                         "color: #555; padding-top: 0.3em;"},
    ])
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return Table(shown, styler, caption, index)


# ----------------------------------------------------------------------------- document against ours
def comparable(record) -> bool:
    """May this record's numbers be set against the document's? Not a smoke run, not stand-in data
    (the rule of `hyperbook.verdicts`: a `not comparable` verdict gets no difference)."""
    if record is None or getattr(record, "profile", "smoke") == "smoke":
        return False
    return not _run_of(record).is_stand_in()


def compare(rows, *, unit_column: str = "unit"):
    """Document and ours side by side: rows of dicts with keys what, document, ours (optional: difference,
    unit, not_comparable, and any further columns, kept in order after `difference`); the difference is
    computed where missing, both are numbers and the row is comparable (else an em dash, or 'not comparable'
    where a number stands on both sides). `what` may be several columns: pass keys before `document`.
    Returns a DataFrame of text cells."""
    import pandas as pd
    out = []
    for r in rows:
        doc, ours = r.get("document"), r.get("ours")
        diff = r.get("difference")
        unit = r.get(unit_column, "") or ""
        blocked = bool(r.get("not_comparable"))
        if diff is None and is_number(doc) and is_number(ours) and not blocked:
            diff = float(ours) - float(doc)
        keys = list(r)
        lead = keys[:keys.index("document")] if "document" in keys else ["what"]
        rest = [k for k in keys if k not in lead and k not in ("document", "ours", "difference", unit_column,
                                                                 "not_comparable")]
        row = {k: r.get(k, "") for k in lead}
        row.update({"document": format_value(doc, unit), "ours": format_value(ours, unit),
                    "difference": (NOT_COMPARABLE if blocked and is_number(doc) and is_number(ours)
                                   else format_difference(diff, unit))})
        row.update({k: r[k] for k in rest})
        out.append(row)
    return pd.DataFrame(out)


def verdict_table(frame):
    """The frame of `verdicts.for_chapter` as the book shows it (numbers with units, difference signed)."""
    import pandas as pd
    rows = []
    for r in frame.to_dict("records"):
        unit = r.get("unit", "") or ""
        tol = r.get("tolerance")
        ours = r["ours"] if isinstance(r["ours"], str) else format_value(r["ours"], unit)
        rows.append({"target": r["target"], "claim": r["claim"],
                     "document": format_value(r["document"], unit), "ours": ours,
                     "difference": format_difference(r["difference"], unit),
                     "tolerance": DASH if _is_missing(tol) else "±" + format_value(tol, unit),
                     "verdict": r["verdict"], "why": r.get("why") or DASH, "run": r.get("profile", DASH),
                     "data": r.get("data") or DASH})
    return show(pd.DataFrame(rows), caption="computed by hyperbook.verdicts from the recorded runs this page "
                                            "reads (the status page's computation); run and data per row")


# ----------------------------------------------------------------------------- provenance
def _run_of(record):
    from .verdicts import Run
    if isinstance(record, Run):
        return record
    prov = getattr(record, "provenance", None) or {}
    return Run(prov.get("chapter", ""), prov.get("experiment", ""), prov.get("profile", "?"),
               getattr(record, "metrics", None) or {}, prov)


def data_of(record) -> str:
    """The record's own statement of its data ('' where it states none: the document's data)."""
    return _run_of(record).data()


def run_label(record) -> str:
    """A short per-row label for tables whose rows come from different runs: 'reduced · CIFAR-10 (JPEG mirror)'.
    The full provenance goes into the caption."""
    if record is None:
        return "quoted, not run here"
    data = data_of(record)
    short = data.split(";")[0].split(" (")[0].rstrip(", ")
    if data and _run_of(record).is_stand_in() and "stand" not in short.lower():
        short += " (stand-in)"
    return f"{record.profile}" + (f" · {short}" if data else "")


def _records(records) -> list:
    if records is None:
        return []
    if hasattr(records, "provenance"):
        return [records]
    if isinstance(records, dict):
        records = records.values()
    return [r for r in records if r is not None]


def _listing(values: list[str], most: int = 3) -> str:
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    parts = [f"{v} ({n})" if n > 1 else v for v, n in counts.items()]
    return ", ".join(parts[:most]) + (f" and {len(parts) - most} more" if len(parts) > most else "")


def caption(records, what: str = "", data: str | None = None) -> str:
    """One line of provenance for a table or figure: profile, data, device, date and commit of the recorded
    run (a `results.Record` or a `verdicts.Run`), or a summary of several ('reduced run (5), smoke run (2)';
    dates as a range). `what` is put in front ("H-T1, test MSE: reduced run · ..."); `data` replaces the
    runs' own statement of their data where they measure no data set (timings on random tensors)."""
    recs = _records(records)
    lead = f"{what}: " if what else ""
    if not recs:
        return lead + "drawn from the code, no recorded run"
    provs = [getattr(r, "provenance", None) or {} for r in recs]
    runs = _listing([f"{p.get('profile', '?')} run" for p in provs])
    data = data or _listing([data_of(r) or "the document's data" for r in recs], most=2)
    devices = _listing([str(p.get("device", "?")) for p in provs], most=2)
    dates = sorted({str(p.get("date", "?"))[:10] for p in provs})
    date = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    commits = list(dict.fromkeys(str(p.get("git_commit", "?"))[:8] for p in provs))
    commit = ", ".join(commits[:3]) + (f" and {len(commits) - 3} more" if len(commits) > 3 else "")
    return lead + " · ".join([runs, f"data: {data}", f"device: {devices}", f"date: {date}",
                              f"commit{'s' if len(commits) > 1 else ''}: {commit}"])


def here(what: str = "measured when this page was built") -> str:
    """The provenance line of a number measured while the chapter runs (timings, exact checks): this machine,
    its torch threads, today, the working tree's commit."""
    import datetime
    import torch
    from .results import _device_name, _git_commit
    device = _device_name("cuda" if torch.cuda.is_available() else "cpu")
    return " · ".join([what, f"device: {device}, {torch.get_num_threads()} torch thread(s)",
                       f"date: {datetime.date.today().isoformat()}", f"commit: {_git_commit()[:8]}"])


CODE = "drawn from the code, no training"


def runs_table(records, columns: dict | None = None) -> Table:
    """The table every chapter opens with: one row per experiment and the run it shows (profile, data, steps,
    throughput, wall time); `columns` adds chapter-specific ones (name -> function of the record)."""
    import pandas as pd
    rows = []
    for name, r in (records.items() if isinstance(records, dict) else ((getattr(r, "name", "?"), r) for r in records)):
        m, p = r.metrics, r.provenance
        wall = p.get("wall_time_s")
        row = {"experiment": name, "run": r.profile, "data": data_of(r) or "the document's",
               "steps": m.get("steps"), "throughput": m.get("throughput"),
               "throughput unit": m.get("throughput_unit", "images/s") if m.get("throughput") is not None else None,
               "wall time (min)": wall / 60 if isinstance(wall, (int, float)) else None}
        for col, fn in (columns or {}).items():
            try:
                row[col] = fn(r)
            except (KeyError, TypeError, IndexError):
                row[col] = None
        rows.append(row)
    frame = pd.DataFrame(rows)
    return show(frame, digits={"throughput": 3, "wall time (min)": 2}, caption=caption(records))


def prose(lines) -> "object":
    """Computed sentences as Markdown (a chapter's findings); `lines` is a string or a list of lines."""
    from IPython.display import Markdown
    return Markdown(lines if isinstance(lines, str) else "\n".join(lines))
