"""The registry of experiments, `hyperbook plan` and `hyperbook train`'s validation."""
import json

import pytest

from hyperbook import cli
from hyperbook.chapters import CHAPTERS
from hyperbook.results import config_hash
from hyperbook.units import (CostModel, Unit, all_units, format_plan, get_unit, plan_rows, select, time_unit,
                             write_timing)

FAST = "hcnn/speed"


def test_every_chapter_has_units_with_unique_keys():
    units = all_units()
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    assert {u.chapter for u in units} == set(CHAPTERS)
    assert {"hecnn/t1_cnn_mnist", "hecnn/filters", "hecnn/benchmark", "hcnn/translation",
            "thesis_irevnet/memory", "thesis_steerable/bsds"} <= set(keys)


def test_unit_config_is_the_chapters_config():
    """The hash a unit records under is the chapter's (same config_for)."""
    from hyperbook.experiments import hcnn
    u = get_unit("hcnn/cifar10_hcnn")
    assert config_hash(u.config("reduced")) == config_hash(hcnn.train_config_for("cifar10_hcnn")("reduced"))
    assert u.steps(u.config("reduced")) == hcnn.train_config_for("cifar10_hcnn")("reduced").steps


def test_nested_step_and_seed_fields():
    u = get_unit("hcnn/translation")
    assert u.step_field == "train.steps" and u.seed_field == "train.seed"
    assert u.config("smoke", {"train.steps": 7}).train.steps == 7
    assert get_unit("hcnn/speed").seed_field is None


def test_select_chapter_and_errors():
    assert [u.chapter for u in select(["hcnn"])] == ["hcnn"] * len(select(["hcnn"]))
    with pytest.raises(ValueError, match="valid chapters"):
        select(["nochapter"])
    with pytest.raises(ValueError, match="valid hcnn experiments"):
        get_unit("hcnn/nope")


def _prov(unit, profile, config, wall, device="CPU (x86_64, 2 cores)"):
    return {"profile": profile, "config_hash": config_hash(config), "device": device, "wall_time_s": wall,
            "date": "2026-11-23", "config": json.loads(json.dumps(__import__("dataclasses").asdict(config)))}


