"""All the GPU work of a session as one prepared call of the device tool (a lent GPU, 15 minutes in all).

Here, on the build machine, from a clean commit:

    python -m hyperbook.device_session pack            # -> .devcarry/ (git-ignored) and the command to run there

There (the device tool's `run`, with `carry: [".devcarry"]`), the printed command installs the carried wheels and
calls `python3 -m hyperbook.device_session run --out $OUT`, which in one budget (default 480 s):
  1. unpacks the carried data (MNIST's IDX files; CIFAR-10 from the mirror archive, checked by its sha256);
  2. runs the per-sample convolution check (`hyperbook.gpu_check`) -> $OUT/gpu_check.json;
  3. times every unit's `full` training step, cheapest data first (MNIST, then the rest), each under its own
     wall limit -> the GPU's step-time table, the registry's GPU column;
  4. spends what is left on a `full` campaign on the GPU: the cheapest unrecorded units whose new estimate
     (x a safety factor) fits;
  5. packs every file it wrote under results/ into $OUT/results.tar.gz, with $OUT/session.json (each phase:
     seconds, outcome, errors).

Here again, `python -m hyperbook.device_session unpack <files_at>` merges the returned records and step-time
table into results/ (a record already present is kept, never overwritten); then `make status` and commit.

The device has its own torch (2.11 there, 2.14.1 here) and no git checkout: the records name the commit that
`pack` read (HYPERBOOK_GIT_COMMIT), which is why `pack` refuses a dirty tree.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .errors import BookError
from .results import DEFAULT_RESULTS_DIR, GIT_COMMIT_ENV, REPO_ROOT, write_text_atomic

CARRY = ".devcarry"                  # git-ignored; named in the device tool's `carry`
CARRY_LIMIT_MB = 60.0                # the tool sends at most 64 MiB: the tracked tree and this folder together
COMMAND_LIMIT = 2000                 # characters of one device command
PHASES = ("data", "check", "time", "campaign")
WHEELS = ("e2cnn==0.2.3", "submitit==1.5.4")   # what the device image lacks (its list: /work/.library/device/KINDS.md)
TIMINGS = "_timings"


# ------------------------------------------------------------------------------------------------ here: pack
def tracked_mb(repo=REPO_ROOT) -> float:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout.decode()
    paths = [Path(repo) / f for f in names.split("\0") if f]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def clean_commit(repo=REPO_ROOT, allow_dirty: bool = False) -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
    if dirty and not allow_dirty:
        raise BookError("the working tree has uncommitted changes: commit first, so that the GPU's records name the "
                        "code they ran (or pass --allow-dirty for a run that records nothing you keep)")
    return head + ("+dirty" if dirty else "")


def pack(carry: Path, data_dir: Path, mirror: Path | None, wheels=WHEELS, cifar: bool = True,
         allow_dirty: bool = False, repo=REPO_ROOT, base_mb: float | None = None) -> dict:
    """Fill `carry` with what the device needs and cannot fetch; returns what went in and the device command."""
    commit = clean_commit(repo, allow_dirty)
    raw = Path(data_dir) / "MNIST" / "raw"
    if not any(raw.glob("*-ubyte")):
        raise BookError(f"no MNIST IDX files in {raw}: run `make data` first")
    if carry.exists():
        shutil.rmtree(carry)
    carry.mkdir(parents=True)
    with tarfile.open(carry / "mnist.tar.gz", "w:gz") as tar:
        for f in sorted(raw.iterdir()):
            if f.name.endswith("-ubyte") or f.name.endswith(".md5ok"):
                tar.add(f, arcname=f"MNIST/raw/{f.name}")
    contents = ["mnist.tar.gz"]
    if cifar:
        from .data.mirror import ARCHIVES, SUMS, verify_archive
        if not mirror:
            raise BookError("CIFAR-10 travels as the mirror's archive: pass --mirror <folder with the archives and "
                            f"{SUMS}> (the shared data folder), or --no-cifar")
        src, digest = verify_archive(Path(mirror), "cifar10")     # the mirror's own listed sum, checked here first
        (carry / "mirror").mkdir()
        shutil.copy2(src, carry / "mirror" / src.name)
        (carry / "mirror" / SUMS).write_text(f"{digest}  {ARCHIVES['cifar10'].archive}\n")
        contents.append(f"mirror/{src.name}")
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(carry / "wheels"), *wheels],
                       check=True)
        contents += [f"wheels/{w.name}" for w in sorted((carry / "wheels").glob("*.whl"))]
    (carry / "COMMIT").write_text(commit + "\n")
    size = sum(f.stat().st_size for f in carry.rglob("*") if f.is_file()) / 2**20
    total = size + (tracked_mb(repo) if base_mb is None else base_mb)
    if total > CARRY_LIMIT_MB:
        raise BookError(f"{carry} ({size:.1f} MiB) and the tracked tree together are {total:.1f} MiB, over the "
                        f"{CARRY_LIMIT_MB:.0f} MiB this script allows the device tool (64 MiB at most): pack "
                        "with --no-cifar")
    return {"commit": commit, "contents": contents, "carry_mb": round(size, 1), "total_mb": round(total, 1),
            "command": device_command(carry.name, bool(wheels))}


def device_command(carry: str = CARRY, wheels: bool = True, budget_s: int = 480) -> str:
    install = (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
               f"/tmp/site {carry}/wheels/*.whl || exit 1; " if wheels else "")
    cmd = (f"{install}export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1; "
           f"python3 -m hyperbook.device_session run --out \"$OUT\" --carry {carry} --budget-s {budget_s} "
           f"2>&1 | tee \"$OUT/session.log\"")
    if len(cmd) > COMMAND_LIMIT:
        raise BookError(f"the device command is {len(cmd)} characters, over the tool's {COMMAND_LIMIT}")
    return cmd


# ------------------------------------------------------------------------------------------------ there: run
class PhaseTimeout(Exception):
    pass


@contextlib.contextmanager
def wall_limit(seconds: float):
    """Raise PhaseTimeout in this (main) thread after `seconds`; a running torch op finishes first."""
    def _raise(signum, frame):
        raise PhaseTimeout(f"over its {seconds:.0f} s limit")
    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def unpack_data(carry: Path, data_dir: Path) -> dict:
    """MNIST's IDX files from the carried tarball; CIFAR-10 through the data layer's mirror path (sha256 first)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    with tarfile.open(carry / "mnist.tar.gz") as tar:
        tar.extractall(data_dir, filter="data")
    done["mnist"] = "unpacked"
    mirror = carry / "mirror"
    if (mirror / "SHA256SUMS").is_file():   # straight to the mirror: the device has no internet
        from .data.cifar import load_cifar10_jpeg
        from .data.mirror import ENV, unpack as unpack_archive
        os.environ[ENV] = str(mirror.resolve())
        unpack_archive("cifar10", data_dir)
        for train in (True, False):          # decoded into the cached tensors once, before any timing
            load_cifar10_jpeg(data_dir, train=train)
        done["cifar10"] = "from the mirror"
    return done


