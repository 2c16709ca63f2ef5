"""Budget logic of `hyperbook campaign`, on a fake registry with known estimates."""
import dataclasses
import json

import pytest

from hyperbook import campaign
from hyperbook.campaign import Candidate, candidates, ordered, parse_budget, run_campaign
from hyperbook.errors import BookError
from hyperbook.results import config_hash
from hyperbook.units import CostModel, get_unit


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def fake_runner(clock, durations, ran):
    def run(key, timeout_s, seed=None):
        ran.append((key, timeout_s))
        took = durations[key]
        if took > timeout_s:
            clock.t += timeout_s
            return "timeout"
        clock.t += took
        return "done"
    return run


CANDS = [Candidate("a/slow", 3000, False, 0), Candidate("a/done", 10, True, 1), Candidate("b/fast", 600, False, 2),
         Candidate("b/untimed", None, False, 3), Candidate("c/mid", 1800, False, 4)]


def test_parse_budget():
    assert parse_budget("2h") == 7200 and parse_budget("90m") == 5400 and parse_budget("1h30m") == 5400
    assert parse_budget("1.5h") == 5400 and parse_budget("45s") == 45
    for bad in ("2", "two hours", "-1h", "0m", "2h x"):
        with pytest.raises(BookError):
            parse_budget(bad)


def test_order_cheapest_and_chapter_skip_recorded():
    assert [c.key for c in ordered(CANDS, "cheapest")] == ["b/fast", "c/mid", "a/slow", "b/untimed"]
    assert [c.key for c in ordered(CANDS, "chapter")] == ["a/slow", "b/fast", "b/untimed", "c/mid"]
    with pytest.raises(ValueError, match="cheapest"):
        ordered(CANDS, "random")


def test_cheapest_runs_what_fits_and_stops_before_the_budget():
    clock, ran = FakeClock(), []
    durations = {"b/fast": 600, "c/mid": 1800, "a/slow": 3000}
    out = dict(run_campaign(CANDS, 3600, fake_runner(clock, durations, ran), order="cheapest", clock=clock,
                            log=lambda s: None))
    assert [k for k, _ in ran] == ["b/fast", "c/mid"]          # 600 + 1800; 3000 does not fit the 1200 left
    assert out["a/slow"] == "skipped: does not fit" and out["b/untimed"] == "skipped: not timed"
    assert out["a/done"] == "skipped: recorded"
    assert clock.t <= 3600


def test_chapter_order_skips_what_does_not_fit_and_goes_on():
    clock, ran = FakeClock(), []
    durations = {"b/fast": 600, "c/mid": 1800, "a/slow": 3000}
    run_campaign(CANDS, 2500, fake_runner(clock, durations, ran), order="chapter", clock=clock, log=lambda s: None)
    assert [k for k, _ in ran] == ["b/fast", "c/mid"]          # a/slow (3000) skipped first, then both fit


def test_untimed_runs_with_the_rest_of_the_budget_and_an_overrun_stops_the_campaign():
    clock, ran = FakeClock(), []
    durations = {"b/fast": 600, "c/mid": 5000, "a/slow": 3000, "b/untimed": 10_000}
    out = run_campaign(CANDS, 3500, fake_runner(clock, durations, ran), order="chapter", include_untimed=True,
                       clock=clock, log=lambda s: None)
    assert [k for k, _ in ran] == ["a/slow", "b/untimed"]      # b/fast (600) does not fit the 500 s left
    assert ran[1][1] == pytest.approx(500)                     # the untimed unit gets what is left, no more
    assert dict(out)["b/fast"] == "skipped: does not fit"
    assert dict(out)["b/untimed"] == "stopped at budget" and "c/mid" not in dict(out)
    assert clock.t == pytest.approx(3500)


def test_safety_factor_and_resume_after_kill():
    clock, ran = FakeClock(), []
    durations = {"b/fast": 600, "c/mid": 1800, "a/slow": 3000}
    run_campaign(CANDS, 2000, fake_runner(clock, durations, ran), safety=1.2, clock=clock, log=lambda s: None)
    assert [k for k, _ in ran] == ["b/fast"]                   # 1.2 x 1800 > 1400 left
    # the next campaign: b/fast is now recorded, so it is skipped
    again = [Candidate(c.key, c.estimate_s, c.recorded or c.key == "b/fast", c.position) for c in CANDS]
    clock2, ran2 = FakeClock(), []
    run_campaign(again, 2000, fake_runner(clock2, durations, ran2), clock=clock2, log=lambda s: None)
    assert [k for k, _ in ran2] == ["c/mid"]