def test_cost_model_exact_record_timing_table_and_scaled_older_record(tmp_path):
    u = get_unit("hcnn/cifar10_hcnn")
    cfg = u.config("reduced")
    steps = u.steps(cfg)
    records = {("hcnn", "cifar10_hcnn"): [_prov(u, "reduced", cfg, 123.0)]}
    cm = CostModel("cpu", tmp_path, records=records, timings=[])
    est = cm.estimate(u, "reduced")
    assert est.seconds == 123.0 and est.recorded
    assert CostModel("cuda", tmp_path, records=records, timings=[]).estimate(u, "reduced").seconds is None
    older = u.config("reduced", {"steps": steps // 2, "lr": 0.01})          # another hash, half the steps
    cm = CostModel("cpu", tmp_path, records={("hcnn", "cifar10_hcnn"): [_prov(u, "reduced", older, 50.0)]},
                   timings=[])
    est = cm.estimate(u, "reduced")
    assert not est.recorded and est.seconds == pytest.approx(100.0) and "scaled" in est.source
    table = {"machine": "NVIDIA H200", "device": "cuda", "path": "x/nvidia-h200.json",
             "units": {"hcnn/cifar10_hcnn": {"full": {"ms_per_step": 10.0, "date": "2026-11-24"}}}}
    est = CostModel("cuda", tmp_path, records={}, timings=[table]).estimate(u, "full")
    assert est.seconds == pytest.approx(10.0 * u.steps(u.config("full")) / 1000)


def test_plan_output(tmp_path, capsys):
    u = get_unit("hcnn/cifar10_hcnn")
    records = {("hcnn", "cifar10_hcnn"): [_prov(u, "reduced", u.config("reduced"), 3600.0)]}
    cm = CostModel("cpu", tmp_path, records=records, timings=[])
    text = format_plan(plan_rows(select(["hcnn"]), "reduced", cm, tmp_path), "reduced", "cpu")
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("hcnn/")}
    assert "1.00" in lines["hcnn/cifar10_hcnn"] and " yes " in lines["hcnn/cifar10_hcnn"]
    assert "not timed" in lines["hcnn/cifar10_hcnn_plus"]
    assert "stand-in (cifar10 absent)" in lines["hcnn/cifar10_hcnn_plus"]     # empty data dir
    assert "none needed" in lines["hcnn/speed"]
    assert "1 recorded" in text and "not included" in text
    assert cli.main(["plan", "hcnn/speed", "--profile", "full", "--device", "cuda",
                     "--results-dir", str(tmp_path)]) == 0
    assert "hcnn/speed" in capsys.readouterr().out


def test_plan_readme_needs_no_profile_and_a_plain_plan_names_the_missing_one(tmp_path, capsys):
    assert cli.main(["plan", "--readme", "--results-dir", str(tmp_path)]) == 0
    assert cli.main(["plan", "--results-dir", str(tmp_path)]) == 2
    assert "plan needs --profile smoke, reduced or full" in capsys.readouterr().err


def test_write_timing_is_read_by_plan(tmp_path):
    u = get_unit("hcnn/cifar10_hcnn")
    entry = {"unit": u.key, "profile": "full", "ms_per_step": 20.0, "steps": [5, 10], "config_hash": "x",
             "machine": "NVIDIA H200", "device": "cuda", "torch": "t", "threads": 16, "date": "2026-11-24T00:00"}
    path = write_timing(entry, tmp_path)
    assert path.name == "nvidia-h200.json"
    est = CostModel("cuda", tmp_path).estimate(u, "full")
    assert est.seconds == pytest.approx(20.0 * u.steps(u.config("full")) / 1000)


@pytest.mark.parametrize("argv, message", [
    (["train", "nochapter", "--profile", "smoke"], "valid chapters"),
    (["train", "hcnn/nope", "--profile", "smoke"], "valid hcnn experiments"),
    (["train", "hcnn/speed", "--profile", "book"], "valid training profiles"),
    (["train", "hcnn/speed", "--profile", "smoke", "--device", "tpu"], "valid devices"),
    (["train", "hcnn/speed", "--profile", "smoke", "--seed", "3"], "no seed in their config"),
    (["train", "hcnn/speed", "--profile", "smoke", "-p", "bogus=1"], "bogus"),
])
def test_train_validation(argv, message, capsys, tmp_path):
    assert cli.main(argv + ["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_train_cuda_without_gpu_is_an_error(capsys, tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["train", FAST, "--profile", "smoke", "--device", "cuda", "--results-dir", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_train_records_like_the_chapter(tmp_path, capsys):
    u = get_unit(FAST)
    params = [f"-p{k}={v!r}" for k, v in u.smoke_overrides.items()]
    assert cli.main(["train", FAST, "--profile", "smoke", "--device", "cpu", "--results-dir", str(tmp_path)]
                    + params) == 0
    config = u.config("smoke", u.smoke_overrides)
    folder = tmp_path / "hcnn" / "speed" / f"smoke-{config_hash(config)}"
    assert (folder / "provenance.json").exists()
    assert json.loads((folder / "provenance.json").read_text())["config_hash"] == config_hash(config)


def test_time_rejects_units_without_a_step_field():
    with pytest.raises(Exception, match="no step field"):
        time_unit(get_unit(FAST), "smoke", 2)


def _fake_loops(durations_per_loop, extra=()):
    """A Unit.run stand-in that 'trains' by appending clocked loops to the active step_times() log."""
    from hyperbook import train

    def run(self, ctx, overrides=None):
        run.calls.append((ctx.timing, overrides))
        for d in durations_per_loop:
            train._STEP_LOG.append(("model", list(d)))
    run.calls = []
    return run


def test_time_takes_the_median_after_the_warm_up_averaged_over_loops(monkeypatch, tmp_path):
    """Warm-up steps (slow first steps) never enter the figure; the median ignores one stall; two models of a
    unit count equally. The old two-run difference once wrote -668 ms/step; a median cannot be negative."""
    u = get_unit("hecnn/t1_cnn_mnist")
    run = _fake_loops([[9.0, 5.0, 0.010, 0.012, 0.011, 3.0, 0.011], [1.0, 1.0, 0.020, 0.021, 0.019, 0.02, 0.02]])
    monkeypatch.setattr(Unit, "run", run)
    entry = time_unit(u, "full", 5, scratch=tmp_path, data_dir=tmp_path, warmup=2)
    assert run.calls[0][1]["steps"] == 7 and run.calls[0][1]["n_test"] == 500 and run.calls[0][0] is True
    assert entry["loop_ms"] == [11.0, 20.0] and entry["ms_per_step"] == pytest.approx(15.5)
    assert entry["steps"] == [2, 5] and entry["loops"] == 2


def test_step_clock_times_real_fit_loops_and_skips_uncounted_ones():
    import torch

    from hyperbook.train import _STEP_LOG, fit, step_times
    model = torch.nn.Linear(3, 1)

    def batch_fn(step):
        return torch.ones(4, 3), torch.zeros(4, 1)

    def loss_fn(m, b):
        return (m(b[0]) - b[1]).pow(2).mean()
    with step_times() as loops:
        fit(model, loss_fn, batch_fn, steps=6, progress=False, desc="main")
        fit(model, loss_fn, batch_fn, steps=4, progress=False, desc="aux", counted=False)
    assert [(d, len(t)) for d, t in loops] == [("main", 6)] and all(x > 0 for x in loops[0][1])
    from hyperbook import train
    assert train._STEP_LOG is None and _STEP_LOG is None          # outside step_times nothing is collected
    fit(model, loss_fn, batch_fn, steps=2, progress=False)


def test_time_refuses_a_run_whose_loops_end_in_the_warm_up(monkeypatch, tmp_path):
    monkeypatch.setattr(Unit, "run", _fake_loops([[1.0, 1.0]]))
    with pytest.raises(Exception, match="no training loop ran more than 2 steps"):
        time_unit(get_unit("hecnn/t1_cnn_mnist"), "full", 1, scratch=tmp_path, data_dir=tmp_path)


def test_unit_run_checks_chapter(tmp_path):
    from hyperbook.context import RunContext
    ctx = RunContext.from_params("hecnn", "smoke", "cpu", None, tmp_path)
    with pytest.raises(Exception, match="context of chapter"):
        get_unit(FAST).run(ctx)
    assert isinstance(get_unit(FAST), Unit)


FIXED_COST_FIELDS = {"n_test", "test_n", "train.test_n", "test_per_digit", "classifier_steps", "bank_n", "n_queries",
                     "n_noise", "n_recon", "probe_train", "probe_test", "interp_pairs", "test_limit", "test_max_side",
                     "n_panel", "runs", "seeds", "jacobian_images"}


def test_timing_overrides_touch_only_the_fixed_cost():
    """`hyperbook time` shrinks evaluation and identical repeats, never what a training step does (batch, width,
    model), so its ms/step is that of the full config. A new override must be argued for and added here."""
    for u in all_units():
        assert set(u.timing_overrides) <= FIXED_COST_FIELDS, (u.key, u.timing_overrides)
        assert u.step_field not in u.timing_overrides
        if u.step_field:
            u.config("full", {**u.timing_overrides, **u.standin_overrides})     # valid field names


def test_time_uses_fixed_cost_overrides_and_a_same_shape_standin(monkeypatch, tmp_path):
    """STL-10 is missing (empty data dir): the scratch runs use the stand-in and a 256-image test set, say so in
    the entry, and run in a timing context."""
    u = get_unit("hecnn/t4_wrn16_8_cnn")
    run = _fake_loops([[1.0, 2.5, 2.0]])
    monkeypatch.setattr(Unit, "run", run)
    entry = time_unit(u, "full", 2, data_dir=tmp_path, scratch=tmp_path, warmup=1)
    [(timing, overrides)] = run.calls
    assert timing and overrides == {"n_test": 256, "allow_standin": True, "steps": 3}
    assert entry["data"].startswith("stand-in of the same shape (stl10")
    assert entry["timing_overrides"] == {"n_test": 256, "allow_standin": True}
    assert entry["ms_per_step"] == pytest.approx(2250.0)
    path = write_timing(entry, tmp_path)
    est = CostModel("cpu", tmp_path, records={}).estimate(u, "full")
    assert "stand-in of the same shape" in est.source and json.loads(path.read_text())["units"][u.key]["full"]["data"]


def test_time_names_a_unit_without_a_same_shape_standin(monkeypatch, tmp_path, capsys):
    """CelebA faces have no stand-in of their shape: `hyperbook time` says so and goes on with the other units."""
    from hyperbook.errors import DatasetMissingError
    from hyperbook.units import UntimeableError

    def missing(self, ctx, overrides=None):
        raise DatasetMissingError("celeba", tmp_path / "celeba", "put CelebA there")
    monkeypatch.setattr(Unit, "run", missing)
    from hyperbook import cpu_load
    monkeypatch.setattr(cpu_load, "busy_elsewhere", lambda interval=1.0: 0.0)   # whatever else the machine runs
    with pytest.raises(UntimeableError, match="no stand-in of the same shape"):
        time_unit(get_unit("functional_images/faces"), "full", 2, data_dir=tmp_path, scratch=tmp_path)
    assert cli.main(["time", "functional_images/faces", "--profile", "full", "--steps", "2", "--data-dir",
                     str(tmp_path), "--results-dir", str(tmp_path)]) == 0
    assert "skip functional_images/faces cannot be timed" in capsys.readouterr().out


def test_chapter_costs_reads_the_step_time_table(tmp_path):
    """The chapters' cost table is the CostModel's estimate: ms/step from the committed table x the unit's steps."""
    from hyperbook.units import chapter_costs
    u = get_unit("hcnn/cifar10_hcnn")
    write_timing({"unit": u.key, "profile": "full", "ms_per_step": 1500.0, "steps": [1, 2], "config_hash": "x",
                  "machine": "CPU (x86_64, 2 cores)", "device": "cpu", "torch": "t", "threads": 2,
                  "date": "2026-12-02T00:00"}, tmp_path)
    table = chapter_costs("hcnn", "full", tmp_path, tmp_path)
    rows = table.frame.set_index("experiment")
    assert rows.loc["cifar10_hcnn", "CPU hours"] == f"{1.5 * u.steps(u.config('full')) / 3600:.2f}"
    assert rows.loc["cifar10_hcnn_plus", "CPU hours"] == "not timed"
    assert rows.loc["cifar10_hcnn", "GPU hours"] == "not timed"
    assert "7 units not timed on a CPU" in table.caption and "step-time table cpu-x86-64-2-cores.json" in table.caption


def test_busy_elsewhere_sees_another_process_and_not_its_own_work():
    """The reading behind `hyperbook time`'s refusal: a spinning child shows as about a core, this process's
    own spinning does not count."""
    import subprocess
    import sys
    from hyperbook.cpu_load import busy_elsewhere
    if busy_elsewhere(0.05) is None:
        pytest.skip("no /proc here")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time as _t
        _t.sleep(0.3)
        assert busy_elsewhere(0.5) > 0.6
    finally:
        spinner.kill()
        spinner.wait()


def test_other_load_subtracts_this_process_own_work(monkeypatch):
    """Scripted CPU counters (the suite runs on xdist workers, so the machine's real load is not idle here):
    3 busy seconds in 2 s, 1 of them this process's own -> 1 core kept busy by others."""
    import types
    from hyperbook import cpu_load
    busy, own, clock = iter([10.0, 13.0]), iter([4.0, 5.0]), iter([100.0, 102.0])
    monkeypatch.setattr(cpu_load, "_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(cpu_load, "_own_seconds", lambda me: next(own))
    monkeypatch.setattr(cpu_load, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))   # this module's only
    with cpu_load.OtherLoad() as load:
        pass
    assert load.cores == pytest.approx(1.0)


def test_other_load_counts_a_job_that_starts_during_the_block():
    """`time_unit` wraps its steps in OtherLoad: the check before a timing misses a job started during it. Other
    load on the machine can only raise the reading, so the bound holds beside other tests too."""
    import subprocess
    import sys
    import time as _t
    from hyperbook.cpu_load import OtherLoad
    with OtherLoad() as other:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            _t.sleep(0.8)
        finally:
            spinner.kill()
            spinner.wait()
    if other.cores is None:
        pytest.skip("no CPU times here")
    assert other.cores > 0.5


def test_time_writes_no_entry_measured_beside_other_work(monkeypatch, tmp_path, capsys):
    """Idle at the start, busy during: the entry is not written (unless --allow-busy), and the reason is printed."""
    from hyperbook import cpu_load, units
    monkeypatch.setattr(cpu_load, "busy_elsewhere", lambda interval=1.0: 0.0)
    fake = {"unit": "hecnn/t1_cnn_mnist", "profile": "smoke", "ms_per_step": 9.0, "steps": [2, 1], "loops": 1,
            "config_hash": "x", "machine": "CPU (x86_64, 2 cores)", "device": "cpu", "torch": "t", "threads": 2,
            "date": "2026-12-04T00:00", "wall_s": 0.0, "data": "yes", "busy_during_cores": 0.9}
    monkeypatch.setattr(units, "time_unit", lambda *a, **k: dict(fake))
    argv = ["time", "hecnn/t1_cnn_mnist", "--profile", "smoke", "--steps", "1", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert "0.90 CPU cores busy during its timing" in capsys.readouterr().out
    assert not list(tmp_path.glob("_timings/*.json"))
    assert cli.main(argv + ["--allow-busy"]) == 0
    table = json.loads(next((tmp_path / "_timings").glob("*.json")).read_text())
    assert table["units"]["hecnn/t1_cnn_mnist"]["smoke"]["busy_during_cores"] == 0.9


def test_time_refuses_a_busy_machine_and_records_the_reading(monkeypatch, tmp_path, capsys):
    """A step time measured beside another job is inflated (2-4x on 2026-12-02's table): `hyperbook time`
    stops with a clear error unless --allow-busy, and every entry carries the reading it was made under."""
    from hyperbook import cpu_load, units
    monkeypatch.setattr(cpu_load, "busy_elsewhere", lambda interval=1.0: 1.3)
    argv = ["time", "hecnn/t1_cnn_mnist", "--profile", "smoke", "--steps", "1", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "1.30 CPU cores busy" in capsys.readouterr().err
    fake = {"unit": "hecnn/t1_cnn_mnist", "profile": "smoke", "ms_per_step": 1.0, "steps": [2, 1], "loops": 1,
            "config_hash": "x", "machine": "CPU (x86_64, 2 cores)", "device": "cpu", "torch": "t", "threads": 2,
            "date": "2026-12-03T00:00", "wall_s": 0.0, "data": "yes"}
    monkeypatch.setattr(units, "time_unit", lambda *a, **k: dict(fake))
    assert cli.main(argv + ["--allow-busy"]) == 0
    table = json.loads(next((tmp_path / "_timings").glob("*.json")).read_text())
    assert table["units"]["hecnn/t1_cnn_mnist"]["smoke"]["busy_elsewhere_cores"] == 1.3


def test_cost_model_prefers_another_seeds_record_of_the_same_config_over_the_timing_table(tmp_path):
    u = get_unit("hecnn/t1_cnn_mnist")
    seed1 = u.config("reduced", {"seed": 1})
    other = u.config("reduced", {"seed": 1, "lr": 0.5})                       # not the same config
    records = {("hecnn", "t1_cnn_mnist"): [_prov(u, "reduced", other, 999.0), _prov(u, "reduced", seed1, 40.0)]}
    table = {"machine": "x", "device": "cpu", "path": "x/cpu.json",
             "units": {u.key: {"reduced": {"ms_per_step": 1000.0, "date": "2026-12-02"}}}}
    est = CostModel("cpu", tmp_path, records=records, timings=[table]).estimate(u, "reduced", {"seed": 2})
    assert est.seconds == 40.0 and "seed" in est.source and not est.recorded
    records = {("hecnn", "t1_cnn_mnist"): [_prov(u, "reduced", other, 999.0)]}
    est = CostModel("cpu", tmp_path, records=records, timings=[table]).estimate(u, "reduced", {"seed": 2})
    assert est.seconds == pytest.approx(u.steps(seed1))                     # the table: 1 s per step


def test_a_record_of_the_same_config_under_another_profile_is_its_cost(tmp_path):
    """hecnn/filters trains nothing and its reduced config is its full one: the reduced record is the full cost.
    A fixed-cost unit with no such record says why it has no step time."""
    u = get_unit("hecnn/filters")
    assert config_hash(u.config("full")) == config_hash(u.config("reduced"))
    records = {("hecnn", "filters"): [_prov(u, "reduced", u.config("reduced"), 12.5)]}
    est = CostModel("cpu", tmp_path, records=records, timings=[]).estimate(u, "full")
    assert est.seconds == 12.5 and "same config as reduced" in est.source and not est.recorded
    assert CostModel("cuda", tmp_path, records=records, timings=[]).estimate(u, "full").seconds is None
    other = get_unit("hecnn/t1_cnn_mnist")                                   # full and reduced differ: no twin
    records = {("hecnn", "t1_cnn_mnist"): [_prov(other, "reduced", other.config("reduced"), 12.5)]}
    est = CostModel("cpu", tmp_path, records=records, timings=[]).estimate(other, "full")
    assert "same config" not in est.source
    est = CostModel("cpu", tmp_path, records={}, timings=[]).estimate(get_unit("hcnn/speed"), "full")
    assert est.seconds is None and est.source == "not timed: no training (a speed benchmark)"
