"""Agreement with people on human-rated clips (FETV layout): what eval/human_cv.py, eval/prior_pairs.py and
eval/statistic_directions.py compute (their reports' text and files: ``llmvqa.evaluation.human_report``).

Plain functions of arrays and clip lists, so they are tested on their own:
- ``agreement``: SRCC/PLCC/KRCC/RMSE of each reported aspect against the human rating it stands for;
- ``within_source``: SRCC inside each generator (and the real footage);
- ``real_outranks``: how often, for one prompt, the real video scores above a generated one;
- ``coverage``: how often the stated interval holds the human mean; ``heldout_interval``: the interval itself;
- ``score_clips``, ``put_estimates``, ``summarize`` and ``cross_validate``: the prompt-grouped cross-validation
  of the calibrated model against the base checkpoint, the ridge prior and BRISQUE (eval/human_cv.py);
- ``prior_data``, ``chain_order`` and ``prior_setting``: the prior alone, fitted with and without ranking pairs
  of degradation chains (eval/prior_pairs.py);
- ``directions``: which way each encoder statistic runs against people (eval/statistic_directions.py).

Clips are ``llmvqa.train.human_data.RatedClip`` (anything with name, path, prompt, source and ratings). Model,
prior and chain code is imported where it is used, so the metrics load without torch.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llmvqa.evaluation.metrics import correlation_report, srcc
from llmvqa.statistics import PROBE_STATISTICS, STATISTICS

REAL_SOURCE = "ground-truth"
"""The ``model`` value FETV gives real footage."""

CHECKS: dict[str, str] = {
    "overall~static": "static",
    "overall~temporal": "temporal",
    "overall~mean": "overall",
    "technical~static": "static",
    "motion~temporal": "temporal",
    "semantic~alignment": "alignment",
    "prompt_alignment~alignment": "alignment",
}
"""Reported aspect ~ human rating it is compared with ("overall" rating = mean of static and temporal)."""

ASPECT_KEY: dict[str, str] = {"overall": "overall", "group:technical": "technical", "group:motion": "motion",
                              "group:semantic": "semantic", "dimension:prompt_alignment": "prompt_alignment"}
"""Aspect asked of the model (those ``llmvqa.train.human.HUMAN_ASPECTS`` calibrates) → its key in a prediction table."""


def human_table(ratings: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """{rating: (N,)} with "overall" = mean of static and temporal."""
    out = {k: np.array([r[k] for r in ratings], float) for k in ("static", "temporal", "alignment")}
    out["overall"] = (out["static"] + out["temporal"]) / 2
    return out


def agreement(pred: Mapping[str, Sequence[float]], ratings: Sequence[Mapping[str, float]]) -> dict[str, dict]:
    """{check: correlation report} for every ``CHECKS`` entry whose aspect is in ``pred``."""
    human = human_table(ratings)
    out = {}
    for check, rating in CHECKS.items():
        aspect = check.split("~")[0]
        if aspect in pred:
            out[check] = correlation_report(np.asarray(pred[aspect], float), human[rating])
    return out


def within_source(pred: Sequence[float], human: Sequence[float], sources: Sequence[str]) -> dict[str, float]:
    """SRCC of pred against human inside each source (generator), plus their mean over generated sources."""
    pred, human = np.asarray(pred, float), np.asarray(human, float)
    out = {}
    for s in sorted(set(sources)):
        idx = np.array([x == s for x in sources])
        out[s] = srcc(pred[idx], human[idx]) if idx.sum() >= 3 and np.ptp(human[idx]) > 0 else float("nan")
    gen = [v for k, v in out.items() if k != REAL_SOURCE and np.isfinite(v)]
    out["mean_generated"] = float(np.mean(gen)) if gen else float("nan")
    return out


def real_outranks(pred: Sequence[float], prompts: Sequence[str], sources: Sequence[str]) -> float:
    """Fraction of (real, generated) pairs of one prompt where the real clip scores higher (ties count half)."""
    by_prompt: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for p, s, v in zip(prompts, sources, pred, strict=True):
        by_prompt[p].append((s, float(v)))
    wins, total = 0.0, 0
    for items in by_prompt.values():
        real = [v for s, v in items if s == REAL_SOURCE]
        for r in real:
            for s, v in items:
                if s != REAL_SOURCE:
                    wins += 1.0 if r > v else 0.5 if r == v else 0.0
                    total += 1
    return wins / total if total else float("nan")


def coverage(pred: Sequence[float], human: Sequence[float], half_width: float | Sequence[float]) -> float:
    """Fraction of clips whose human value lies within pred ± half_width."""
    pred, human = np.asarray(pred, float), np.asarray(human, float)
    return float(np.mean(np.abs(pred - human) <= np.asarray(half_width, float)))


def heldout_interval(pred: Sequence[float], human: Sequence[float], folds: Sequence[int], rate: float = 0.8) -> dict:
    """The ± half-width that holds the human value in ``rate`` of clips, from *held-out* predictions
    (each clip scored by a model that did not see its fold), and what coverage to expect on new clips.

    half_width: the ``rate`` quantile of |pred − human| over all clips. expected_coverage: each fold's
    clips checked against the quantile of the other folds' errors (a nested estimate — the half-width
    is never measured on the clips it came from).
    """
    pred, human, folds = np.asarray(pred, float), np.asarray(human, float), np.asarray(folds)
    err = np.abs(pred - human)
    inside = np.zeros(len(err), bool)
    for f in np.unique(folds):
        inside[folds == f] = err[folds == f] <= np.quantile(err[folds != f], rate)
    return {"coverage": float(rate), "half_width": float(np.quantile(err, rate)),
            "expected_coverage": float(inside.mean()), "n": int(len(err)), "folds": int(len(np.unique(folds)))}



# ---------------------------------------------------------------------------- cross-validation (eval/human_cv.py)
def score_clips(model, clips: Sequence, feats: Sequence[tuple]) -> dict[str, list[float]]:
    """{aspect key: scores} of the clips (features and prompt statistics in ``feats``) through the model's
    ``score_queries``, every ``ASPECT_KEY`` aspect asked as ``llmvqa.prompts.aspect_query`` words it (the
    scorer answers where it reads)."""
    from llmvqa.prompts import aspect_query

    out: dict[str, list[float]] = {k: [] for k in ASPECT_KEY.values()}
    for c, (f, ps) in zip(clips, feats, strict=True):
        queries = [aspect_query(a, c.prompt or None, model.cfg.prompt_version) for a in ASPECT_KEY]
        for a, sc in zip(ASPECT_KEY, model.score_queries(f, queries, prompt=c.prompt or None, prompt_stats=ps),
                         strict=True):
            out[ASPECT_KEY[a]].append(sc.score)
    return out


def put_estimates(pred: dict, rows: Sequence[int], est: np.ndarray) -> None:
    """Store prior estimates (static, temporal, alignment per row) in ``pred`` at ``rows`` as the aspects they
    stand for: overall = mean of static and temporal, technical = static, motion = temporal, semantic and
    prompt_alignment = alignment."""
    for j, i in enumerate(rows):
        s, t, a = est[j]
        pred["overall"][i] = (s + t) / 2
        pred["technical"][i], pred["motion"][i] = s, t
        pred["semantic"][i] = pred["prompt_alignment"][i] = a


def summarize(name: str, pred: Mapping[str, Sequence[float]], clips: Sequence,
              half_width: float | Sequence[float] | None = None) -> dict:
    """One row of the report: ``agreement``; with an overall score also SRCC inside each generator (static and
    temporal), how often the real clip of a prompt outranks its generated ones and, given the stated
    ``half_width``, the interval's coverage of the human overall rating."""
    ratings = [c.ratings for c in clips]
    human = human_table(ratings)
    sources = [c.source for c in clips]
    row = {"name": name, "agreement": agreement(pred, ratings)}
    if "overall" in pred:
        row["within_generator"] = {t: within_source(pred["overall"], human[t], sources) for t in ("static", "temporal")}
        row["real_outranks_generated"] = real_outranks(pred["overall"], [c.prompt for c in clips], sources)
        if half_width is not None:
            row["coverage"] = coverage(pred["overall"], human["overall"], half_width)
    return row


