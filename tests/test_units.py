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


def test_time_refuses_a_fixed_cost_that_swamps_the_steps(monkeypatch, tmp_path):
    """A longer run that took less time gives no per-step figure (it once wrote -668 ms/step)."""
    u = next(u for u in all_units() if u.step_field == "steps")
    clock = iter([0.0, 5.0, 10.0, 15.0, 20.0, 24.0])   # runs at n, n, 2n steps take 5 s, 5 s, 4 s
    monkeypatch.setattr("hyperbook.units.time.perf_counter", lambda: next(clock))
    monkeypatch.setattr(Unit, "run", lambda self, ctx, overrides=None: None)
    with pytest.raises(Exception, match="fixed cost"):
        time_unit(u, "smoke", 2, scratch=tmp_path)


def test_unit_run_checks_chapter(tmp_path):
    from hyperbook.context import RunContext
    ctx = RunContext.from_params("hecnn", "smoke", "cpu", None, tmp_path)
    with pytest.raises(Exception, match="context of chapter"):
        get_unit(FAST).run(ctx)
    assert isinstance(get_unit(FAST), Unit)
