"""Command line of the book (the Makefile calls it).

  python -m hyperbook.cli run CHAPTER PROFILE [-p name=value ...] [--device auto|cpu|cuda] [--no-reuse]
  python -m hyperbook.cli book            execute every chapter (recorded runs reused) and build the site
  python -m hyperbook.cli status          regenerate book/status.md from results/
  python -m hyperbook.cli data [NAME ...] fetch datasets into data/
  python -m hyperbook.cli chapters        list chapters and whether their notebook exists
  python -m hyperbook.cli train UNIT|CHAPTER ... --profile P [--device D] [--seed N]   train single experiments
  python -m hyperbook.cli plan --profile P [--device cpu|cuda]       estimated hours of every unit
  python -m hyperbook.cli plan --readme [--write]                    the README's CPU-hours summary of the full protocols
  python -m hyperbook.cli time UNIT ... --profile P --steps N         measure ms per step into results/_timings/
  python -m hyperbook.cli campaign --profile P --budget 2h [--order cheapest|chapter] [--seeds 0,1,2] [--allow-busy]   what fits, one at a time, on an idle machine
  python -m hyperbook.cli sweep --profile P --executor slurm|local|debug [--seeds 0,1,2] [UNITS ...]
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


def _stage_one(chapter: str) -> str:
    try:
        stage_chapter(chapter, STAGE_DIR / CHAPTERS[chapter])
    except BookError:
        raise
    except Exception as err:   # papermill's errors do not survive pickling back from a worker: say it plainly
        raise BookError(f"chapter {chapter!r} failed while rendering: {type(err).__name__}: {err}") from None
    return chapter


def stage_chapters(chapters: list[str], jobs: int = 1) -> None:
    """Execute the chapters into the staging folder, `jobs` at a time. Rendering from records is light,
    single-threaded work (kernel start, imports, drawing), so with jobs > 1 each kernel gets one torch thread
    (OMP_NUM_THREADS=1, inherited) and the chapters share the cores instead of oversubscribing them."""
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context
    if jobs < 1:
        raise BookError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1 or len(chapters) == 1:
        for chapter in chapters:
            print(f"executing {chapter} ...", flush=True)
            _stage_one(chapter)
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"executing {len(chapters)} chapters, {jobs} at a time ...", flush=True)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_stage_one, c): c for c in chapters}
        for future in as_completed(futures):
            print(f"executed {future.result()}", flush=True)   # re-raises a chapter's error here


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
    chapters = [check_chapter(c) for c in (args.chapters or available_chapters())]
    stage_chapters(chapters, jobs=args.jobs)
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


# ---------------------------------------------------------------- experiments as units (hyperbook.units)
def cmd_train(args) -> None:
    import torch

    from .context import RunContext
    from .profiles import check_training_profile
    from .units import select
    profile = check_training_profile(args.profile)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    units = select(args.units)
    overrides = parse_params(args.param)
    if args.seed is not None:
        seedless = [u.key for u in units if u.seed_field is None]
        if seedless and args.seed != 0:
            raise BookError(f"--seed {args.seed}: these units have no seed in their config, so their record "
                            f"could not tell seeds apart: {', '.join(seedless)}")
    for unit in units:
        ov = dict(overrides)
        if args.seed is not None and unit.seed_field is not None:
            ov[unit.seed_field] = args.seed
        unit.config(profile, ov)           # an unknown override fails before any training
        ctx = RunContext.from_params(unit.chapter, profile, device, args.data_dir, args.results_dir,
                                     reuse=not args.no_reuse, seed=args.seed or 0)
        record = unit.run(ctx, ov)
        print(f"{unit.key}: {record.source()} -> {record.path}", flush=True)


def _cost(args):
    from .results import DEFAULT_RESULTS_DIR
    from .units import CostModel
    device = args.device if args.device in ("cpu", "cuda") else resolve_device(args.device).split(":")[0]
    return device, CostModel(device, args.results_dir or DEFAULT_RESULTS_DIR, machine=args.machine)


def cmd_plan(args) -> None:
    from .profiles import check_training_profile
    from .units import format_plan, plan_rows, select
    if args.readme:
        from .results import DEFAULT_RESULTS_DIR
        from .units import full_cost_markdown
        block = full_cost_markdown(args.results_dir or DEFAULT_RESULTS_DIR)
        if args.write:
            from .readme_blocks import README, write_block
            print(f"{README}: costs block {'rewritten' if write_block('costs', block) else 'unchanged'}")
        else:
            print(block)
        return
    if args.write:
        raise BookError("--write goes with --readme (it rewrites the README's costs block)")
    if args.profile is None:
        raise BookError("plan needs --profile smoke, reduced or full (only --readme, which covers the full "
                        "protocols, goes without)")
    profile = check_training_profile(args.profile)
    device, cost = _cost(args)
    print(format_plan(plan_rows(select(args.units), profile, cost, args.data_dir), profile, device))


def cmd_time(args) -> None:
    from .profiles import check_training_profile
    from .results import DEFAULT_RESULTS_DIR
    from . import cpu_load
    from .units import UntimeableError, select, time_unit, write_timing
    profile = check_training_profile(args.profile)
    device = resolve_device(args.device)
    for unit in select(args.units):
        if unit.step_field is None:
            print(f"skip {unit.key}: its config has no step field ({unit.steps_note})")
            continue
        busy = cpu_load.refuse_if_busy("time", args.allow_busy)
        try:
            entry = time_unit(unit, profile, args.steps, device, args.data_dir, warmup=args.warmup)
        except UntimeableError as err:     # the others still get timed
            print(f"skip {err}", flush=True)
            continue
        entry["busy_elsewhere_cores"] = None if busy is None else round(busy, 2)
        during = entry.get("busy_during_cores")
        if during is not None and during > cpu_load.BUSY_LIMIT and not args.allow_busy:
            # a job that started after the check above: the figure is inflated, so it is not written
            print(f"skip {unit.key}: other processes kept {during:.2f} CPU cores busy during its timing (limit "
                  f"{cpu_load.BUSY_LIMIT}); {entry['ms_per_step']:.1f} ms/step not written. Stop the other job "
                  "and time it again (or pass --allow-busy)", flush=True)
            continue
        path = write_timing(entry, args.results_dir or DEFAULT_RESULTS_DIR)
        print(f"{unit.key} ({profile}): {entry['ms_per_step']:.1f} ms/step (median of {args.steps} steps after "
              f"{args.warmup} warm-up, {entry['loops']} loop(s); run {entry['wall_s']:.0f} s; data: {entry['data']})"
              f" -> {path}", flush=True)


def cmd_campaign(args) -> None:
    from .campaign import candidates, parse_budget, run_campaign, subprocess_runner
    from . import cpu_load
    from .profiles import check_training_profile
    from .units import select
    profile = check_training_profile(args.profile)
    resolve_device(args.device)
    budget = parse_budget(args.budget)
    cpu_load.refuse_if_busy("campaign", args.allow_busy)
    device, cost = _cost(args)
    from .sweep import parse_seeds
    seeds = parse_seeds(args.seeds) if args.seeds else None
    cands = candidates(select(args.units), profile, cost, seeds)
    runner = subprocess_runner(profile, args.device, args.results_dir, args.data_dir)
    done = run_campaign(cands, budget, runner, order=args.order, include_untimed=args.include_untimed,
                        safety=args.safety, busy=None if args.allow_busy else cpu_load.busy_elsewhere,
                        busy_limit=cpu_load.BUSY_LIMIT)
    ran = [k for k, s in done if s == "done"]
    print(f"campaign ({profile}, {args.budget}): {len(ran)} trained, "
          f"{sum(s == 'failed' for _, s in done)} failed, {sum(s.startswith('skipped') for _, s in done)} skipped"
          + ("; stopped: the machine got busy" if any(s == "stopped: machine busy" for _, s in done) else ""))


def cmd_sweep(args) -> None:
    from .profiles import check_training_profile
    from .results import DEFAULT_RESULTS_DIR
    from .sweep import make_specs, parse_seeds, submit, wait
    from .units import select
    profile = check_training_profile(args.profile)
    if args.executor != "slurm":
        resolve_device(args.device)        # a SLURM job resolves it on its node
    specs = make_specs(select(args.units), profile, parse_seeds(args.seeds), args.device,
                       args.results_dir or DEFAULT_RESULTS_DIR, args.data_dir)
    jobs = submit(specs, args.executor, args.log_dir, timeout_min=args.timeout_min,
                  slurm_params=parse_params(args.slurm))
    print(f"submitted {len(specs)} unit runs in {len(jobs)} {args.executor} jobs", flush=True)
    if args.executor != "slurm" or args.wait:
        wait(jobs)
    else:
        print("jobs: " + ", ".join(str(j.job_id) for j in jobs))


def _unit_options(p, units_help: str, units_required: bool = False, profile_required: bool = True) -> None:
    p.add_argument("units", nargs="+" if units_required else "*", help=units_help)
    p.add_argument("--profile", required=profile_required, help="smoke, reduced or full")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--results-dir", default=None, help="default: results/ (HYPERBOOK_RESULTS_DIR is not read)")
    p.add_argument("--data-dir", default=None, help="default: data/")


def add_unit_commands(sub) -> None:
    tr = sub.add_parser("train", help="train single experiments (CHAPTER/EXPERIMENT) or every one of a chapter")
    _unit_options(tr, "CHAPTER/EXPERIMENT or CHAPTER", units_required=True)
    tr.add_argument("--seed", type=int, default=None, help="into the config's seed field (so into the hash)")
    tr.add_argument("-p", "--param", action="append", help="config override name=value (dotted for nested)")
    tr.add_argument("--no-reuse", action="store_true", help="retrain even where a run is recorded")
    tr.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    tr.set_defaults(fn=cmd_train)
    pl = sub.add_parser("plan", help="estimated hours of every unit of a profile on a device")
    _unit_options(pl, "units or chapters (default: all)", profile_required=False)
    pl.add_argument("--machine", default=None, help="only records / timings of a device name containing this")
    pl.add_argument("--readme", action="store_true",
                    help="print the README's per-chapter summary of the full protocols' CPU hours instead")
    pl.add_argument("--write", action="store_true", help="with --readme: rewrite the README's costs block with it")
    pl.set_defaults(fn=cmd_plan)
    ti = sub.add_parser("time", help="measure ms per training step (median of clocked steps) into results/_timings/")
    _unit_options(ti, "units or chapters", units_required=True)
    ti.add_argument("--steps", type=int, required=True, help="n: the median of n clocked steps per training loop")
    ti.add_argument("--warmup", type=int, default=2, help="steps run before the n clocked ones (default 2)")
    ti.add_argument("--allow-busy", action="store_true",
                    help="time even while other processes keep the CPU busy (the entry records how busy)")
    ti.set_defaults(fn=cmd_time)
    ca = sub.add_parser("campaign", help="run the unrecorded units that fit a time budget, one at a time")
    _unit_options(ca, "units or chapters (default: all)")
    ca.add_argument("--budget", required=True, help="e.g. 2h, 90m, 1h30m")
    ca.add_argument("--order", default="cheapest", choices=("cheapest", "chapter"))
    ca.add_argument("--include-untimed", action="store_true", help="also run units with no estimate")
    ca.add_argument("--safety", type=float, default=1.0, help="start a unit only if safety x estimate fits")
    ca.add_argument("--machine", default=None, help="estimates only from this device name (substring)")
    ca.add_argument("--allow-busy", action="store_true",
                    help="start (and go on) even while other processes keep the CPU busy")
    ca.add_argument("--seeds", default=None,
                    help="comma-separated, e.g. 0,1,2: every (unit, seed) without a record (default: each unit's "
                         "own seed)")
    ca.set_defaults(fn=cmd_campaign)
    sw = sub.add_parser("sweep", help="run units (x seeds) as submitit jobs: slurm, local (one per GPU), debug")
    _unit_options(sw, "units or chapters (default: all)")
    sw.add_argument("--executor", required=True, choices=("slurm", "local", "debug"))
    sw.add_argument("--seeds", default=None, help="comma-separated, e.g. 0,1,2 (default: 0)")
    sw.add_argument("--timeout-min", type=int, default=72 * 60, help="per job; on timeout a job requeues itself")
    sw.add_argument("--log-dir", default=None, help="submitit's folder (default: results/_checkpoints/submitit/)")
    sw.add_argument("--slurm", action="append", help="SLURM parameter name=value (e.g. partition=gpu)")
    sw.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and print their records")
    sw.set_defaults(fn=cmd_sweep)


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
    book.add_argument("--jobs", type=int, default=1, help="chapters executed at once (make book: the cores)")
    book.set_defaults(fn=cmd_book)
    sub.add_parser("status", help="regenerate book/status.md").set_defaults(fn=cmd_status)
    data = sub.add_parser("data", help="fetch datasets into data/")
    data.add_argument("names", nargs="*")
    data.set_defaults(fn=cmd_data)
    sub.add_parser("chapters", help="list the chapters").set_defaults(fn=cmd_chapters)
    add_unit_commands(sub)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import faulthandler
    faulthandler.enable()     # a crash in native code (an HCNN(+) run once segfaulted) prints the Python stack
    sys.exit(main())
