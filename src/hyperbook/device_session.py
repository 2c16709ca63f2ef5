"""All the GPU work of a session as one prepared call of the device tool (a lent GPU, 15 minutes in all).

Here, on the build machine, from a clean commit:

    python -m hyperbook.device_session pack --mirror <mirror folder>   # -> .devcarry/ (git-ignored) + the command

There (the device tool's `run`, with `carry: [".devcarry"]`), the printed command installs the carried wheels and
calls `python3 -m hyperbook.device_session run --out $OUT` under `timeout`, which in one budget (default 420 s):
  1. unpacks the carried data (MNIST's IDX files; CIFAR-10 from the mirror archive, checked by its sha256);
  2. runs the per-sample convolution check (`hyperbook.gpu_check`) -> $OUT/gpu_check.json;
  3. times the `full` training step of the units that have a step field, MNIST-only and data-free units first,
     cheapest first, each under its own wall limit, for about half the time left -> the GPU's step-time table
     (the registry's GPU column). A unit whose data did not travel is timed on its labelled stand-in of the same
     shape where it has one and is reported as failed where not;
  4. spends what is left on a `full` campaign over the units whose data is there, on the new estimates (x a
     safety factor);
  5. packs every file it added or changed under results/ into $OUT/results.tar.gz, with $OUT/session.json (each
     phase: seconds, outcome, errors), also when a phase failed or the session was interrupted.

Here again, `python -m hyperbook.device_session unpack <files_at>` merges the returned records and step-time
table into results/ (a record already present is kept, never overwritten) and keeps the convolution check
under results/_gpu_check/; then `make status` and commit.

The device has its own torch (2.11 there, 2.14.1 here) and no git checkout: records there name the commit that
`pack` read (HYPERBOOK_GIT_COMMIT), with "+dirty" if any carried file of src/ differs from that commit's
(`pack` refuses a tree with uncommitted or untracked changes).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
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
from .units import TIMINGS_DIR, machine_slug

CARRY = ".devcarry"                  # git-ignored; named in the device tool's `carry`
CARRY_LIMIT_MB = 60.0                # the tool sends at most 64 MiB: the travelling tree and this folder together
COMMAND_LIMIT = 2000                 # characters of one device command
PHASES = ("data", "check", "time", "campaign")
WHEELS = ("e2cnn==0.2.3", "submitit==1.5.4")   # what the device image lacks (the device tool's package list)
GPU_CHECK_DIR = "_gpu_check"         # not under _timings/: every file there must be a step-time table
BUDGET_S = 420                       # with the machine's start and transfers, about 10 of the 15 minutes
TIMEOUT_GRACE_S = 40                 # `timeout` sends SIGINT this long after the budget; the session still packs


# ------------------------------------------------------------------------------------------------ here: pack
def _git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def travelling_mb(repo=REPO_ROOT) -> float:
    """MiB of what the device tool sends besides the carry: tracked and untracked-not-ignored files."""
    names = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = [Path(repo) / f for f in names.split("\0") if f]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def clean_commit(repo=REPO_ROOT, allow_dirty: bool = False) -> str:
    head = _git(repo, "rev-parse", "HEAD").strip()
    dirty = _git(repo, "status", "--porcelain").strip()      # untracked files travel too
    if dirty and not allow_dirty:
        raise BookError("the working tree has uncommitted or untracked changes (`git status`): commit them first, "
                        "so that the GPU's records name the code they ran (or pass --allow-dirty for a run whose "
                        "records you will not keep)")
    return head + ("+dirty" if dirty else "")


def blob_sha1(data: bytes) -> str:
    """git's object id of a file's bytes (`git hash-object`), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def source_manifest(repo=REPO_ROOT) -> dict:
    """{path: blob id} of the committed files under src/, read from git's index."""
    out = {}
    for line in _git(repo, "ls-files", "-s", "src").splitlines():
        meta, path = line.split("\t", 1)
        out[path] = meta.split()[1]
    return out