def timing_order(units, data_dir: Path, results_dir: Path) -> list:
    """Units with a step field: MNIST-only or data-free first, then those whose data is here, then the rest;
    within each, cheapest on the CPU table first (so the most units get a GPU figure in the time given)."""
    from .units import data_state, load_timings
    cpu = {}
    for table in load_timings(results_dir):
        if table.get("device") == "cpu":
            for key, by_profile in table["units"].items():
                if "full" in by_profile:
                    cpu.setdefault(key, by_profile["full"]["ms_per_step"])

    def group(unit) -> int:
        state = data_state(unit, "full", data_dir)
        names = set(unit.datasets(unit.config("full")))
        if state in ("yes", "none needed") and names <= {"mnist"}:
            return 0
        return 1 if state in ("yes", "none needed") else 2
    timed = [u for u in units if u.step_field is not None]
    return sorted(timed, key=lambda u: (group(u), cpu.get(u.key, float("inf"))))


def _changed_files(results_dir: Path, since: float) -> list[Path]:
    return sorted(p for p in results_dir.rglob("*") if p.is_file() and p.stat().st_mtime >= since
                  and "_checkpoints" not in p.relative_to(results_dir).parts and ".tmp-" not in str(p))


def run_session(out: Path, carry: Path, budget_s: float, device: str = "cuda", phases=PHASES,
                units: list[str] | None = None, steps: int = 20, warmup: int = 5, unit_limit_s: float = 45.0,
                time_share: float = 0.5, safety: float = 1.5, results_dir: Path = DEFAULT_RESULTS_DIR,
                data_dir: Path | None = None, clock=time.monotonic) -> dict:
    """The device side: the phases in order, inside `budget_s`; every outcome in out/session.json."""
    bad = [p for p in phases if p not in PHASES]
    if bad:
        raise BookError(f"unknown phase {bad[0]!r}: choose from {', '.join(PHASES)}")
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else REPO_ROOT / "data"
    results_dir = Path(results_dir)
    commit_file = carry / "COMMIT"
    if commit_file.is_file():      # no git checkout travels: provenance takes the commit `pack` read
        with _environ(GIT_COMMIT_ENV, commit_file.read_text().strip()):
            return _run_phases(out, carry, budget_s, device, phases, units, steps, warmup, unit_limit_s, time_share,
                               safety, results_dir, data_dir, clock)
    return _run_phases(out, carry, budget_s, device, phases, units, steps, warmup, unit_limit_s, time_share, safety,
                       results_dir, data_dir, clock)


