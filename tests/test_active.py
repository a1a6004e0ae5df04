"""Active learning: acquisition scores by hand, batch choice, the loop's invariants, the command."""

import json
import math

import pytest
import torch

from pyrobnn.apps.active import (
    ActiveLearningSettings,
    active_learning_run,
    bald,
    initial_labelled,
    max_entropy,
    mean_std,
    random_scores,
    run_active_learning,
    score,
    select_batch,
    variation_ratio,
)
from pyrobnn.cli import main


def _known_draws():
    # S = 2 draws, N = 3 points, K = 2 classes
    return torch.tensor([
        [[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]],
        [[0.0, 1.0], [0.5, 0.5], [0.7, 0.3]],
    ], dtype=torch.float64)


def _h(p):
    return -sum(q * math.log(q) for q in p if q > 0)


def test_scores_by_hand():
    p = _known_draws()
    # point 0: draws disagree completely; point 1: agree on 50/50; point 2: mean (0.8, 0.2)
    h_mean = [math.log(2), math.log(2), _h([0.8, 0.2])]
    mean_h = [0.0, math.log(2), (_h([0.9, 0.1]) + _h([0.7, 0.3])) / 2]
    assert max_entropy(p).tolist() == pytest.approx(h_mean)
    assert bald(p).tolist() == pytest.approx([a - b for a, b in zip(h_mean, mean_h)])
    assert variation_ratio(p).tolist() == pytest.approx([0.5, 0.5, 0.2])
    # std over the two draws of each class probability (population form), averaged over classes
    assert mean_std(p).tolist() == pytest.approx([0.5, 0.0, 0.1])
    assert score("bald", p)[0].item() == pytest.approx(math.log(2))
    g = torch.Generator().manual_seed(0)
    r = random_scores(p, g)
    assert r.shape == (3,) and ((r >= 0) & (r < 1)).all()
    with pytest.raises(ValueError, match="acquisition 'bold' is unknown"):
        score("bold", p)
    with pytest.raises(ValueError, match=r"prob_draws must be a tensor \(S, N, K\)"):
        bald(p[0])


def test_select_batch_never_picks_labelled():
    s = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.95, 0.2])
    labelled = torch.tensor([False, False, False, False, True, False])
    assert select_batch(s, labelled, 2).tolist() == [0, 2]  # 4 is labelled although it scores highest
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        pick = select_batch(s, labelled, 5, mode="power", beta=2.0, generator=g)
        assert sorted(pick.tolist()) == [0, 1, 2, 3, 5]  # without replacement, never 4
    with pytest.raises(ValueError, match="5 unlabelled points, fewer than the 6"):
        select_batch(s, labelled, 6)
    with pytest.raises(ValueError, match="k .* must be a positive integer"):
        select_batch(s, labelled, 0)
    with pytest.raises(ValueError, match="mode 'best' is unknown"):
        select_batch(s, labelled, 1, mode="best")


