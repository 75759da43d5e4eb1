"""Can a non-linear or differently weighted prior rank degradation chains at 95% and keep agreeing with people?

    python eval/prior_residual.py --out eval/reports/prior_residual
    python eval/prior_residual.py --train-chains 720 --grid linear hidden=16,decay=10,anchor=10

The shipped prior is ``HumanPrior.fit_ranked``: a ridge over the prior inputs (mean-pooled encoder tokens and the
normalized statistics) with range hinges, fitted to fetv_dev's ratings (squared error) and to the ranking pairs of
degradation chains of the synth train split (squared hinge). This script refits the same objective in torch
(``linear`` reproduces the shipped prior's numbers) and tries what a linear prior cannot do:
- ``hidden=H``: a residual MLP (H tanh units) over the statistics and their range hinges (``full=1``: over every
  input), with weight decay ``decay``; ``anchor=A`` adds A × its squared output on the rated clips, so it acts
  where the rated clips are not (a non-linear range hinge); ``penalty=1`` makes it a non-positive penalty;
- ``emb=E`` / ``stat=S``: the ridge penalty of the token part / the statistics part × E / S (a prior that must
  rank the chains with the statistics rather than with content);
- ``hinges_only=1``: the ranking pairs move only the weights of the range hinges (and the residual); the tokens'
  and the statistics' own weights are fitted to the rated clips alone;
- ``source=W``: the synth train split's within-source pairs join (``human_data.source_pairs``: every degraded clip
  below each undegraded clip of its source by margin × the corpus' drop), weight W each;
- ``weight``, ``margin``, ``alpha``, ``outside`` as in ``fit_ranked``.
Each setting is scored as eval/prior_pairs.py scores one: fetv_dev in prompt-grouped folds (SRCC of the held-out
overall estimate with static and temporal ratings, of the alignment estimate with alignment), the share of
val-split and test-split chain pairs in order (by kind for test), the synth test split's SRCC with the corpus'
overall target (all clips, without the wrong-prompt ones) and the carphone pair. ``--train-chains`` more chains
rank the prior (their features are extracted once, about 1 s a chain on 2 cores, and cached).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from llmvqa.evaluation.human import chain_order, synth_check

INT_KEYS = ("hidden", "penalty", "full", "seed", "iters", "hinges_only")


class TorchPrior:
    """The prior of one setting (see the module doc), fitted at construction; ``predict(x)`` → (N, 3) estimates."""

    def __init__(self, x: np.ndarray, y: np.ndarray, pair_x: np.ndarray, pair_gap: np.ndarray, *, alpha: float = 1000.0,
                 weight: float = 3.0, margin: float = 0.35, outside: float = 0.2, hidden: int = 0, decay: float = 1.0,
                 anchor: float = 0.0, penalty: int = 0, full: int = 0, emb: float = 1.0, stat: float = 1.0,
                 hinges_only: int = 0, source: float = 0.0, chain_pairs: int | None = None, seed: int = 0,
                 iters: int = 300):
        from llmvqa.model.prior import OUTSIDE_POSITIONS, STAT_INPUTS, outside_inputs

        torch.manual_seed(seed)
        s = x[:, x.shape[1] - STAT_INPUTS + OUTSIDE_POSITIONS]
        self.bounds = np.stack([np.quantile(s, outside, 0), np.quantile(s, 1 - outside, 0)])
        self._hinged = lambda a: outside_inputs(a, self.bounds)
        xa, p = self._hinged(x), len(pair_x)
        pa = self._hinged(pair_x.reshape(2 * p, -1))
        self.mean = xa.mean(0)
        scale = np.concatenate([xa, pa]).std(0)  # as fit_ranked: rated and paired inputs on one scale
        self.scale = np.where(scale > 1e-8, scale, 1.0)
        self.nstat = STAT_INPUTS + 2 * len(OUTSIDE_POSITIONS)
        z = torch.tensor((xa - self.mean) / self.scale)
        zp = torch.tensor((pa - self.mean) / self.scale).reshape(p, 2, -1)
        target = torch.tensor(y)
        gap = torch.tensor(pair_gap) * margin
        # the chains' pairs weigh ``weight``; within-source pairs (rows from ``chain_pairs`` on) ``source`` each
        pair_weight = torch.full((p,), float(weight), dtype=torch.float64)
        if chain_pairs is not None and chain_pairs < p:
            pair_weight[chain_pairs:] = float(source)
        constrained = ~torch.isnan(gap)
        gap = torch.nan_to_num(gap)
        d = z.shape[1]
        n_hinges = 2 * len(OUTSIDE_POSITIONS)
        ridge = torch.cat([torch.full((d - self.nstat, 1), emb), torch.full((self.nstat, 1), stat)]).double()
        self.w = torch.zeros(d, 3, dtype=torch.float64, requires_grad=True)
        self.bias = torch.tensor(y.mean(0)).requires_grad_(True)
        params = [self.w, self.bias]
        self.full, self.penalty, self.net = full, penalty, None
        if hidden:
            self.net = torch.nn.Sequential(torch.nn.Linear(d if full else self.nstat, hidden), torch.nn.Tanh(),
                                           torch.nn.Linear(hidden, 3)).double()
            torch.nn.init.zeros_(self.net[2].weight)
            torch.nn.init.zeros_(self.net[2].bias)
            params += list(self.net.parameters())
        opt = torch.optim.LBFGS(params, max_iter=iters, line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                                tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = ((self._f(z) - target) ** 2).sum() + alpha * (ridge * self.w ** 2).sum()
            w = self.w
            if hinges_only:  # the pairs move only the range hinges' weights (and the residual)
                w = torch.cat([self.w[:d - n_hinges].detach(), self.w[d - n_hinges:]])
            short = torch.clamp(gap - (self._f(zp[:, 0], w) - self._f(zp[:, 1], w)), min=0) * constrained
            loss = loss + (pair_weight * (short ** 2).sum(1)).sum()
            if self.net is not None:
                loss = loss + anchor * (self._g(z) ** 2).sum()
                loss = loss + decay * sum((v ** 2).sum() for n, v in self.net.named_parameters() if "weight" in n)
            loss.backward()
            return loss

        opt.step(closure)

    def _g(self, z: torch.Tensor) -> torch.Tensor:
        h = self.net(z if self.full else z[:, -self.nstat:])
        return -torch.nn.functional.softplus(h) if self.penalty else h

    def _f(self, z: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        out = z @ (self.w if w is None else w) + self.bias
        return out if self.net is None else out + self._g(z)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, D) prior inputs → (N, 3) estimates, clipped to 1–5 like ``HumanPrior.predict_inputs``."""
        with torch.no_grad():
            return np.clip(self._f(torch.tensor((self._hinged(x) - self.mean) / self.scale)).numpy(), 1.0, 5.0)

    predict_inputs = predict  # HumanPrior's name: human.chain_order and synth_check score either


