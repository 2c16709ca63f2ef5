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
