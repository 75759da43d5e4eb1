import numpy as np
import pytest
from scipy import stats

from llmvqa.evaluation.metrics import correlation_report, fit_logistic, krcc, plcc, rmse, srcc


def test_hand_computed_case():
    pred = [1.0, 2.0, 3.0, 4.0]
    mos = [10.0, 30.0, 20.0, 40.0]
    # ranks: pred 1,2,3,4; mos 1,3,2,4 -> d^2 = 0+1+1+0 = 2 -> 1 - 6*2/(4*15) = 0.8
    assert srcc(pred, mos) == pytest.approx(0.8)
    # concordant pairs 5, discordant 1 -> (5-1)/6
    assert krcc(pred, mos) == pytest.approx(4 / 6)
    # linear (no fit) pearson by hand: x-mean = [-1.5,-.5,.5,1.5], y-mean=[-15,5,-5,15]
    num = 22.5 - 2.5 - 2.5 + 22.5
    den = np.sqrt(5.0) * np.sqrt(225 + 25 + 25 + 225)
    assert plcc(pred, mos, fit=False) == pytest.approx(num / den)


def test_against_scipy_on_noisy_data():
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 100, 200)
    pred = 1 / (1 + np.exp(-(mos - 50) / 15)) + rng.normal(0, 0.05, 200)
    assert srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic)
    assert krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic)
    # the logistic fit removes the sigmoid nonlinearity, so fitted PLCC beats raw PLCC
    assert plcc(pred, mos) > plcc(pred, mos, fit=False)
    fitted = fit_logistic(pred, mos)
    assert rmse(pred, mos) == pytest.approx(np.sqrt(np.mean((fitted - mos) ** 2)))
    assert rmse(pred, mos) < np.std(mos)


def test_perfect_and_inverted():
    x = np.arange(10.0)
    assert correlation_report(x, 2 * x + 1)["srcc"] == pytest.approx(1.0)
    assert srcc(x, -x) == pytest.approx(-1.0)
    assert rmse(x, 2 * x + 1) == pytest.approx(0.0, abs=1e-3)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="3 values but mos has 2"):
        srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        srcc([1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        plcc([1, 2, np.nan], [1, 2, 3])


def test_logistic_is_the_vqeg_formula_and_never_overflows():
    import warnings

    import numpy as np

    from llmvqa.evaluation.metrics import logistic_4

    x = np.array([-2.0, 0.0, 0.5, 3.0])
    by_hand = (4.0 - 1.0) / (1.0 + np.exp(-(x - 0.5) / 0.7)) + 1.0
    assert np.allclose(logistic_4(x, 4.0, 1.0, 0.5, -0.7), by_hand)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a steep fit far from its centre used to warn "overflow in exp"
        y = logistic_4(np.array([-1e3, 0.0, 1e3]), 5.0, 1.0, 0.0, 1e-3)
    assert np.allclose(y, [1.0, 3.0, 5.0])
    # a step-like prediction set (many ties, a steep logistic) still gives finite fitted values
    pred = np.r_[np.zeros(20), np.ones(20)]
    mos = np.r_[np.linspace(1, 2, 20), np.linspace(4, 5, 20)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(fit_logistic(pred, mos)).all()
