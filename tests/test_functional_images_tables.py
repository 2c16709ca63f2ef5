"""The chapter's comparison tables with several test sets (each set keeps its own label and document value)."""
import pytest

from hyperbook.experiments import functional_images as FI


def record(scores, crop=0):
    return {"scores": scores, "test_crop": crop}


def rows(method, values, images=None):
    return [{"method": method, "set": s, "scale": sc, "psnr": p, "ssim": p / 40, "images": images or FI.SET_SIZES[s]}
            for (s, sc), p in values.items()]


@pytest.fixture
def records():
    hyp = rows("bicubic", {("Set5", 2): 33.70, ("Set14", 2): 30.30, ("B100", 2): 29.50}) + \
        rows("hypernetwork", {("Set5", 2): 35.00, ("Set14", 2): 31.00, ("B100", 2): 30.00})
    srcnn = rows("SRCNN", {("Set5", 2): 36.00, ("Set14", 2): 32.00, ("B100", 2): 31.00})
    return {"sr_hypernet": record(hyp), "sr_srcnn": record(srcnn)}


def test_gains_compare_each_set_with_its_own_document_value(records):
    g = FI.gains(records, "psnr").set_index(["set", "scale", "method"])
    row = g.loc[("Set14", "x2", "hypernetwork")]
    assert row["our gain over bicubic"] == pytest.approx(0.70)
    assert row["document gain over bicubic"] == pytest.approx(32.30 - 30.33)       # Set14's, not a 4-set mean
    assert row["difference"] == pytest.approx(0.70 - (32.30 - 30.33))
    assert g.loc[("B100", "x2", "SRCNN"), "document gain over bicubic"] == pytest.approx(31.36 - 29.48)
    assert len(g) == 6                                                               # 3 sets x 2 methods


def test_comparison_keeps_every_set_and_marks_quoted_rows(records):
    c = FI.comparison_frame(records, "psnr")
    ours = c[c["ours"].notna()].set_index(["set", "scale", "method"])
    assert ours.loc[("Set5", "x2", "bicubic"), "ours"] == 33.70
    assert ours.loc[("Set14", "x2", "bicubic"), "ours"] == 30.30                     # not overwritten by another set
    assert ours.loc[("Set14", "x2", "bicubic"), "difference"] == pytest.approx(-0.03)
    urban = c[c["set"] == "Urban100"]
    assert len(urban) == 12 and urban["ours"].isna().all()
    assert set(urban["status"]) == {"quoted (set absent here)", "quoted (RDN not run)"}


def test_summary_and_bicubic_check_name_every_set(records):
    line = FI.summary_scores(records, "hypernetwork")
    assert "Set5 x2 35.00 (document 36.09)" in line and "Set14 x2 31.00 (document 32.3)" in line and "B100" in line
    check = FI.bicubic_check(records).set_index(["set", "scale"])
    assert check.loc[("Set5", "x2"), "difference"] == pytest.approx(0.06)
    assert check.loc[("Set5", "x2"), "check"] == "FAIL"                              # 0.06 > 0.05 dB
    assert check.loc[("Set14", "x2"), "check"] == "pass"                             # -0.03
    assert check.loc[("Set5", "x3"), "check"].startswith("not comparable")


def test_partial_or_cropped_sets_are_not_comparable(records):
    cropped = {k: {**v, "test_crop": 48} for k, v in records.items()}
    assert FI.gains(cropped)["difference"].isna().all()
    assert FI.comparison_frame(cropped)["difference"].isna().all()
    assert "not comparable" in FI.summary_scores(cropped, "SRCNN")
    part = {"x": record(rows("bicubic", {("Set5", 2): 33.6}, images=2))}
    assert FI.bicubic_check(part).iloc[0]["check"].startswith("not comparable")


def test_hypernetwork_gain_uses_bicubic_on_its_own_images(records):
    """sr_hypernet scores bicubic on the images it evaluated; its gain is taken against those."""
    records["sr_hypernet"]["scores"] += rows(FI.BICUBIC_SUBSET, {("Set5", 2): 33.00})
    g = FI.gains(records).set_index(["set", "scale", "method"])
    assert g.loc[("Set5", "x2", "hypernetwork"), "our gain over bicubic"] == pytest.approx(2.00)
    assert g.loc[("Set5", "x2", "SRCNN"), "our gain over bicubic"] == pytest.approx(36.00 - 33.70)
    assert FI.BICUBIC_SUBSET not in set(g.reset_index()["method"])
