"""The prepared GPU session (hyperbook.device_session): pack here, run there (exercised on the CPU), unpack here."""
import io
import os
import json
import subprocess
import tarfile
import tempfile

import pytest

from hyperbook import device_session as ds
from hyperbook import results
from hyperbook.data.mirror import MirrorChecksumError, sha256sum
from hyperbook.errors import BookError
from hyperbook.units import CostModel, get_unit


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A committed repo, a data folder with (fake) MNIST IDX files and a mirror with a listed CIFAR archive."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):     # git here acts on tmp_path's repo alone
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "src" / "pkg" / "mod.py").write_text("y = 2\n")
    (repo / ".gitignore").write_text("/.devcarry/\n")                  # as the project's own
    _git(repo, "init", "-q")
    _git(repo, "add", "code.py", "src", ".gitignore")
    _git(repo, "commit", "-q", "-m", "c")
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"idx")
        (raw / f"{name}.md5ok").write_text("ok")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        blob = b"jpeg"
        info = tarfile.TarInfo("cifar10-jpeg/train/0.jpg")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    (mirror / "SHA256SUMS").write_text(f"{sha256sum(mirror / 'cifar10-jpeg.tar.gz')}  cifar10-jpeg.tar.gz\n")
    return repo, tmp_path / "data", mirror


def test_pack_carries_data_commit_and_a_command_that_fits(tree):
    repo, data, mirror = tree
    carry = repo / ".devcarry"
    done = ds.pack(carry, data, mirror, wheels=(), repo=repo)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert done["commit"] == head and (carry / "COMMIT").read_text().strip() == head
    with tarfile.open(carry / "mnist.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(f"MNIST/raw/{n}" for n in (
            "train-images-idx3-ubyte", "train-images-idx3-ubyte.md5ok", "t10k-labels-idx1-ubyte",
            "t10k-labels-idx1-ubyte.md5ok"))
    # the mirror's own listed sum travels (the device verifies against it), not one computed from the copy
    assert (carry / "mirror" / "SHA256SUMS").read_text().split()[0] == (mirror / "SHA256SUMS").read_text().split()[0]
    assert len(done["command"]) <= ds.COMMAND_LIMIT and "--carry .devcarry" in done["command"]
    assert "pip install" not in done["command"]          # no wheels packed: no install step
    manifest = json.loads((carry / "MANIFEST.json").read_text())
    assert list(manifest) == ["src/pkg/mod.py"]
    assert ds.source_drift(manifest, repo) == []
    (repo / "src" / "pkg" / "mod.py").write_text("y = 3\n")
    (repo / "src" / "pkg" / "new.py").write_text("")
    assert ds.source_drift(manifest, repo) == ["src/pkg/mod.py", "src/pkg/new.py"]


def test_blob_ids_are_gits(tmp_path):
    (tmp_path / "f").write_bytes(b"hello\n")
    git = subprocess.run(["git", "hash-object", str(tmp_path / "f")], capture_output=True, text=True).stdout.strip()
    assert ds.blob_sha1(b"hello\n") == git


def test_pack_refuses_a_dirty_tree_a_corrupt_archive_and_an_oversize_carry(tree):
    repo, data, mirror = tree
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(BookError, match="commit them first"):
        ds.pack(repo / ".devcarry", data, mirror, wheels=(), repo=repo)
    _git(repo, "commit", "-qam", "d")
    (repo / "stray.py").write_text("")                   # untracked files travel too
    with pytest.raises(BookError, match="untracked"):
        ds.pack(repo / ".devcarry", data, mirror, wheels=(), repo=repo)
    (repo / "stray.py").unlink()
    with pytest.raises(BookError, match="over the"):
        ds.pack(repo / ".devcarry", data, mirror, wheels=(), repo=repo, base_mb=ds.CARRY_LIMIT_MB)
    with open(mirror / "cifar10-jpeg.tar.gz", "ab") as f:
        f.write(b"corrupt")
    with pytest.raises(MirrorChecksumError):
        ds.pack(repo / ".devcarry", data, mirror, wheels=(), repo=repo)
    assert ds.pack(repo / ".devcarry", data, None, wheels=(), cifar=False, repo=repo)["contents"] == ["mnist.tar.gz"]


def test_the_data_phase_unpacks_what_pack_carried(tree, tmp_path):
    repo, data, _ = tree
    ds.pack(repo / ".devcarry", data, None, wheels=(), cifar=False, repo=repo)
    there = tmp_path / "there"
    session = ds.run_session(tmp_path / "out", repo / ".devcarry", 60.0, device="cpu", phases=("data",),
                             data_dir=there, results_dir=tmp_path / "results")
    assert session["phases"]["data"]["outcome"] == {"mnist": "unpacked"}
    # this checkout's src/ is not the little repo's: the session names the packed commit, marked dirty
    assert session["commit"] == (repo / ".devcarry" / "COMMIT").read_text().strip() + "+dirty"
    assert results.GIT_COMMIT_ENV not in os.environ      # restored after the session
    assert (there / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes() == b"idx"


def test_records_made_on_the_device_name_the_packed_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))   # no .git at or above tmp_path
    monkeypatch.delenv(results.GIT_COMMIT_ENV, raising=False)
    assert results._git_commit() == "unknown"
    monkeypatch.setenv(results.GIT_COMMIT_ENV, "abc123")
    assert results._git_commit() == "abc123"
    monkeypatch.setattr(results, "REPO_ROOT", ds.REPO_ROOT)   # in a git checkout the packed commit still wins
    assert results._git_commit() == "abc123"


