"""`hyperbook sweep` on submitit: debug (in-process) and local (a real subprocess) executors, idempotence,
resume, the checkpoint hook and seeds."""
import pickle

import submitit

from hyperbook import cli
from hyperbook.results import config_hash
from hyperbook.sweep import JobSpec, UnitJob, make_specs, parse_seeds, shard, submit, wait
from hyperbook.units import get_unit

TWO = ["hcnn/speed", "hecnn/benchmark"]      # the two cheapest smoke units (about 0.2 s and 0.5 s)


def _specs(tmp_path, keys=TWO, seeds=(0,)):
    units = [get_unit(k) for k in keys]
    return make_specs(units, "smoke", seeds, "cpu", tmp_path, overrides_for=lambda u: u.smoke_overrides,
                      log=lambda s: None)


def _record_dir(tmp_path, key):
    u = get_unit(key)
    return tmp_path / u.chapter / u.name / f"smoke-{config_hash(u.config('smoke', u.smoke_overrides))}"


def test_debug_executor_records_two_units_then_skips_them(tmp_path):
    specs = _specs(tmp_path)
    out = wait(submit(specs, "debug", tmp_path / "logs"), log=lambda s: None)
    assert [r["status"] for r in out] == ["trained", "trained"]
    for key in TWO:
        assert (_record_dir(tmp_path, key) / "provenance.json").exists()
    out = wait(submit(specs, "debug", tmp_path / "logs"), log=lambda s: None)
    assert [r["status"] for r in out] == ["recorded", "recorded"]


def test_resume_only_the_missing_record_trains(tmp_path):
    import shutil
    specs = _specs(tmp_path)
    wait(submit(specs, "debug", tmp_path / "logs"), log=lambda s: None)
    shutil.rmtree(_record_dir(tmp_path, TWO[1]))
    out = wait(submit(specs, "debug", tmp_path / "logs"), log=lambda s: None)
    assert {r["unit"]: r["status"] for r in out} == {TWO[0]: "recorded", TWO[1]: "trained"}


def test_local_executor_runs_a_real_subprocess(tmp_path):
    specs = _specs(tmp_path, keys=TWO[:1])
    pickle.dumps(UnitJob(specs))
    jobs = submit(specs, "local", tmp_path / "logs", timeout_min=5, gpus=0)
    assert len(jobs) == 1 and isinstance(jobs[0], submitit.local.local.LocalJob)
    out = wait(jobs, log=lambda s: None)
    assert out[0]["status"] == "trained" and (_record_dir(tmp_path, TWO[0]) / "provenance.json").exists()


def test_checkpoint_requeues_the_same_units():
    spec = JobSpec("hcnn/speed", "smoke", "cpu", 0, (), "/tmp/x")
    job = UnitJob([spec])
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, UnitJob) and delayed.function.specs == (spec,)
    assert delayed.function is not job


def test_seeds_go_into_the_config_where_it_has_one(tmp_path):
    logs = []
    units = [get_unit("hecnn/t1_cnn_mnist"), get_unit("hcnn/speed")]
    specs = make_specs(units, "smoke", parse_seeds("0,1,2"), "cpu", tmp_path, log=logs.append)
    assert [(s.key, s.seed) for s in specs] == [("hecnn/t1_cnn_mnist", 0), ("hecnn/t1_cnn_mnist", 1),
                                                 ("hecnn/t1_cnn_mnist", 2), ("hcnn/speed", 0)]
    hashes = {config_hash(units[0].config("smoke", dict(s.overrides))) for s in specs[:3]}
    assert len(hashes) == 3
    assert config_hash(units[0].config("smoke", dict(specs[0].overrides))) == config_hash(units[0].config("smoke"))
    assert any("no seed" in line for line in logs)


def test_shards_one_per_gpu():
    assert shard(list(range(5)), 2) == [[0, 2, 4], [1, 3]]
    assert shard([1], 0) == [[1]] and shard([1], 4) == [[1]]


def test_sweep_cli_rejects_bad_seeds_and_executor(tmp_path, capsys):
    assert cli.main(["sweep", "hcnn/speed", "--profile", "smoke", "--executor", "debug", "--seeds", "a,b",
                     "--results-dir", str(tmp_path)]) == 2
    assert "comma-separated" in capsys.readouterr().err