def score_setting(data: dict, setting: dict) -> dict:
    """One row: the setting's prior cross-fitted on fetv_dev's prompt folds, then fitted on every rated clip."""
    x, y, folds = data["x"], data["y"], data["folds"]
    pairs = data["train_pairs"]
    if setting.get("source"):
        sx, sg = data["source_pairs"]
        setting = {**setting, "chain_pairs": len(pairs[0])}
        pairs = (np.concatenate([pairs[0], sx]), np.concatenate([pairs[1], sg]))
    oof = np.zeros_like(y)
    for f in np.unique(folds):
        held = folds == f
        oof[held] = TorchPrior(x[~held], y[~held], *pairs, **setting).predict(x[held])
    overall = oof[:, :2].mean(1)
    prior = TorchPrior(x, y, *pairs, **setting)
    test, by_kind = chain_order(prior, data["test_chains"])
    car = prior.predict(data["carphone"])[:, :2].mean(1)
    return {"static": float(spearmanr(overall, y[:, 0])[0]), "temporal": float(spearmanr(overall, y[:, 1])[0]),
            "alignment": float(spearmanr(oof[:, 2], y[:, 2])[0]),
            "val_chains": chain_order(prior, data["val_chains"])[0], "test_chains": test, "by_kind": by_kind,
            "synth": synth_check(prior, data["synth"]), "carphone": [float(car[0]), float(car[1])]}


