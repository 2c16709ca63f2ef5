"""R-T3's CIFAR RFNiN: its parameter count, derived from the thesis's description (sec. 3.4.2: the ImageNet
RFNiN less one basis layer, two 1x1 layers and one pooling; 192 units in the 1x1 layers; third-order
basis), and the recorded run states the count of the model as built. The thesis prints no count for this
model (its table 1 counts the ImageNet models only), so the number is ours, explained term by term."""
import pytest

from hyperbook.experiments import thesis_rfnn as R
from hyperbook.models.rfnn import count_parameters
from hyperbook.results import DEFAULT_RESULTS_DIR, ResultsStore

BASIS = 10              # Gaussian derivatives up to order 3: 1 + 2 + 3 + 4
UNITS = 192


def derived_count(classes: int, scales: tuple) -> int:
    """alpha of the three basis layers (no bias: eq. 23 recombines the fixed basis) + six 1x1 layers with
    bias (five 192 -> 192, the last 192 -> classes)."""
    alpha = 3 * UNITS * BASIS * scales[0] + UNITS * UNITS * BASIS * (scales[1] + scales[2])
    one_by_one = 5 * (UNITS * UNITS + UNITS) + (UNITS * classes + classes)
    return alpha + one_by_one


@pytest.mark.parametrize("profile,scales", [("reduced", (2, 1, 1)), ("full", (3, 2, 1))])
def test_count_of_the_model_as_built(profile, scales):
    """Scales per stage: n_scales in the first stage, one fewer per later stage, at least one (sec. 3.3.4)."""
    config = R.CifarConfig.for_profile(profile)
    model = R.build_cifar_model("rfnin", 10, config.order, config.n_scales)
    assert [len(s) for s in model.stage_sigmas] == list(scales)
    assert count_parameters(model) == derived_count(10, scales)
    assert derived_count(10, (2, 1, 1)) == 936_010 and derived_count(10, (3, 2, 1)) == 1_310_410


def test_the_recorded_reduced_run_states_the_count_of_the_model_as_built():
    config = R.CifarConfig.for_profile("reduced")
    record = ResultsStore(DEFAULT_RESULTS_DIR).find("thesis_rfnn", "cifar10", "reduced", config)
    if record is None:
        pytest.skip("no recorded reduced R-T3 run of the current config")
    built = count_parameters(R.build_cifar_model("rfnin", 10, config.order, config.n_scales))
    assert record.metrics["results"]["rfnin"]["parameters"] == built