def prior_data(feats: Sequence[tuple], clips: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the human prior: ``prior_input`` of each clip's (features, prompt statistics), its ratings in
    ``PRIOR_TARGETS`` order."""
    from llmvqa.model.prior import PRIOR_TARGETS, prior_input

    x = np.stack([prior_input(f, ps) for f, ps in feats])
    y = np.array([[c.ratings[t] for t in PRIOR_TARGETS] for c in clips], float)
    return x, y


def fidelity(scored: Sequence[float], prior: Sequence[float], folds: Sequence[int]) -> dict:
    """How closely each fold's calibrated scorer follows the prior it reads (overall score against the prior's
    overall estimate, both held out): per fold the mean offset (scorer − prior, levels) and the SRCC between them;
    over all clips the spread of the offsets (their standard deviation across folds), which the pooled agreement
    with people pays for even when every fold ranks like its prior."""
    scored, prior, folds = np.asarray(scored, float), np.asarray(prior, float), np.asarray(folds)
    rows = []
    for f in range(int(folds.max()) + 1):
        m = folds == f
        rho = srcc(scored[m], prior[m]) if m.sum() >= 3 and np.ptp(prior[m]) > 0 and np.ptp(scored[m]) > 0 else float("nan")
        rows.append({"fold": f, "offset": float(np.mean(scored[m] - prior[m])), "srcc": float(rho)})
    offsets = np.array([r["offset"] for r in rows])
    return {"folds": rows, "offset_mean": float(offsets.mean()), "offset_spread": float(offsets.std()),
            "pooled_srcc": float(srcc(scored, prior)), "mean_abs_difference": float(np.mean(np.abs(scored - prior)))}


def cross_validate(base: str | Path, clips: Sequence, feats: Sequence[tuple], features_of: Callable, folds: np.ndarray,
                   cfg, *, chains=None, pairs=None, ratings: str = "", log: Callable[[str], None] | None = None) -> dict:
    """The report of eval/human_cv.py: every fold's clips scored by a model ``llmvqa.train.human.calibrate`` made
    from ``base`` on the other folds (``cfg``: a ``CalibrationConfig``; ``chains`` join every calibration), beside
    the base checkpoint without calibration, the ridge prior alone, the prior ranked by ``pairs`` (the
    ``chain_pairs`` of ``chains``) and BRISQUE (when its model files are installed), all on the same folds; with
    the overall score's ``heldout_interval`` and every clip's predictions."""
    import tempfile

    from llmvqa.evaluation import brisque
    from llmvqa.model.modeling import QualityLLM
    from llmvqa.model.prior import HumanPrior
    from llmvqa.train.human import calibrate

    log = log or (lambda m: None)
    folds = np.asarray(folds)
    n = len(clips)
    t0 = time.perf_counter()
    before = QualityLLM.from_pretrained(base, scorer=False)
    before.prior = None
    pred_before = score_clips(before, clips, feats)
    del before
    x, y = prior_data(feats, clips)
    pred_model = {k: [0.0] * n for k in ASPECT_KEY.values()}
    pred_ridge = {k: [0.0] * n for k in ASPECT_KEY.values()}
    pred_ranked = {k: [0.0] * n for k in pred_ridge} if pairs is not None else None
    half = np.zeros(n)
    # BRISQUE (LIVE-trained, fixed: nothing fitted per fold); lower BRISQUE = better, so its negative
    pred_brisque = [-brisque.clip_brisque(c.path) for c in clips] if brisque.available() else None
    for f in range(int(folds.max()) + 1):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        est = HumanPrior.fit(x[train], y[train], cfg.alpha).predict_inputs(x[test])  # (n_test, 3)
        put_estimates(pred_ridge, test, est)
        if pairs is not None:
            ranked = HumanPrior.fit_ranked(x[train], y[train], *pairs, alpha=cfg.alpha, weight=cfg.pair_weight,
                                           outside=cfg.prior_outside)
            put_estimates(pred_ranked, test, ranked.predict_inputs(x[test]))
        with tempfile.TemporaryDirectory() as tmp:
            out = calibrate(base, [clips[i] for i in train], features_of, Path(tmp) / "model", cfg, log=log, chains=chains)
            model = QualityLLM.from_pretrained(out)
            scored = score_clips(model, [clips[i] for i in test], [feats[i] for i in test])
            half[test] = float(model.interval["half_width"]) if model.interval else np.nan
            del model
        for k, v in scored.items():
            for j, i in enumerate(test):
                pred_model[k][i] = v[j]
        hum = human_table([clips[i].ratings for i in test])
        log(f"fold {f + 1}/{folds.max() + 1} done ({time.perf_counter() - t0:.0f} s): overall~static "
            f"{srcc(scored['overall'], hum['static']):.3f}, ~temporal {srcc(scored['overall'], hum['temporal']):.3f}; "
            f"ridge {srcc(est[:, :2].mean(1), hum['overall']):.3f}")

    rows = [summarize("llmvqa (calibrated, held-out folds)", pred_model, clips, half),
            summarize("before: base checkpoint, no calibration", pred_before, clips),
            summarize("ridge prior alone (same folds)", pred_ridge, clips)]
    if pred_ranked is not None:
        rows.append(summarize(f"ranked prior alone ({len(chains or [])} chains; same folds)", pred_ranked, clips))
    if pred_brisque is not None:
        rows.append(summarize("BRISQUE (LIVE SVM, −score; nothing fitted)", {"overall": pred_brisque}, clips))
    interval = heldout_interval(pred_model["overall"], human_table([c.ratings for c in clips])["overall"], folds)
    reads = pred_ranked if pred_ranked is not None else pred_ridge
    return {"interval": interval, "fidelity": fidelity(pred_model["overall"], reads["overall"], folds),
            "ratings": str(ratings), "clips": n, "folds": int(folds.max()) + 1,
            "grouped_by": "prompt", "steps": cfg.steps, "chains": len(chains or []),
            "config": dataclasses.asdict(cfg),
            "seconds": time.perf_counter() - t0, "rows": rows,
            "predictions": {"names": [c.name for c in clips], "model": pred_model, "ridge": pred_ridge,
                            "before": pred_before, "ranked": pred_ranked, "brisque": pred_brisque,
                            "fold": folds.tolist(), "half_width": half.tolist()}}


# ---------------------------------------------------------------------------- the prior alone (eval/prior_pairs.py)
def chain_order(prior, chains: Sequence) -> tuple[float, dict[str, float]]:
    """Share of the pairs of degradation chains where the stronger degradation gets the strictly lower overall
    estimate (mean of the prior's static and temporal estimates): over all chains, and by degradation kind
    (chains whose degradation did not change the clip left out: ``corpus.chains.changes``)."""
    from llmvqa.corpus.chains import ordered_pairs, ranked_chains
    from llmvqa.model.prior import prior_input

    good = total = 0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ch in ranked_chains(list(chains)):
        stats = ch.prompt_stats or [{}] * len(ch.features)
        est = prior.predict_inputs(np.stack([prior_input(f, ps) for f, ps in zip(ch.features, stats, strict=True)]))
        g, t = ordered_pairs(list(est[:, :2].mean(1)))
        good, total = good + g, total + t
        by_kind[ch.degradation][0] += g
        by_kind[ch.degradation][1] += t
    return (good / total if total else float("nan")), {k: v[0] / v[1] for k, v in sorted(by_kind.items())}


def prior_setting(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float, weight: float, margin: float,
                  train_chains: Sequence, test_chains: Sequence, carphone: np.ndarray,
                  outside: float | None = None, val_chains: Sequence = (), *, source_rows: Sequence = (),
                  source_weight: float = 0.0, source_margin: float = 0.0, synth_test: SynthCheck | None = None) -> dict:
    """One ``weight:margin`` row of eval/prior_pairs.py: the prior fitted on the rated clips (x, y) plus, when
    weight > 0, the ranking pairs of ``train_chains``; SRCC of its cross-fitted estimates (``folds``) with the
    static, temporal and alignment ratings, the ``chain_order`` of ``test_chains`` and the estimates of the
    carphone pair (``carphone``: prior inputs of pristine, distorted); ``outside``: the range hinges of
    ``HumanPrior.fit_ranked`` (None: none); ``val_chains``: chains of a split to choose settings on, ordered
    like ``test_chains``. With ``source_weight`` > 0 the within-source pairs of ``source_rows`` (``source_pairs``
    at ``source_margin``, weight ``source_weight`` each) join the chain pairs; with ``synth_test`` the row also
    has ``synth_check`` of the fitted prior."""
    from llmvqa.model.prior import HumanPrior
    from llmvqa.train.human_data import chain_pairs, cross_fitted, source_pairs

    chain_weight = weight
    pairs = chain_pairs(train_chains, margin) if weight > 0 else None
    if source_weight > 0:
        sx, sm = source_pairs(source_rows, source_margin)
        px, pm, pw = (sx, sm, np.full(len(sx), source_weight)) if pairs is None else (
            np.concatenate([pairs[0], sx]), np.concatenate([pairs[1], sm]),
            np.concatenate([np.full(len(pairs[0]), weight), np.full(len(sx), source_weight)]))
        pairs, weight = (px, pm), pw
    oof = cross_fitted(x, y, folds, alpha, pairs, weight, outside if pairs is not None else None)
    overall = oof[:, :2].mean(1)
    prior = (HumanPrior.fit_ranked(x, y, *pairs, alpha=alpha, weight=weight, outside=outside) if pairs is not None
             else HumanPrior.fit(x, y, alpha))
    ordered, by_kind = chain_order(prior, test_chains)
    val = chain_order(prior, val_chains)[0] if val_chains else None
    car = prior.predict_inputs(carphone)
    row = {"weight": chain_weight, "margin": margin,
           "outside": outside, "static": float(spearmanr(overall, y[:, 0])[0]),
           "temporal": float(spearmanr(overall, y[:, 1])[0]),
           "alignment": float(spearmanr(oof[:, 2], y[:, 2])[0]), "chains_ordered": ordered, "by_kind": by_kind,
           "val_chains_ordered": val,
           "carphone": {"pristine": float(car[0, :2].mean()), "distorted": float(car[1, :2].mean()),
                        "pristine_static": float(car[0, 0]), "distorted_static": float(car[1, 0])}}
    if source_weight > 0:
        row |= {"source_weight": source_weight, "source_margin": source_margin}
    if synth_test is not None:
        row["synth"] = synth_check(prior, synth_test)
    return row


@dataclasses.dataclass
class SynthCheck:
    """A synth split as the prior check reads it: prior inputs, the corpus' overall target, each clip's source and
    whether it carries a wrong prompt (a wrong-prompt degradation or a wrong-prompt twin)."""

    inputs: np.ndarray
    target: np.ndarray
    sources: list[str]
    wrong_prompt: np.ndarray


def synth_check(prior, split: SynthCheck) -> dict:
    """SRCC of the prior's overall estimate (mean of static and temporal) with the corpus' overall target: over
    the split, without the wrong-prompt clips (whose target also counts prompt alignment), and inside a source
    (the mean over sources whose targets differ: no assumption about a source's own quality)."""
    est = prior.predict_inputs(split.inputs)[:, :2].mean(1)
    keep = ~split.wrong_prompt
    return {"srcc": float(srcc(split.target, est)), "srcc_right_prompt": float(srcc(split.target[keep], est[keep])),
            "srcc_within_source": within_source(est, split.target, split.sources)["mean_generated"],
            "clips": int(len(est))}


# ---------------------------------------------------------------------------- statistics (eval/statistic_directions.py)
def rated_statistics(clips: Sequence, features_of: Callable) -> list[dict[str, float]]:
    """Every clip's encoder statistics and prompt statistics (``features_of(clip)``: features, prompt stats)."""
    out = []
    for c in clips:
        f, ps = features_of(c)
        out.append({**{k: float(v) for k, v in f.stats.items()}, **ps})
    return out


def directions(stats: Sequence[Mapping[str, float]], ratings: Sequence[Mapping[str, float]]) -> list[dict]:
    """One row per statistic of ``llmvqa.statistics`` (``STATISTICS``, then ``PROBE_STATISTICS``): SRCC with each
    human rating (NaN with fewer than 3 measured clips or a constant statistic) and the verdict on its assumed direction, read on the rating its
    stream stands for (technical: static, motion and semantic: temporal, prompt_alignment: alignment): "as
    assumed", "against" (the wrong sign with |SRCC| ≥ 0.2), "weak", "no direction assumed" or "—" (no SRCC)."""
    human = human_table(ratings)
    rows = []
    for st in STATISTICS + PROBE_STATISTICS:
        values = np.array([s.get(st.name, np.nan) for s in stats], float)
        ok = np.isfinite(values)
        row = {"statistic": st.name, "stream": st.stream, "assumed": st.higher_is_better}
        for k in ("static", "temporal", "alignment"):
            row[k] = srcc(values[ok], human[k][ok]) if ok.sum() >= 3 and np.ptp(values[ok]) > 0 else float("nan")
        main = row["alignment"] if st.name == "prompt_alignment" else row["static" if st.stream == "technical" else "temporal"]
        if st.higher_is_better is None or not np.isfinite(main):
            row["verdict"] = "no direction assumed" if st.higher_is_better is None else "—"
        elif abs(main) < 0.2:
            row["verdict"] = "weak"
        else:
            row["verdict"] = "as assumed" if (main > 0) == st.higher_is_better else "against"
        rows.append(row)
    return rows


__all__ = ["ASPECT_KEY", "CHECKS", "REAL_SOURCE", "agreement", "chain_order", "coverage", "cross_validate", "directions",
           "heldout_interval", "human_table", "prior_data", "prior_setting", "put_estimates", "rated_statistics",
           "real_outranks", "score_clips", "summarize", "synth_check", "SynthCheck", "within_source"]
