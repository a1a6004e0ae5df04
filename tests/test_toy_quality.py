"""The shipped toy spec: SVI's predictive interval covers held-out points and widens away from the data."""

import torch

import pyrobnn as pb
from pyrobnn.spec import build_data, build_guide, build_model, load_inference_spec, load_model_spec, svi_kwargs


def test_toy_svi_interval_covers_and_widens():
    mspec = load_model_spec("models/toy_regression.toml")
    ispec = load_inference_spec("inference/svi_meanfield.toml")
    d = build_data(mspec)
    net = build_model(mspec)
    post = pb.fit_svi(net, build_guide(ispec, net), d.x_train, d.y_train, **{**svi_kwargs(ispec), "progress": False})
    # 1000 fresh points from the same process inside the training range [0, 0.5]
    held = pb.data.toy_curve(n_train=1000, n_test=0, seed=123)
    lo, hi = post.predict((held.x_train - d.x_mean) / d.x_std, num_samples=500).interval(0.9)
    covered = ((held.y_train >= lo) & (held.y_train <= hi)).double()
    # 90% nominal; require at least 85% (binomial s.e. at n = 1000 is about 0.01)
    assert covered.mean() >= 0.85, float(covered.mean())
    grid = torch.linspace(-0.2, 1.2, 141)[:, None]
    lo, hi = post.predict((grid - d.x_mean) / d.x_std, num_samples=500).interval(0.9)
    width = hi - lo
    inside = (grid[:, 0] >= 0) & (grid[:, 0] <= 0.5)
    far = (grid[:, 0] < -0.1) | (grid[:, 0] > 0.9)
    assert width[far].mean() > 1.05 * width[inside].mean(), (float(width[far].mean()), float(width[inside].mean()))
