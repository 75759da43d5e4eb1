"""Can a learned degradation term let the human prior rank the synth corpus without losing people? The prior alone.

    python eval/prior_drop_term.py --grid 0:0:0 0:0.5:0.5 0:0:2 50:0:0 --out eval/reports/prior_drop_term

A *drop model* — boosted regression trees over the dimension probe's inputs (statistics + token summary), fitted on
the synth train split to the corpus' worst technical score (sharpness, noise, compression, exposure, colour) and its
worst motion score (smoothness, flicker, temporal consistency), 0–1 — estimates how degraded a clip looks, with no
reference. Each ``copies:tech:motion`` setting joins it to the shipped prior recipe (``HumanPrior.fit_ranked``,
weight 3, margin 0.35, hinges 0.2, 240 train-split chains) two ways: ``copies`` > 0 puts the two estimates into the
prior's inputs that many times each (the ridge's penalty on them divided by ``copies``), so people and the chain
pairs set their weight; ``tech`` / ``motion`` subtract that multiple of (1 − estimate) from the static / temporal
estimate after the fit. The train chains' estimates are cross-fitted by source (5 folds), everything else is
estimated by the drop model of the whole train split. Printed per setting: fetv_dev held-out SRCC (6 prompt-grouped
folds; overall ~ static, overall ~ temporal, alignment), val and test chain pairs in order, synth test SRCC (all /
right prompt / inside a source), and the carphone pair. First the drop model itself: its SRCC on the test split's
targets, and on fetv_dev with people's static and temporal ratings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

TECHNICAL = ("sharpness", "noise", "compression", "exposure", "color")
MOTION = ("smoothness", "flicker", "temporal_consistency")
STRENGTHS = (0.0, 0.35, 0.7, 1.0)


def load(args) -> dict:
    """Prior inputs and probe inputs of fetv_dev, the synth train/test splits, val/test/train chains, carphone."""
    from llmvqa.assessor import resolve_video
    from llmvqa.corpus.chains import build_chains, ranked_chains
    from llmvqa.corpus.manifest import read_manifest
    from llmvqa.encoders.cache import FeatureCache, get_or_extract
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.evaluation.datasets import WRONG_PROMPT
    from llmvqa.evaluation.human import prior_data
    from llmvqa.model.dimension_probe import DimensionProbe, TokenBasis, token_summary
    from llmvqa.model.prior import prior_input
    from llmvqa.train.human_data import features_from_cache, load_rated, prompt_folds

    ex, cache = FeatureExtractor(), FeatureCache(args.cache)
    root = Path(args.synth).parent

    def rows(split):
        out = []
        for rec in read_manifest(args.synth, split):
            f, _ = get_or_extract(ex, root / rec["video"], cache)
            prompt = rec.get("prompt") or None
            out.append((rec, f, {k: float(v) for k, v in ex.prompt_stats(f, prompt).items()} if prompt else {}))
        return out

    train = rows("train")
    basis = TokenBasis.fit(np.stack([token_summary(f) for _, f, _ in train]), 32)

    def probe_x(pairs):
        return DimensionProbe.input_matrix(pairs, basis)

    d = {}
    for name, split_rows in (("train", train), ("test", rows("test"))):
        d[f"{name}_probe"] = probe_x([(f, ps) for _, f, ps in split_rows])
        d[f"{name}_prior"] = np.stack([prior_input(f, ps) for _, f, ps in split_rows])
        d[f"{name}_src"] = np.array([r.get("source") or "" for r, _, _ in split_rows])
        d[f"{name}_groups"] = np.array([[min(float(r["scores"][k]) for k in g) for g in (TECHNICAL, MOTION)]
                                        for r, _, _ in split_rows])
        d[f"{name}_overall"] = np.array([float(r["scores"]["overall"]) for r, _, _ in split_rows])
        d[f"{name}_wrong"] = np.array([bool(r.get("twin_of")) or any(x["name"] == WRONG_PROMPT
                                                                      for x in r.get("degradations") or [])
                                       for r, _, _ in split_rows])
    clips = load_rated(args.ratings)
    features_of = features_from_cache(None, args.cache)
    fe = [features_of(c) for c in clips]
    d["fetv_prior"], d["fetv_y"] = prior_data(fe, clips)
    d["fetv_probe"] = probe_x(fe)
    d["fetv_folds"] = prompt_folds([c.prompt for c in clips], args.folds, 0)
    d["fetv_source"] = np.array([c.source for c in clips])
    car = [ex.extract(resolve_video(f"example:{n}")) for n in ("carphone_pristine", "carphone_distorted")]
    d["car_prior"], d["car_probe"] = np.stack([prior_input(f) for f in car]), probe_x([(f, {}) for f in car])
    source_of = {r["id"]: r.get("source") or "" for r in read_manifest(args.synth)}
    for split, n in (("train", args.chains), ("val", 72), ("test", 72)):
        chains = ranked_chains(build_chains(ex, args.synth, split, n, 0, cache=cache))
        d[f"ch{split}_prior"] = np.stack([np.stack([prior_input(f, ps) for f, ps in
                                                    zip(ch.features, ch.prompt_stats or [{}] * 4, strict=True)])
                                          for ch in chains])
        d[f"ch{split}_probe"] = np.stack([probe_x(list(zip(ch.features, ch.prompt_stats or [{}] * 4, strict=True)))
                                          for ch in chains])
        d[f"ch{split}_group"] = np.array([ch.group for ch in chains])
        d[f"ch{split}_src"] = np.array([source_of[ch.clip] for ch in chains])
        d[f"ch{split}_kind"] = np.array([ch.degradation for ch in chains])
    return d


def data_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags ``load`` reads: fetv_dev, the synth manifest, train chains, prompt folds, the feature cache."""
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--chains", type=int, default=240)
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--cache", default="cache/features")