def test_initial_labelled_is_balanced_and_checks_labels():
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 3)
    idx = initial_labelled(y, 12, 3, torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 12
    assert torch.bincount(y[idx], minlength=3).tolist() == [5, 4, 3] or \
        sorted(torch.bincount(y[idx], minlength=3).tolist()) == [3, 4, 5]
    with pytest.raises(ValueError, match=r"pool labels must lie in 0..2, got range 0..3"):
        initial_labelled(torch.tensor([0, 3]), 1, 3, torch.Generator())
    with pytest.raises(ValueError, match="initial_labels .* exceeds the pool size"):
        initial_labelled(y, 30, 3, torch.Generator())


def test_settings_errors_name_the_field():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['max_label'\]"):
        ActiveLearningSettings.from_mapping({"max_label": 3})
    with pytest.raises(ValueError, match="acquisitions: 'bold' is unknown"):
        ActiveLearningSettings(acquisitions=("bold",))
    with pytest.raises(ValueError, match=r"max_labels \(10\) must be >= initial_labels \(20\)"):
        ActiveLearningSettings(max_labels=10)
    with pytest.raises(ValueError, match="active_learning.per_round must be a positive integer"):
        ActiveLearningSettings(per_round=0)
    assert ActiveLearningSettings(initial_labels=20, per_round=10, max_labels=45).label_counts() == [20, 30, 40, 45]


def test_command_writes_curves_and_metrics(tmp_path, capsys):
    spec = tmp_path / "al.toml"
    spec.write_text('[active_learning]\nacquisitions = ["random", "bald"]\nmax_labels = 30\n'
                    'initial_labels = 10\nsteps_per_round = 5\nnum_samples = 3\npool_size = 60\ntest_size = 30\n'
                    'seeds = [0, 1]\nfull_data_reference = false\n')
    out = tmp_path / "run"
    assert main(["active-learning", str(spec), "--out", str(out), "-q", "--set", "warm_start=true"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["warm_start"] is True
    assert set(m["runs"]) == {"random", "bald"} and set(m["runs"]["bald"]) == {"0", "1"}
    for runs in m["runs"].values():
        for rounds in runs.values():
            assert [r["labels"] for r in rounds] == [10, 20, 30]
            acquired = [i for r in rounds for i in r.get("acquired", [])]
            assert len(acquired) == 20 and len(set(acquired)) == 20  # never a point twice
            assert all(0.0 <= r["accuracy"] <= 1.0 and r["nll"] > 0 for r in rounds)
    curve = m["summary"]["by_acquisition"]["bald"]
    accs = [m["runs"]["bald"][k][-1]["accuracy"] for k in ("0", "1")]
    assert curve["accuracy_mean"][-1] == pytest.approx(sum(accs) / 2)
    assert (out / "accuracy_vs_labels.png").stat().st_size > 0 and (out / "spec.toml").exists()
    # bad input: a clear error and exit status 2, nothing written
    assert main(["active-learning", str(spec), "--out", str(tmp_path / "bad"), "--set", "max_labels=100"]) == 2
    assert "max_labels (100) exceeds the pool size (60)" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["active-learning", str(spec), "--out", str(out)]) == 2  # exists, no --force


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_and_batch_on_cuda():
    p = _known_draws().cuda()
    assert bald(p).device.type == "cuda"
    assert torch.allclose(bald(p).cpu(), bald(_known_draws()))
    g = torch.Generator(device="cuda").manual_seed(0)
    assert random_scores(p, g).device.type == "cuda"
    s = max_entropy(p)
    pick = select_batch(s, torch.zeros(3, dtype=torch.bool, device="cuda"), 2)
    assert sorted(pick.tolist()) == [0, 1]


def test_laplace_inference_fits_each_round_by_fit_laplace():
    """With a Laplace inference spec a round's posterior is fit_laplace's on the labelled points
    (the MAP fit taking steps_per_round steps), and the loop acquires from its predictive."""
    import pyrobnn as pb
    from pyrobnn.apps.active.loop import _fit
    from pyrobnn.spec import build_model, laplace_kwargs, load_inference_spec, load_model_spec
    from pyrobnn.utils.rng import seeded

    settings = ActiveLearningSettings(inference="laplace", steps_per_round=6, num_samples=4, initial_labels=10,
                                      max_labels=20, pool_size=40, test_size=20, seeds=(0,),
                                      full_data_reference=False)
    mspec, ispec = load_model_spec(settings.model), load_inference_spec("laplace")
    data = pb.data.load("sklearn", name="digits", test_fraction=0.2, seed=0)
    x, y = data.x_train[:12], data.y_train[:12]
    post, _ = _fit(mspec, ispec, settings, x, y, None, seed=5)
    with seeded(5):
        net = build_model(mspec)
    direct = pb.fit_laplace(net, x, y, **{**laplace_kwargs(ispec), "epochs": 6, "batch_size": 12, "seed": 5,
                                          "progress": False})
    assert isinstance(post, pb.LaplacePosterior) and post.info["prior_precision"] == direct.info["prior_precision"]
    a, b = post.predict(x, num_samples=4, seed=1).probs, direct.predict(x, num_samples=4, seed=1).probs
    assert torch.equal(a, b)
    rounds = active_learning_run("bald", 0, settings, mspec, ispec, data)
    assert [r["labels"] for r in rounds] == [10, 20] and len(set(rounds[0]["acquired"])) == 10
    with pytest.raises(ValueError, match="SVI or a Laplace approximation.*'nuts'"):
        run_active_learning(ActiveLearningSettings(inference="nuts", seeds=(0,)))