def test_session_times_within_its_limits_and_unpacks_here(tmp_path, mnist_dir):
    """The device side run on the CPU: one unit timed, one cut by its wall limit, the campaign skipped for want
    of budget; what it packs merges into another results folder and feeds the cost model."""
    out, res = tmp_path / "out", tmp_path / "results"
    session = ds.run_session(out, tmp_path / "no-carry", budget_s=240.0, device="cpu", phases=("time",),
                             units=["hecnn/t1_cnn_mnist"], steps=2, warmup=1, results_dir=res, data_dir=mnist_dir)
    ms = session["phases"]["time"]["units"]["hecnn/t1_cnn_mnist"]
    assert isinstance(ms, float) and ms > 0
    assert json.loads((out / "session.json").read_text())["phases"]["pack"]["files"] == 1

    cut = ds.run_session(tmp_path / "out2", tmp_path / "no-carry", budget_s=45.0, device="cpu", phases=("time",),
                         units=["hecnn/t1_cnn_mnist"], steps=2, warmup=1, unit_limit_s=0.01,
                         results_dir=tmp_path / "results2", data_dir=mnist_dir)
    assert "PhaseTimeout" in cut["phases"]["time"]["units"]["hecnn/t1_cnn_mnist"]

    (out / "gpu_check.json").write_text(json.dumps({"machine": "NVIDIA H200", "conv": []}))
    here = tmp_path / "here"
    done = ds.unpack(out, here)
    assert done["timing_entries"] == 1 and done["records_added"] == []
    assert done["gpu_check"] == str(here / "_gpu_check" / "nvidia-h200.json")
    unit = get_unit("hecnn/t1_cnn_mnist")
    est = CostModel("cpu", here).estimate(unit, "full")      # the kept check is no step-time table
    assert est.seconds == pytest.approx(ms * unit.steps(unit.config("full")) / 1000.0)


def test_unpack_adds_new_records_keeps_present_ones_and_refuses_escapes(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))     # where an escape would land
    (tmp_path / "scratch").mkdir()
    def archive(folder, members):
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / "results.tar.gz", "w:gz") as tar:
            for name, text in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text))
        return folder

    here = tmp_path / "results"
    (here / "hecnn" / "a" / "full-old").mkdir(parents=True)
    (here / "hecnn" / "a" / "full-old" / "provenance.json").write_text("mine")
    got = archive(tmp_path / "got", {"hecnn/a/full-old/provenance.json": b"theirs",
                                     "hecnn/a/full-new/provenance.json": b"{}", "hecnn/a/full-new/metrics.json": b"{}"})
    done = ds.unpack(got, here)
    assert done["records_added"] == ["hecnn/a/full-new"] and done["records_kept"] == ["hecnn/a/full-old"]
    assert (here / "hecnn" / "a" / "full-old" / "provenance.json").read_text() == "mine"
    assert (here / "hecnn" / "a" / "full-new" / "metrics.json").exists()
    with pytest.raises(BookError, match="outside results"):
        ds.unpack(archive(tmp_path / "evil", {"../escaped.txt": b"x"}), here)
    assert not (tmp_path / "scratch" / "escaped.txt").exists()
    with pytest.raises(BookError, match="no results.tar.gz"):
        ds.unpack(tmp_path / "nothing", here)


def test_unknown_phase_is_a_clear_error_and_a_short_budget_skips_the_campaign(tmp_path):
    with pytest.raises(BookError, match="unknown phase 'train'"):
        ds.run_session(tmp_path / "o", tmp_path, 10.0, device="cpu", phases=("train",))
    session = ds.run_session(tmp_path / "o", tmp_path, 40.0, device="cpu", phases=("campaign",),
                             results_dir=tmp_path / "results")
    assert session["phases"]["campaign"]["outcome"].startswith("skipped: ")
    assert session["phases"]["pack"]["files"] == 0
    with pytest.raises(BookError, match="nosuch"):                # before any work
        ds.run_session(tmp_path / "o", tmp_path, 40.0, device="cpu", units=["hecnn/nosuch"])


def test_the_campaign_phase_calls_the_real_campaign(tmp_path, mnist_dir):
    """The campaign's argv against the real parser: a unit with no estimate is skipped and the campaign exits 0."""
    session = ds.run_session(tmp_path / "o", tmp_path, 60.0, device="cpu", phases=("campaign",),
                             units=["hecnn/filters"], results_dir=tmp_path / "results", data_dir=mnist_dir)
    assert session["phases"]["campaign"]["outcome"] == "exit 0"