def source_drift(manifest: dict, root=REPO_ROOT) -> list[str]:
    """The files of src/ here that differ from, or are missing from, the packed commit's."""
    root = Path(root)
    drift = [p for p, blob in manifest.items()
             if not (root / p).is_file() or blob_sha1((root / p).read_bytes()) != blob]
    extra = [str(p.relative_to(root)) for p in (root / "src").rglob("*.py")
             if str(p.relative_to(root)) not in manifest]
    return sorted(drift + extra)


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
        shutil.copyfile(src, carry / "mirror" / src.name)
        (carry / "mirror" / SUMS).write_text(f"{digest}  {ARCHIVES['cifar10'].archive}\n")
        contents.append(f"mirror/{src.name}")
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(carry / "wheels"), *wheels],
                       check=True)
        contents += [f"wheels/{w.name}" for w in sorted((carry / "wheels").glob("*.whl"))]
    (carry / "COMMIT").write_text(commit + "\n")
    (carry / "MANIFEST.json").write_text(json.dumps(source_manifest(repo), indent=0, sort_keys=True))
    size = sum(f.stat().st_size for f in carry.rglob("*") if f.is_file()) / 2**20
    total = size + (travelling_mb(repo) if base_mb is None else base_mb)
    if total > CARRY_LIMIT_MB:
        raise BookError(f"{carry} ({size:.1f} MiB) and the travelling tree together are {total:.1f} MiB, over the "
                        f"{CARRY_LIMIT_MB:.0f} MiB this script allows the device tool (64 MiB at most): pack "
                        "with --no-cifar")
    return {"commit": commit, "contents": contents, "carry_mb": round(size, 1), "total_mb": round(total, 1),
            "command": device_command(carry.name, bool(wheels))}


def device_command(carry: str = CARRY, wheels: bool = True, budget_s: int = BUDGET_S) -> str:
    install = (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "
               f"/tmp/site {carry}/wheels/*.whl || exit 1; " if wheels else "")
    cmd = (f"{install}export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1; "
           f"timeout -s INT -k 15 {budget_s + TIMEOUT_GRACE_S} python3 -m hyperbook.device_session run --out \"$OUT\" "
           f"--carry {carry} --budget-s {budget_s} 2>&1 | tee \"$OUT/session.log\"")
    if len(cmd) > COMMAND_LIMIT:
        raise BookError(f"the device command is {len(cmd)} characters, over the tool's {COMMAND_LIMIT}")
    return cmd


def timeout_s(budget_s: int = BUDGET_S) -> int:
    """The device tool's timeout_s for that command: the session, `timeout`'s grace and kill, the install."""
    return budget_s + TIMEOUT_GRACE_S + 15 + 20


# ------------------------------------------------------------------------------------------------ there: run
class PhaseTimeout(BaseException):
    """A wall limit ran out. Not an Exception, so that no library's `except Exception` swallows it."""


