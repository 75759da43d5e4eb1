import numpy as np
import pytest

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


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), written out: the definition, not scipy."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = np.empty(len(x))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _tau_b(x, y) -> float:
    """Kendall's tau-b by counting pairs."""
    n, conc, disc, tx, ty = len(x), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / np.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_rank_correlations_match_their_definitions_with_ties():
    rng = np.random.default_rng(0)
    mos = np.round(rng.uniform(1, 5, 60), 1)  # rounded: many ties
    pred = np.round(mos + rng.normal(0, 0.8, 60))
    rp, rm = _ranks(pred), _ranks(mos)
    by_definition = np.sum((rp - rp.mean()) * (rm - rm.mean())) / np.sqrt(np.sum((rp - rp.mean()) ** 2)
                                                                         * np.sum((rm - rm.mean()) ** 2))
    assert srcc(pred, mos) == pytest.approx(by_definition)
    assert krcc(pred, mos) == pytest.approx(_tau_b(pred, mos))


def test_the_logistic_fit_recovers_a_logistic_relation():
    from llmvqa.evaluation.metrics import logistic_4

    pred = np.linspace(-3, 3, 40)
    mos = logistic_4(pred, 90.0, 10.0, 0.3, 0.8)  # MOS an exact logistic of the prediction
    assert plcc(pred, mos) == pytest.approx(1.0, abs=1e-6)
    assert rmse(pred, mos) == pytest.approx(0.0, abs=1e-3)
    assert plcc(pred, mos, fit=False) < 0.99  # the raw relation is not linear
    assert rmse(pred, mos, fit=False) > 10


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
