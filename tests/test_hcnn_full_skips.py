"""A `full` HCNN chapter run where CIFAR-100 is absent: the C-T2 runs are skipped with their reason (never a
stand-in), the unit refuses them with an error naming the dataset, and nothing trains before a refusal
that would stop the chapter (CIFAR-10 absent)."""
import pytest

from hyperbook.context import RunContext
from hyperbook.errors import DatasetMissingError
from hyperbook.experiments import hcnn as E

C100 = ("cifar100_hcnn", "cifar100_hcnn_plus")


def context(tmp_path, profile, cifar10=True):
    if cifar10:    # the offline mirror's layout, enough for the data layer to call CIFAR-10 present
        for split in ("train", "test"):
            (tmp_path / "data" / "cifar10-jpeg" / split).mkdir(parents=True, exist_ok=True)
    return RunContext.from_params("hcnn", profile, "cpu", tmp_path / "data", tmp_path / "results")


@pytest.fixture
def runs(monkeypatch):
    """ctx.run replaced by a recorder: no training, the names the chapter asked for, in order."""
    asked = []

    def fake_run(self, name, config_for, fn, overrides=None):
        asked.append(name)
        return name
    monkeypatch.setattr(RunContext, "run", fake_run)
    return asked


def test_full_skips_c_t2_with_a_stated_reason_and_runs_the_rest(tmp_path, runs):
    records, skipped = E.chapter_records(context(tmp_path, "full"))
    assert set(skipped) == set(C100)
    assert all("CIFAR-100" in why and "stand-in" in why for why in skipped.values())
    assert runs == [n for n in E.TRAIN_RUNS if n not in C100] + ["translation", "speed"]
    assert set(records) == set(runs)


def test_other_profiles_skip_nothing(tmp_path, runs):
    for profile in ("smoke", "reduced"):
        _, skipped = E.chapter_records(context(tmp_path, profile, cifar10=False))
        assert skipped == {}


def test_without_cifar10_full_stops_before_training_anything(tmp_path, runs):
    with pytest.raises(DatasetMissingError, match="CIFAR-10"):
        E.chapter_records(context(tmp_path, "full", cifar10=False))
    assert runs == []


def test_the_unit_refuses_full_without_cifar100_naming_it(tmp_path):
    from hyperbook.units import get_unit
    unit = get_unit("hcnn/cifar100_hcnn")
    with pytest.raises(DatasetMissingError, match=r"CIFAR-100.*stand-in"):
        unit.fn(unit.config("full"), context(tmp_path, "full"))


def test_c_t2_table_states_the_reason_in_place_of_numbers():
    why = "CIFAR-100 is absent (x not found) and a `full` run never trains on a stand-in"
    table = E.accuracy_table({}, "cifar100", 100, dict.fromkeys(C100, why))
    ours = table.frame[table.frame["model"].isin(["HCNN", "HCNN (+)"])]
    assert len(ours) == 2 and all(run == f"not run: {why}" for run in ours["run"])
    assert why in table.caption