@contextlib.contextmanager
def wall_limit(seconds: float):
    """Raise PhaseTimeout in this (main) thread after `seconds`, and again every second until the block ends (a
    first one that lands inside a finaliser is only printed). A running torch op finishes first."""
    def _raise(signum, frame):
        raise PhaseTimeout(f"over its {seconds:.0f} s limit")
    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds), 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _environ(**values: str):
    """os.environ updated inside (the campaign's train processes inherit it), as it was after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def unpack_data(carry: Path, data_dir: Path) -> dict:
    """MNIST's IDX files from the carried tarball; CIFAR-10 through the data layer's mirror path (sha256 first)."""
    from .data.mirror import ENV, SUMS
    data_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    with tarfile.open(carry / "mnist.tar.gz") as tar:
        tar.extractall(data_dir, filter="data")
    done["mnist"] = "unpacked"
    mirror = carry / "mirror"
    if (mirror / SUMS).is_file():          # straight to the mirror: the device has no internet
        from .data.cifar import load_cifar10_jpeg
        from .data.mirror import unpack as unpack_archive
        with _environ(**{ENV: str(mirror.resolve())}):
            unpack_archive("cifar10", data_dir)
        for train in (True, False):          # decoded into the cached tensors once, before any timing
            load_cifar10_jpeg(data_dir, train=train)
        done["cifar10"] = "from the mirror"
    return done


def _data_here(unit, data_dir: Path) -> bool:
    from .units import data_state
    return data_state(unit, "full", data_dir) in ("yes", "none needed")


def timing_order(units, data_dir: Path, results_dir: Path) -> list:
    """Units with a step field: MNIST-only or data-free first, then those whose data is here, then the rest;
    within each, cheapest on the CPU table first (so the most units get a GPU figure in the time given)."""
    from .units import load_timings
    cpu = {}
    for table in load_timings(results_dir):
        if table.get("device") == "cpu":
            for key, by_profile in table["units"].items():
                if "full" in by_profile:
                    cpu.setdefault(key, by_profile["full"]["ms_per_step"])

    def group(unit) -> int:
        if _data_here(unit, data_dir):
            return 0 if set(unit.datasets(unit.config("full"))) <= {"mnist"} else 1
        return 2
    timed = [u for u in units if u.step_field is not None]
    return sorted(timed, key=lambda u: (group(u), cpu.get(u.key, float("inf"))))


def _snapshot(results_dir: Path) -> dict:
    """(size, mtime) of every file under results_dir, checkpoints and temporaries left out."""
    out = {}
    for p in results_dir.rglob("*") if results_dir.is_dir() else ():
        rel = p.relative_to(results_dir)
        if p.is_file() and "_checkpoints" not in rel.parts and ".tmp-" not in p.name:
            st = p.stat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


def _pack_results(results_dir: Path, before: dict, archive: Path) -> int:
    """Every file added or changed since `before` into `archive` (written whole or not at all)."""
    changed = sorted(rel for rel, sig in _snapshot(results_dir).items() if before.get(rel) != sig)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for rel in changed:
            tar.add(results_dir / rel, arcname=rel)
    os.replace(tmp, archive)
    return len(changed)


def run_session(out: Path, carry: Path, budget_s: float, device: str = "cuda", phases=PHASES,
                units: list[str] | None = None, steps: int = 20, warmup: int = 5, unit_limit_s: float = 45.0,
                time_share: float = 0.5, safety: float = 1.5, results_dir: Path = DEFAULT_RESULTS_DIR,
                data_dir: Path | None = None, clock=time.monotonic) -> dict:
    """The device side: the phases in order, inside `budget_s`; every outcome in out/session.json."""
    from .units import select
    bad = [p for p in phases if p not in PHASES]
    if bad:
        raise BookError(f"unknown phase {bad[0]!r}: choose from {', '.join(PHASES)}")
    chosen = select(units)                  # an unknown unit name stops here, before any work
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else REPO_ROOT / "data"
    results_dir = Path(results_dir)
    commit = None
    if (carry / "COMMIT").is_file():      # no git checkout travels: provenance takes the commit `pack` read
        commit = (carry / "COMMIT").read_text().strip()
        manifest = carry / "MANIFEST.json"
        drift = source_drift(json.loads(manifest.read_text())) if manifest.is_file() else ["(no MANIFEST.json)"]
        if drift and not commit.endswith("+dirty"):
            print(f"src/ differs from the packed commit in {len(drift)} file(s) ({', '.join(drift[:5])}): records "
                  "are marked +dirty", flush=True)
            commit += "+dirty"
    env = {GIT_COMMIT_ENV: commit} if commit else {}
    with _environ(**env):
        return _run_phases(out, carry, budget_s, device, phases, chosen, units, steps, warmup, unit_limit_s,
                           time_share, safety, results_dir, data_dir, clock)


def _run_phases(out, carry, budget_s, device, phases, chosen, names, steps, warmup, unit_limit_s, time_share,
                safety, results_dir, data_dir, clock) -> dict:
    from .units import time_unit, write_timing
    before, t0 = _snapshot(results_dir), clock()
    left = lambda: budget_s - (clock() - t0)      # noqa: E731
    session = {"device": device, "budget_s": budget_s, "commit": os.environ.get(GIT_COMMIT_ENV), "phases": {}}

    def note(name: str, **fields):
        session["phases"][name] = fields
        write_text_atomic(out / "session.json", json.dumps(session, indent=1))
        print(f"[{clock() - t0:6.1f} s] {name}: " + ", ".join(f"{k}={v}" for k, v in fields.items()
                                                              if k != "units"), flush=True)

    def failed(err: BaseException) -> dict:
        return {"outcome": "failed", "error": repr(err)[:300]}

    try:
        if "data" in phases:
            t = clock()
            try:
                outcome = unpack_data(carry, data_dir)
                note("data", seconds=round(clock() - t, 1), outcome=outcome)
            except Exception as err:     # the phases after it still run on what is there
                note("data", seconds=round(clock() - t, 1), **failed(err))
        if "check" in phases:
            t = clock()
            try:
                import torch
                from . import gpu_check
                benchmark = torch.backends.cudnn.benchmark      # the check turns it on; training leaves it off
                try:
                    with wall_limit(min(150.0, max(1.0, left() * 0.3))):
                        report = gpu_check.check(device)
                finally:
                    torch.backends.cudnn.benchmark = benchmark
                write_text_atomic(out / "gpu_check.json", json.dumps(report, indent=1))
                note("check", seconds=round(clock() - t, 1), outcome="done", goals_met=report["goals_met"])
            except (Exception, PhaseTimeout) as err:
                note("check", seconds=round(clock() - t, 1), **failed(err))
        if "time" in phases:
            t = clock()
            deadline = t + max(0.0, left()) * time_share
            timed: dict = {}
            try:
                order = timing_order(chosen, data_dir, results_dir)
            except Exception as err:
                order = []
                note("time", seconds=0.0, **failed(err))
            for unit in order:
                room = deadline - clock()
                if room < 5.0:
                    timed[unit.key] = "not reached"
                    continue
                try:
                    with wall_limit(min(unit_limit_s, room)):
                        entry = time_unit(unit, "full", steps, device, data_dir, warmup=warmup)
                    write_timing(entry, results_dir)
                    timed[unit.key] = entry["ms_per_step"]
                except (Exception, PhaseTimeout) as err:
                    timed[unit.key] = f"failed: {err!r}"[:300]
                note("time", seconds=round(clock() - t, 1), timed=sum(isinstance(v, float) for v in timed.values()),
                     last=f"{unit.key}: {timed[unit.key]}", units=timed)
        if "campaign" in phases:
            t = clock()
            budget = left() - 20.0                     # room to pack what it recorded
            ready = [u.key for u in chosen if _data_here(u, data_dir)]    # a full run refuses stand-ins
            if budget < 30.0 or not ready:
                note("campaign", seconds=0.0, outcome=f"skipped: {max(budget, 0):.0f} s left, {len(ready)} units "
                     "with their data")
            else:
                from .cli import main as cli_main
                from .results import _device_name
                if device.startswith("cuda"):          # the parent's cached blocks, for the train processes
                    import torch
                    gc.collect()
                    torch.cuda.empty_cache()
                argv = ["campaign", "--profile", "full", "--device", device, "--budget", f"{int(budget)}s",
                        "--order", "cheapest", "--safety", str(safety), "--allow-busy",
                        "--machine", _device_name(device), "--results-dir", str(results_dir),
                        "--data-dir", str(data_dir), *ready]
                try:
                    rc = cli_main(argv)
                    note("campaign", seconds=round(clock() - t, 1), outcome=f"exit {rc}")
                except Exception as err:
                    note("campaign", seconds=round(clock() - t, 1), **failed(err))
    except (KeyboardInterrupt, PhaseTimeout) as err:       # `timeout` sent SIGINT: pack what there is
        session["interrupted"] = repr(err)
    finally:
        files = _pack_results(results_dir, before, out / "results.tar.gz")
        note("pack", seconds=round(clock() - t0, 1), files=files)
    return session


# ------------------------------------------------------------------------------------------------ here: unpack
def unpack(files_at: Path, results_dir: Path = DEFAULT_RESULTS_DIR) -> dict:
    """Merge what a device session returned: new record folders are added (present ones kept), step-time tables
    merged entry by entry, the convolution check kept as results/_gpu_check/<machine>.json."""
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
        for table_path in sorted((tmp / TIMINGS_DIR).glob("*.json")):
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
    check, kept_check = files_at / "gpu_check.json", None
    if check.is_file():
        report = json.loads(check.read_text())
        kept_check = results_dir / GPU_CHECK_DIR / f"{machine_slug(report['machine'])}.json"
        kept_check.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(kept_check, json.dumps(report, indent=1))
    return {"records_added": added, "records_kept": kept, "timing_entries": merged,
            "gpu_check": str(kept_check) if kept_check else None}


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
    r.add_argument("--budget-s", type=float, default=float(BUDGET_S))
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
                  f"device tool: run with carry [\"{CARRY}\"], timeout_s {timeout_s()}, command:\n{done['command']}")
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
                  f"{done['timing_entries']}; convolution check: {done['gpu_check'] or 'absent'}")
    except BookError as err:
        sys.exit(f"device_session {args.cmd}: {err}")


if __name__ == "__main__":
    main()