def load_data(args) -> dict:
    from prior_pairs import synth_inputs, synth_split

    from llmvqa.assessor import resolve_video
    from llmvqa.corpus.chains import build_chains
    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.evaluation.human import prior_data
    from llmvqa.model.prior import prior_input
    from llmvqa.train.human_data import chain_pairs, features_from_cache, load_rated, prompt_folds

    extractor, cache = FeatureExtractor(), FeatureCache(args.cache)
    clips = load_rated(args.ratings)
    x, y = prior_data([features_from_cache(None, args.cache)(c) for c in clips], clips)
    data = {"x": x, "y": y, "folds": prompt_folds([c.prompt for c in clips], args.folds, 0)}
    train = build_chains(extractor, args.synth, "train", args.train_chains, 0, cache=cache)
    data["train_pairs"] = chain_pairs(train, 1.0)  # margins per unit of strength gap; × the setting's margin
    for split in ("val", "test"):
        data[f"{split}_chains"] = build_chains(extractor, args.synth, split, 72, 0, cache=cache)
    data["carphone"] = np.stack([prior_input(extractor.extract(resolve_video(f"example:{n}")))
                                 for n in ("carphone_pristine", "carphone_distorted")])
    if args.source_pairs:
        from llmvqa.train.human_data import source_pairs

        data["source_pairs"] = source_pairs(synth_inputs(extractor, cache, args.synth, "train"), 1.0)
    data["synth"] = synth_split(extractor, cache, args.synth, "test")
    return data


def parse_setting(text: str) -> dict:
    """"linear" or "key=value,key=value" → keyword arguments of ``TorchPrior``."""
    if text == "linear":
        return {}
    try:
        return {k: (int(v) if k in INT_KEYS else float(v)) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise SystemExit(f"--grid {text!r}: expected linear or key=value,... (keys: see the module doc)") from None


def markdown(rows: list[dict], train_chains: int) -> str:
    lines = [f"Prior alone; fetv_dev held-out by prompt folds; {train_chains} train-split chains rank it; 72 val and "
             "72 test chains", "",
             "| setting | static | temporal | alignment | chain pairs val / test | synth test SRCC (all / right prompt) "
             "| carphone pristine / distorted | test chains by kind |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in r["by_kind"].items())
        lines.append(f"| {r['setting']} | {r['static']:.3f} | {r['temporal']:.3f} | {r['alignment']:.3f} | "
                     f"{r['val_chains']:.1%} / {r['test_chains']:.1%} | {r['synth']['srcc']:.3f} / "
                     f"{r['synth']['srcc_right_prompt']:.3f} | {r['carphone'][0]:.2f} / {r['carphone'][1]:.2f} | {kinds} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--train-chains", type=int, default=240)
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--grid", nargs="+", default=["linear", "hidden=16,decay=10,anchor=10", "hidden=16,decay=10",
                                                  "emb=10", "hinges_only=1", "hinges_only=1,weight=30"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    settings = [parse_setting(s) for s in args.grid]
    args.source_pairs = any(st.get("source") for st in settings)
    if not Path(args.synth).is_file():
        raise SystemExit(f"error: {args.synth}: no synth manifest; build it with `bash train.sh` (step 0)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    data = load_data(args)
    rows = []
    for text, setting in zip(args.grid, settings, strict=True):
        rows.append({"setting": text, **score_setting(data, setting)})
        print(json.dumps({k: rows[-1][k] for k in ("setting", "static", "temporal", "test_chains")}), file=sys.stderr)
    from llmvqa.evaluation.report import print_report

    print_report(markdown(rows, args.train_chains), args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