@contextlib.contextmanager
def _environ(name: str, value: str):
    """os.environ[name] = value inside (the campaign's train processes inherit it), as it was after."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _run_phases(out, carry, budget_s, device, phases, units, steps, warmup, unit_limit_s, time_share, safety,
                results_dir, data_dir, clock) -> dict:
    from .units import select, time_unit, write_timing
    start_wall, t0 = time.time(), clock()
    left = lambda: budget_s - (clock() - t0)      # noqa: E731
    session = {"device": device, "budget_s": budget_s, "commit": os.environ.get(GIT_COMMIT_ENV),
               "phases": {}}

    def note(name: str, **fields):
        session["phases"][name] = fields
        write_text_atomic(out / "session.json", json.dumps(session, indent=1))
        print(f"[{clock() - t0:6.1f} s] {name}: " + ", ".join(f"{k}={v}" for k, v in fields.items()
                                                              if k != "units"), flush=True)

    if "data" in phases:
        t = clock()
        try:
            outcome = unpack_data(carry, data_dir)
            note("data", seconds=round(clock() - t, 1), outcome=outcome)
        except Exception as err:     # the phases after it still run on what is there
            note("data", seconds=round(clock() - t, 1), outcome="failed", error=repr(err))
    if "check" in phases:
        t = clock()
        try:
            from . import gpu_check
            import torch
            benchmark = torch.backends.cudnn.benchmark      # the check turns it on; training runs leave it off
            try:
                with wall_limit(min(150.0, max(1.0, left() * 0.3))):
                    report = gpu_check.check(device)
            finally:
                torch.backends.cudnn.benchmark = benchmark
            write_text_atomic(out / "gpu_check.json", json.dumps(report, indent=1))
            note("check", seconds=round(clock() - t, 1), outcome="done", goals_met=report["goals_met"])
        except Exception as err:
            note("check", seconds=round(clock() - t, 1), outcome="failed", error=repr(err))
    if "time" in phases:
        t = clock()
        deadline = t + max(0.0, left()) * time_share
        timed: dict = {}
        for unit in timing_order(select(units), data_dir, results_dir):
            room = deadline - clock()
            if room < 5.0:
                timed[unit.key] = "not reached"
                continue
            try:
                with wall_limit(min(unit_limit_s, room)):
                    entry = time_unit(unit, "full", steps, device, data_dir, warmup=warmup)
                write_timing(entry, results_dir)
                timed[unit.key] = entry["ms_per_step"]
            except Exception as err:
                timed[unit.key] = f"failed: {err!r}"[:300]
            note("time", seconds=round(clock() - t, 1), timed=sum(isinstance(v, float) for v in timed.values()),
                 last=f"{unit.key}: {timed[unit.key]}", units=timed)
        note("time", seconds=round(clock() - t, 1), timed=sum(isinstance(v, float) for v in timed.values()),
             units=timed)
    if "campaign" in phases:
        t = clock()
        budget = left() - 20.0                     # room to pack what it recorded
        if budget < 30.0:
            note("campaign", seconds=0.0, outcome=f"skipped: {max(budget, 0):.0f} s left")
        else:
            from .cli import main as cli_main
            from .results import _device_name
            argv = ["campaign", "--profile", "full", "--device", device, "--budget", f"{int(budget)}s",
                    "--order", "cheapest", "--safety", str(safety), "--allow-busy",
                    "--machine", _device_name(device), "--results-dir", str(results_dir),
                    "--data-dir", str(data_dir), *(units or [])]
            try:
                rc = cli_main(argv)
                note("campaign", seconds=round(clock() - t, 1), outcome=f"exit {rc}")
            except BaseException as err:           # SystemExit from a clear refusal included
                note("campaign", seconds=round(clock() - t, 1), outcome="failed", error=repr(err))
    files = _changed_files(results_dir, start_wall)
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(results_dir)))
    note("pack", seconds=round(clock() - t0, 1), files=len(files))
    return session


# ------------------------------------------------------------------------------------------------ here: unpack
def unpack(files_at: Path, results_dir: Path = DEFAULT_RESULTS_DIR) -> dict:
    """Merge what a device session returned: new record folders are added (present ones kept), step-time tables
    merged entry by entry, gpu_check.json kept under results/_timings/."""
    from .units import write_timing
    files_at, results_dir = Path(files_at), Path(results_dir)
    archive = files_at / "results.tar.gz"
    if not archive.is_file():
        raise BookError(f"no results.tar.gz in {files_at}: give the folder the device tool returned (files_at)")
    added, kept, merged = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(tmp, filter="data")   # refuses absolute paths, '..' and links out of tmp
            except tarfile.FilterError as err:
                raise BookError(f"{archive} holds a member outside results/ ({err}): not unpacked") from err
        tmp = Path(tmp)
        for table_path in sorted((tmp / TIMINGS).glob("*.json")):
            table = json.loads(table_path.read_text())
            for unit, by_profile in table["units"].items():
                for profile, entry in by_profile.items():
                    write_timing({**entry, "unit": unit, "profile": profile, "machine": table["machine"],
                                  "device": table["device"], "torch": table["torch"], "threads": table["threads"]},
                                 results_dir)
                    merged += 1
        for prov in sorted(tmp.glob("*/*/*/provenance.json")):
            rel = prov.parent.relative_to(tmp)
            target = results_dir / rel
            if target.exists():
                kept.append(str(rel))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(prov.parent, target)
            added.append(str(rel))
    check = files_at / "gpu_check.json"
    if check.is_file():
        (results_dir / TIMINGS).mkdir(parents=True, exist_ok=True)
        shutil.copy2(check, results_dir / TIMINGS / "gpu_check.json")
    return {"records_added": added, "records_kept": kept, "timing_entries": merged,
            "gpu_check": check.is_file()}


# ------------------------------------------------------------------------------------------------ command line
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hyperbook.device_session", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: fill .devcarry/ and print the device command")
    p.add_argument("--mirror", type=Path, default=os.environ.get("HYPERBOOK_DATA_MIRROR"),
                   help="folder of the mirror archives (default: $HYPERBOOK_DATA_MIRROR)")
    p.add_argument("--no-cifar", action="store_true", help="carry MNIST only (CIFAR units are then not timed)")
    p.add_argument("--allow-dirty", action="store_true")
    r = sub.add_parser("run", help="there: the whole GPU session in one budget")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--carry", type=Path, default=Path(CARRY))
    r.add_argument("--budget-s", type=float, default=480.0)
    r.add_argument("--device", default="cuda")
    r.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from {', '.join(PHASES)}")
    r.add_argument("--units", nargs="*", default=None, help="units or chapters (default: all)")
    r.add_argument("--steps", type=int, default=20)
    r.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    u = sub.add_parser("unpack", help="here: merge what the device returned into results/")
    u.add_argument("files_at", type=Path)
    u.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pack":
            done = pack(REPO_ROOT / CARRY, REPO_ROOT / "data", args.mirror, cifar=not args.no_cifar,
                        allow_dirty=args.allow_dirty)
            print(f"{CARRY}/: {', '.join(done['contents'])} ({done['carry_mb']} MiB; {done['total_mb']} MiB with "
                  f"the tracked tree), commit {done['commit'][:12]}\n"
                  f"device tool: run with carry [\"{CARRY}\"], timeout_s 570, command:\n{done['command']}")
        elif args.cmd == "run":
            if args.device.startswith("cuda"):
                import torch
                if not torch.cuda.is_available():
                    from .errors import NoGPUError
                    raise NoGPUError(args.device)
            run_session(args.out, args.carry, args.budget_s, args.device, tuple(args.phases.split(",")),
                        args.units, args.steps, results_dir=args.results_dir)
        else:
            done = unpack(args.files_at, args.results_dir)
            print(f"records added: {len(done['records_added'])} ({', '.join(done['records_added']) or 'none'}); "
                  f"kept (already here): {len(done['records_kept'])}; step-time entries merged: "
                  f"{done['timing_entries']}; gpu_check.json: {'copied' if done['gpu_check'] else 'absent'}")
    except BookError as err:
        sys.exit(f"device_session {args.cmd}: {err}")


if __name__ == "__main__":
    main()