def _prov(config, wall):
    return {"profile": "reduced", "config_hash": config_hash(config), "device": "CPU (x86_64, 2 cores)",
            "wall_time_s": wall, "date": "2026-12-03", "config": json.loads(json.dumps(dataclasses.asdict(config)))}


def test_seeds_make_one_candidate_per_unit_and_seed_and_a_seedless_unit_only_seed_0(tmp_path):
    cnn, nested, seedless = get_unit("hecnn/t1_cnn_mnist"), get_unit("hcnn/translation"), get_unit("hcnn/speed")
    records = {("hecnn", "t1_cnn_mnist"): [_prov(cnn.config("reduced", {"seed": 1}), 40.0)]}
    cost = CostModel("cpu", tmp_path, records=records, timings=[])
    logged = []
    out = candidates([cnn, nested, seedless], "reduced", cost, seeds=(0, 1, 2), log=logged.append)
    assert [c.label for c in out] == ["hecnn/t1_cnn_mnist seed 0", "hecnn/t1_cnn_mnist seed 1",
                                      "hecnn/t1_cnn_mnist seed 2", "hcnn/translation seed 0",
                                      "hcnn/translation seed 1", "hcnn/translation seed 2", "hcnn/speed"]
    assert [c.recorded for c in out[:3]] == [False, True, False]    # only seed 1's hash is recorded
    assert out[0].estimate_s == pytest.approx(40.0)                 # seed 1's run, scaled by (equal) steps
    assert out[-1].seed is None and len(logged) == 2 and "no seed" in logged[0]
    assert [c.seed for c in candidates([cnn], "reduced", cost)] == [None]   # no --seeds: the config's own


def test_campaign_passes_each_seed_to_the_runner_and_reports_by_label():
    clock, ran = FakeClock(), []
    cands = [Candidate("u/a", 10, False, 0, 0), Candidate("u/a", 10, True, 0, 1), Candidate("u/a", 10, False, 0, 2)]

    def run(key, timeout_s, seed=None):
        ran.append((key, seed))
        return "done"
    out = run_campaign(cands, 100, run, clock=clock, log=lambda s: None)
    assert ran == [("u/a", 0), ("u/a", 2)]
    assert dict(out) == {"u/a seed 0": "done", "u/a seed 1": "skipped: recorded", "u/a seed 2": "done"}


def test_subprocess_runner_puts_the_seed_on_the_train_command(monkeypatch):
    calls = []

    class Proc:
        pid = 0

        def __init__(self, cmd, **kw):
            calls.append(cmd)

        def wait(self, timeout=None):
            return 0
    monkeypatch.setattr(campaign.subprocess, "Popen", Proc)
    run = campaign.subprocess_runner("reduced", "cpu")
    assert run("hecnn/t1_cnn_mnist", 100, 2) == "done" and run("hecnn/t1_cnn_mnist", 100) == "done"
    assert calls[0][-2:] == ["--seed", "2"] and "--seed" not in calls[1]


def test_a_campaign_stops_before_the_next_unit_when_the_machine_gets_busy():
    """Tests or another training job started mid-campaign: the next unit is not started beside them."""
    clock, ran = FakeClock(), []
    loads = iter([0.0, 1.4])                     # idle before the first unit, a test run before the second
    out = run_campaign(CANDS, 36000, fake_runner(clock, {"b/fast": 600, "c/mid": 1800, "a/slow": 3000}, ran),
                       clock=clock, log=lambda s: None, busy=lambda: next(loads), busy_limit=0.25)
    assert [k for k, _ in ran] == ["b/fast"]
    assert dict(out)["c/mid"] == "stopped: machine busy" and "a/slow" not in dict(out)


def test_campaign_command_refuses_to_start_on_a_busy_machine(monkeypatch, tmp_path, capsys):
    from hyperbook import cli, cpu_load
    monkeypatch.setattr(cpu_load, "busy_elsewhere", lambda interval=1.0: 1.7)
    started = []
    monkeypatch.setattr(campaign, "run_campaign", lambda *a, **k: started.append(1) or [])
    assert cli.main(["campaign", "hecnn/t1_cnn_mnist", "--profile", "smoke", "--budget", "1m", "--device", "cpu",
                     "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "1.70 CPU cores busy" in err and "--allow-busy" in err and not started
    assert cli.main(["campaign", "hecnn/t1_cnn_mnist", "--profile", "smoke", "--budget", "1m", "--device", "cpu",
                     "--results-dir", str(tmp_path), "--allow-busy"]) == 0 and started
