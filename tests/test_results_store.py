import json
from dataclasses import dataclass

import numpy as np
import pytest

from hyperbook.context import RunContext
from hyperbook.errors import UnknownChoiceError
from hyperbook.results import ResultsStore, config_hash, run_or_load


@dataclass(frozen=True)
class Cfg:
    steps: int
    lr: float = 1e-3
    seed: int = 0


def test_hash_changes_with_config_and_is_stable():
    assert config_hash(Cfg(10)) == config_hash(Cfg(10))
    assert config_hash(Cfg(10)) != config_hash(Cfg(11))
    assert config_hash(Cfg(10)) != config_hash(Cfg(10, lr=1e-2))


def test_run_records_with_provenance_and_reuses(tmp_path):
    calls = []

    def run():
        calls.append(1)
        return {"acc": 0.5, "throughput": 10.0}, {"curve": np.arange(3)}

    rec = run_or_load("hypernets", "exp", "smoke", Cfg(3), run, results_dir=tmp_path)
    again = run_or_load("hypernets", "exp", "smoke", Cfg(3), run, results_dir=tmp_path)
    assert len(calls) == 1 and again.metrics == rec.metrics
    np.testing.assert_array_equal(again.arrays["curve"], np.arange(3))
    prov = rec.provenance
    for key in ("git_commit", "profile", "config", "device", "torch", "seed", "wall_time_s", "throughput", "date"):
        assert key in prov, key
    assert prov["config"] == {"steps": 3, "lr": 1e-3, "seed": 0} and prov["throughput"] == 10.0
    run_or_load("hypernets", "exp", "smoke", Cfg(3), run, results_dir=tmp_path, reuse=False)
    assert len(calls) == 2


def test_a_failed_run_leaves_no_record(tmp_path):
    def broken():
        return {"bad": object()}, {}          # not JSON-serialisable: fails mid-write

    with pytest.raises(TypeError):
        run_or_load("hypernets", "exp", "smoke", Cfg(1), broken, results_dir=tmp_path)
    store = ResultsStore(tmp_path)
    assert store.find("hypernets", "exp", "smoke", Cfg(1)) is None
    leftovers = [p for p in (tmp_path / "hypernets" / "exp").iterdir()]
    assert leftovers == [], leftovers


def test_atomic_replace_keeps_one_complete_record(tmp_path):
    store = ResultsStore(tmp_path)
    store.save("c", "e", "smoke", Cfg(1), {"v": 1}, None, {"profile": "smoke"})
    store.save("c", "e", "smoke", Cfg(1), {"v": 2}, None, {"profile": "smoke"})
    folder = store.path_for("c", "e", "smoke", Cfg(1))
    assert json.loads((folder / "metrics.json").read_text()) == {"v": 2}
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_book_profile_prefers_recorded_reduced_run_and_falls_back_to_smoke(tmp_path):
    ctx = RunContext.from_params("hypernets", "book", "cpu", None, tmp_path, True, 0)
    config_for = lambda profile: Cfg({"smoke": 1, "reduced": 2, "full": 3}[profile])
    ran = []

    def fn(config, ctx):
        ran.append(config.steps)
        return {"steps": config.steps}, {}

    assert ctx.run("e", config_for, fn).metrics == {"steps": 1} and ran == [1]      # nothing recorded: smoke
    reduced = RunContext.from_params("hypernets", "reduced", "cpu", None, tmp_path, True, 0)
    reduced.run("e", config_for, fn)
    rec = ctx.run("e", config_for, fn)
    assert rec.metrics == {"steps": 2} and rec.profile == "reduced" and ran == [1, 2]
    assert "reduced profile on CPU" in rec.source()


def test_unknown_override_lists_valid_parameters(tmp_path):
    ctx = RunContext.from_params("hypernets", "smoke", "cpu", None, tmp_path, True, 0)
    with pytest.raises(UnknownChoiceError, match="steps") as err:
        ctx.run("e", lambda p: Cfg(1), lambda c, x: ({}, {}), overrides={"stepz": 3})
    assert "stepz" in str(err.value)
