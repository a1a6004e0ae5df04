"""The scikit-learn estimators: scikit-learn's own estimator checks, pipelines, pandas, seeds.

The full ``parametrize_with_checks`` run (about 100 checks for the two estimators) takes tens
of seconds, so it is marked slow; the default run takes a representative subset (input
validation, fitted-state, pickling, subset invariance, one-label and regression-target errors)
with a network of 4 hidden units trained for 2 epochs, which those checks do not need to be
accurate.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

from pyrobnn.sklearn import BNNClassifier, BNNRegressor

#: settings for the accuracy checks (check_regressors_train: R² > 0.5; check_classifiers_train: accuracy > 0.83)
CHECK = dict(hidden_sizes=(8,), epochs=40, num_predictive_samples=20, random_state=0)
#: settings for the checks of the interface only
API = dict(hidden_sizes=(4,), epochs=2, num_predictive_samples=4, random_state=0)

FAST_CHECKS = {
    "check_estimators_unfitted", "check_estimators_nan_inf", "check_n_features_in_after_fitting",
    "check_estimators_pickle", "check_methods_subset_invariance", "check_supervised_y_2d",
    "check_classifiers_one_label", "check_classifiers_regression_target", "check_requires_y_none",
    "check_get_params_invariance", "check_no_attributes_set_in_init", "check_fit_idempotent",
    "check_fit2d_predict1d", "check_estimators_empty_data_messages", "check_parameters_default_constructible",
    "check_estimator_cloneable", "check_mixin_order",
}


def _name(check) -> str:
    return getattr(check, "func", check).__name__


@pytest.mark.slow
@parametrize_with_checks([BNNRegressor(**CHECK), BNNClassifier(**CHECK)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


_FAST = [(e, c) for est in (BNNRegressor(**API), BNNClassifier(**API)) for e, c in estimator_checks_generator(est)
         if _name(c) in FAST_CHECKS and "readonly_memmap=True" not in repr(c)]


@pytest.mark.parametrize("estimator,check", _FAST, ids=[f"{type(e).__name__}-{_name(c)}" for e, c in _FAST])
def test_sklearn_estimator_checks_fast(estimator, check):
    check(estimator)


def test_fast_subset_is_representative():
    names = {_name(c) for _, c in _FAST}
    assert names == FAST_CHECKS, FAST_CHECKS - names  # every check listed exists in this scikit-learn


def _regression(n=40, seed=0):
    g = np.random.default_rng(seed)
    x = g.uniform(-2, 2, size=(n, 2))
    return x, np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * g.normal(size=n)


def test_pipeline_gridsearch_cross_val_pandas():
    pd = pytest.importorskip("pandas")
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _regression()
    frame = pd.DataFrame(x, columns=["a", "b"])
    pipe = make_pipeline(StandardScaler(), BNNRegressor(hidden_sizes=(4,), epochs=5, num_predictive_samples=8,
                                                        random_state=0))
    grid = GridSearchCV(pipe, {"bnnregressor__prior_scale": [0.1, 1.0]}, cv=2).fit(frame, pd.Series(y))
    assert set(grid.cv_results_["param_bnnregressor__prior_scale"]) == {0.1, 1.0}
    assert list(grid.best_estimator_.feature_names_in_) == ["a", "b"]
    est = BNNRegressor(**API).fit(frame, pd.Series(y))  # a frame straight into the estimator
    assert list(est.feature_names_in_) == ["a", "b"] and est.n_features_in_ == 2
    np.testing.assert_allclose(est.predict(frame), BNNRegressor(**API).fit(x, y).predict(x), rtol=1e-6)
    scores = cross_val_score(pipe, frame, y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


def test_regressor_predictions_and_sample_y():
    x, y = _regression(60)
    reg = BNNRegressor(hidden_sizes=(8,), epochs=60, num_predictive_samples=200, random_state=1).fit(x, y)
    assert reg.score(x, y) > 0.8
    mean, std = reg.predict(x[:5], return_std=True)
    np.testing.assert_allclose(mean, reg.predict(x[:5]))  # the same draws every call
    pred = reg.posterior_.predict(torch.tensor((x[:5] - reg._x_loc) / reg._x_scale), num_samples=200,
                                  seed=reg._predict_seed)
    np.testing.assert_allclose(std, pred.total_var.sqrt().numpy() * reg._y_scale)  # back in the targets' units
    draws = reg.sample_y(x[:5], n_samples=2000, random_state=3)
    assert draws.shape == (5, 2000)
    # y draws average to the predictive mean and spread as the predictive std (Monte-Carlo error
    # of 200 vs 2000 draws: 5 standard errors)
    se = std * np.sqrt(1 / 200 + 1 / 2000)
    assert np.all(np.abs(draws.mean(1) - mean) < 5 * se)
    assert np.all(np.abs(draws.std(1) / std - 1) < 0.2)


def test_classifier_strings_and_datatree():
    g = np.random.default_rng(0)
    x = np.concatenate([g.normal(-2, 0.5, (20, 2)), g.normal(2, 0.5, (20, 2))])
    y = np.array(["no"] * 20 + ["yes"] * 20)
    clf = BNNClassifier(hidden_sizes=(4,), epochs=30, num_predictive_samples=20, random_state=0).fit(x, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.score(x, y) == 1.0
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(clf.sample_y(x[:3], n_samples=5).ravel()) <= {"no", "yes"}
    tree = clf.datatree_
    assert "posterior" in tree.children and "observed_data" in tree.children
    assert tree is clf.datatree_  # made once


def test_random_state_leaves_global_generators_alone():
    x, y = _regression(20)
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    a = BNNRegressor(hidden_sizes=(4,), epochs=3, num_predictive_samples=4, random_state=None).fit(x, y)
    a.predict(x)
    b = BNNRegressor(hidden_sizes=(4,), epochs=3, num_predictive_samples=4,
                     random_state=np.random.RandomState(0)).fit(x, y)
    b.sample_y(x, 2, random_state=None)
    assert torch.equal(torch.random.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
    c1 = BNNRegressor(hidden_sizes=(4,), epochs=3, random_state=4).fit(x, y).predict(x)
    c2 = BNNRegressor(hidden_sizes=(4,), epochs=3, random_state=4).fit(x, y).predict(x)
    np.testing.assert_array_equal(c1, c2)


@pytest.mark.slow  # NUTS compiles its kernel: about 20 s; the dispatch to fit_nuts is all that is new here
def test_nuts_method():
    x, y = _regression(20)
    reg = BNNRegressor(hidden_sizes=(3,), method="nuts", num_samples=10, warmup=10, chains=1,
                       num_predictive_samples=10, random_state=0).fit(x, y)
    assert reg.posterior_.method == "nuts"
    assert reg.predict(x).shape == (20,)


@pytest.mark.parametrize("arg,value,match", [
    ("method", "vi", "method must be one of"), ("prior", "cauchy", "prior must be one of"),
    ("guide", "flow", "guide must be one of"), ("hidden_sizes", (4, 0), "hidden_sizes must be"),
    ("random_state", -1, "random_state must be"),
])
def test_bad_settings_name_the_argument(arg, value, match):
    x, y = _regression(10)
    with pytest.raises(ValueError, match=match):
        BNNRegressor(**{**API, arg: value}).fit(x, y)