def drop_models(x, t):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return [HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
                                          random_state=0).fit(x, t[:, k]) for k in range(t.shape[1])]


def predict(models, x):
    flat = x.reshape(-1, x.shape[-1])
    return np.stack([m.predict(flat) for m in models], -1).reshape(*x.shape[:-1], len(models))


def estimates(d) -> dict:
    """The drop model's estimates (0–1, 1 = undegraded) of every set; the train chains' cross-fitted by source."""
    fold_of = {s: i % 5 for i, s in enumerate(np.random.default_rng(0).permutation(np.unique(d["train_src"])))}
    train_fold = np.array([fold_of[s] for s in d["train_src"]])
    chain_fold = np.array([fold_of[s] for s in d["chtrain_src"]])
    full = drop_models(d["train_probe"], d["train_groups"])
    q = {k: predict(full, d[f"{k}_probe"]) for k in ("fetv", "test", "car", "chval", "chtest")}
    q["chtrain"] = np.zeros(d["chtrain_probe"].shape[:-1] + (2,))
    for f in range(5):
        models = drop_models(d["train_probe"][train_fold != f], d["train_groups"][train_fold != f])
        q["chtrain"][chain_fold == f] = predict(models, d["chtrain_probe"][chain_fold == f])
    return q


def with_term(x, q, copies):
    return x if copies == 0 else np.concatenate([np.repeat(q, copies, axis=-1), x], axis=-1)


def chain_share(prior, x, q, copies, post) -> float:
    good = total = 0
    for c in range(len(x)):
        s = (prior.predict_inputs(with_term(x[c], q[c], copies))[:, :2] - post * (1 - q[c])).mean(1)
        for i in range(len(s)):
            for j in range(i + 1, len(s)):
                good, total = good + (s[j] < s[i]), total + 1
    return good / total


