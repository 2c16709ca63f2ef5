"""One table style for the whole book.

`show(frame)` returns a pandas Styler that renders every cell in full (no 50-character cut), with no
row-number index, integers as integers (with thousands separators), floats to a fixed number of
significant digits, NaN / None as an em dash, and units in the column headers. `compare(...)` puts the
document's value and ours side by side with the difference. `caption(record)` is the one-line provenance
(profile, data, device, date, commit) of a recorded run.

    from hyperbook import tables
    tables.show(frame, units={"accuracy": "%"}, caption=tables.caption(record))
"""
from __future__ import annotations

import html
import math
import numbers

DASH = "\u2014"


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
            if "e" in text:
                text = f"{v:,.{max(digits - 1, 1)}f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and text != DASH and unit != "%" else (
        f"{text}%" if unit == "%" and text != DASH else text)


def format_difference(value, unit: str = "", digits: int = 3) -> str:
    """A signed difference (+1.2, -0.05); an em dash where there is none."""
    if _is_missing(value):
        return DASH
    text = format_value(value, unit, digits)
    return text if text.startswith("-") or text == DASH else "+" + text


def show(frame, *, units: dict | None = None, digits: int = 4, caption: str | None = None,
         index: bool = False):
    """A pandas Styler of `frame` in the book's style (see the module docstring).

    units: column -> unit, written into the header ("accuracy (%)"); cells keep bare numbers.
    index: keep the frame's index (only where it means something, e.g. a pivot table's rows)."""
    import pandas as pd
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"tables.show expects a pandas DataFrame, got {type(frame).__name__}")
    units = dict(units or {})
    unknown = [c for c in units if c not in frame.columns]
    if unknown:
        raise KeyError(f"tables.show: units given for columns not in the table: {unknown}; "
                       f"columns: {list(frame.columns)}")
    shown = frame.copy()
    if not index:
        shown = shown.reset_index(drop=True)
    shown.columns = [f"{c} ({units[c]})" if c in units else str(c) for c in shown.columns]
    styler = shown.style.format(lambda v: format_value(v, digits=digits), na_rep=DASH)
    styler = styler.format_index(lambda v: format_value(v), axis=0)
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.set_table_attributes('class="hb-table"')
    styler = styler.set_table_styles([
        {"selector": "td", "props": "text-align: right; white-space: normal; padding: 0.2em 0.6em;"},
        {"selector": "th", "props": "text-align: left; padding: 0.2em 0.6em;"},
    ])
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return styler


def compare(rows, *, unit_column: str = "unit"):
    """Document and ours side by side: rows of dicts with keys what, document, ours (optional: difference,
    unit, verdict); the difference is computed where missing and both are numbers. Returns a DataFrame."""
    import pandas as pd
    out = []
    for r in rows:
        doc, ours = r.get("document"), r.get("ours")
        diff = r.get("difference")
        if diff is None and isinstance(doc, numbers.Real) and isinstance(ours, numbers.Real) \
                and not isinstance(doc, bool) and not r.get("not_comparable"):
            diff = float(ours) - float(doc)
        unit = r.get(unit_column, "")
        out.append({"what": r.get("what", ""), "document": format_value(doc, unit),
                    "ours": format_value(ours, unit), "difference": format_difference(diff, unit),
                    **({"verdict": r["verdict"]} if "verdict" in r else {})})
    return pd.DataFrame(out)


def verdict_table(frame):
    """The frame of `verdicts.for_chapter` as the book shows it (numbers with units, difference signed)."""
    import pandas as pd
    rows = []
    for r in frame.to_dict("records"):
        unit = r.get("unit", "") or ""
        tol = r.get("tolerance")
        rows.append({"target": r["target"], "claim": r["claim"],
                     "document": format_value(r["document"], unit), "ours": format_value(r["ours"], unit),
                     "difference": format_difference(r["difference"], unit),
                     "tolerance": DASH if _is_missing(tol) else "±" + format_value(tol, unit),
                     "verdict": r["verdict"], "why": r.get("why") or DASH, "run": r.get("profile", DASH),
                     "data": r.get("data") or DASH})
    return show(pd.DataFrame(rows))


def caption(record) -> str:
    """One line of provenance for a table or figure from a `results.Record` (or a verdicts.Run)."""
    prov = getattr(record, "provenance", None) or {}
    metrics = getattr(record, "metrics", None) or {}
    data = ""
    for key in ("data_source", "source", "data", "dataset"):
        if isinstance(metrics.get(key), str) and metrics[key]:
            data = metrics[key]
            break
    if metrics.get("stand_in_for"):
        data = f"{data or 'a stand-in'} standing in for {metrics['stand_in_for']}"
    parts = [f"{prov.get('profile', '?')} run", "data: " + (data or "the document's (the run names no stand-in)"),
             f"device: {prov.get('device', '?')}", f"date: {str(prov.get('date', '?'))[:10]}",
             f"commit: {str(prov.get('git_commit', '?'))[:8]}"]
    return " · ".join(parts)
