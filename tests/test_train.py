import torch

from hyperbook.train import fit, step_generator


def make_problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def batch_fn(step):
        g = step_generator(7, step)
        x = torch.randn(16, 4, generator=g)
        return x, x @ w

    loss_fn = lambda m, b: (m(b[0]) - b[1]).pow(2).mean()
    return model, batch_fn, loss_fn


def test_training_reduces_the_loss():
    model, batch_fn, loss_fn = make_problem()
    result = fit(model, loss_fn, batch_fn, steps=200, lr=1e-2, log_every=20, progress=False)
    assert result.losses[-1][1] < 0.2 * result.losses[0][1]
    assert result.items_per_s > 0 and result.steps == 200


def test_resume_after_interruption_gives_the_same_model(tmp_path):
    model, batch_fn, loss_fn = make_problem()
    fit(model, loss_fn, batch_fn, steps=60, lr=1e-2, log_every=10, progress=False)
    reference = [p.detach().clone() for p in model.parameters()]

    ckpt = tmp_path / "run.pt"
    model, batch_fn, loss_fn = make_problem()
    fit(model, loss_fn, batch_fn, steps=60, lr=1e-2, log_every=10, progress=False,
        checkpoint=ckpt, checkpoint_every=20, stop_after=40)          # "killed" after step 40
    assert ckpt.exists()
    model, batch_fn, loss_fn = make_problem()                        # a fresh process: new model object
    resumed = fit(model, loss_fn, batch_fn, steps=60, lr=1e-2, log_every=10, progress=False,
                  checkpoint=ckpt, checkpoint_every=20)
    assert resumed.resumed_from == 40 and not ckpt.exists()
    assert [s for s, _ in resumed.losses] == [10, 20, 30, 40, 50, 60]
    for a, b in zip(reference, model.parameters()):
        torch.testing.assert_close(a, b)


def test_a_resumed_run_records_its_whole_training_time(tmp_path):
    """A record of a run resumed from a checkpoint counts the training time the earlier processes spent (the
    checkpoint's wall_s), not only its last process's: the planner prices units from these records."""
    from hyperbook.results import run_or_load
    ckpt = tmp_path / "ckpt.pt"
    model, batch_fn, loss_fn = make_problem()
    fit(model, loss_fn, batch_fn, steps=40, lr=1e-2, checkpoint=ckpt, checkpoint_every=10, stop_after=20,
        progress=False)
    state = torch.load(ckpt, weights_only=False)
    state["wall_s"] = 1000.0                      # as if the killed process had trained for 1000 s
    torch.save(state, ckpt)

    def run():
        m, b, l = make_problem()
        r = fit(m, l, b, steps=40, lr=1e-2, checkpoint=ckpt, checkpoint_every=10, progress=False)
        return {"train_wall_s": r.wall_s, "resumed_from": r.resumed_from}, {}
    rec = run_or_load("ch", "ex", "smoke", {"k": 1}, run, results_dir=tmp_path / "results", reuse=False)
    assert rec.metrics["resumed_from"] == 20 and rec.provenance["resumed_wall_s"] == 1000.0
    assert 1000.0 < rec.provenance["wall_time_s"] < 1000.0 + 60
    fresh = run_or_load("ch", "ex", "smoke", {"k": 2}, lambda: ({}, {}), results_dir=tmp_path / "results")
    assert "resumed_wall_s" not in fresh.provenance and fresh.provenance["wall_time_s"] < 60