def chain_pair_rows(inputs: np.ndarray, groups, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranking pairs of ``fit_ranked`` from chains: inputs (C, 4, D) in STRENGTHS order, groups (C,) → (P, 2, D)
    (weaker, stronger degradation) and (P, 3) margins: margin × the strength gap in the chain group's rating,
    alignment unconstrained."""
    from llmvqa.model.prior import PRIOR_TARGETS
    from llmvqa.train.human_data import CHAIN_RATINGS

    px, pm = [], []
    for c in range(len(inputs)):
        for i in range(4):
            for j in range(i + 1, 4):
                m = np.full(3, np.nan)
                m[:2] = 0.0
                m[PRIOR_TARGETS.index(CHAIN_RATINGS[groups[c]])] = margin * (STRENGTHS[j] - STRENGTHS[i])
                px.append(inputs[c, [i, j]])
                pm.append(m)
    return np.stack(px), np.stack(pm)


def setting(d, q, copies: int, post: np.ndarray, weight=3.0, margin=0.35, outside=0.2) -> dict:
    from llmvqa.evaluation.human import within_source
    from llmvqa.model.prior import HumanPrior

    px, pm = chain_pair_rows(with_term(d["chtrain_prior"], q["chtrain"], copies), d["chtrain_group"], margin)
    x, y, folds = with_term(d["fetv_prior"], q["fetv"], copies), d["fetv_y"], d["fetv_folds"]
    oof = np.zeros_like(y)
    for f in np.unique(folds):
        held = folds == f
        oof[held] = HumanPrior.fit_ranked(x[~held], y[~held], px, pm, weight=weight, outside=outside).predict_inputs(x[held])
    oof[:, :2] -= post * (1 - q["fetv"])
    overall = oof[:, :2].mean(1)
    prior = HumanPrior.fit_ranked(x, y, px, pm, weight=weight, outside=outside)
    est = (prior.predict_inputs(with_term(d["test_prior"], q["test"], copies))[:, :2] - post * (1 - q["test"])).mean(1)
    target, keep = d["test_overall"], ~d["test_wrong"]
    car = (prior.predict_inputs(with_term(d["car_prior"], q["car"], copies))[:, :2] - post * (1 - q["car"])).mean(1)
    return {"copies": copies, "technical": float(post[0]), "motion": float(post[1]),
            "static": float(spearmanr(overall, y[:, 0])[0]), "temporal": float(spearmanr(overall, y[:, 1])[0]),
            "alignment": float(spearmanr(oof[:, 2], y[:, 2])[0]),
            "val_chains": chain_share(prior, d["chval_prior"], q["chval"], copies, post),
            "test_chains": chain_share(prior, d["chtest_prior"], q["chtest"], copies, post),
            "synth": float(spearmanr(est, target)[0]), "synth_right_prompt": float(spearmanr(est[keep], target[keep])[0]),
            "synth_inside_source": within_source(est, target, list(d["test_src"]))["mean_generated"], "carphone": [float(car[0]), float(car[1])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_arguments(ap)
    ap.add_argument("--grid", nargs="+", default=["0:0:0", "0:0.5:0.5", "0:1:1", "0:0:1", "0:0:2", "10:0:0", "50:0:0"],
                    help="copies:technical:motion settings (see above)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    d = load(args)
    q = estimates(d)
    head = {"drop_model_test_srcc": [float(spearmanr(q["test"][:, k], d["test_groups"][:, k])[0]) for k in range(2)],
            "drop_model_fetv_srcc": [float(spearmanr(q["fetv"][:, k], d["fetv_y"][:, k])[0]) for k in range(2)]}
    lines = [f"drop model: test SRCC technical {head['drop_model_test_srcc'][0]:.3f}, motion "
             f"{head['drop_model_test_srcc'][1]:.3f}; fetv_dev technical ~ static {head['drop_model_fetv_srcc'][0]:.3f}, "
             f"motion ~ temporal {head['drop_model_fetv_srcc'][1]:.3f}", "",
             "| copies : technical : motion | fetv static / temporal / alignment | chain pairs val / test | "
             "synth SRCC all / right prompt / inside a source | carphone |", "|---|---|---|---|---|"]
    rows = []
    for spec in args.grid:
        c, t, m = (float(v) for v in spec.split(":"))
        r = setting(d, q, int(c), np.array([t, m]))
        rows.append(r)
        lines.append(f"| {spec} | {r['static']:.3f} / {r['temporal']:.3f} / {r['alignment']:.3f} | "
                     f"{r['val_chains']:.1%} / {r['test_chains']:.1%} | {r['synth']:.3f} / {r['synth_right_prompt']:.3f}"
                     f" / {r['synth_inside_source']:.3f} | {r['carphone'][0]:.2f} / {r['carphone'][1]:.2f} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "report.json").write_text(json.dumps({**head, "rows": rows}, indent=1))
        (Path(args.out) / "report.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
