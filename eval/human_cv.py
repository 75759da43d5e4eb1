"""Does the model rank AI-generated video the way people do? Folds grouped by prompt.

For each fold, ``llmvqa.train.human.calibrate`` fits the prior and trains the scorer on the other
folds' clips only; the fold's clips are then scored by that model (overall, the three groups,
prompt_alignment). In the same run and on the same folds: the base checkpoint without calibration
("before"), the ridge prior alone, and BRISQUE (LIVE-trained, nothing fitted; needs the model files of
``pip install 'llmvqa[brisque]'``). Prints one table; writes report.json and report.md to --out.

    python eval/human_cv.py --base models/llmvqa-mini --ratings ../shared/data/fetv_dev --out eval/reports/human_cv
    python eval/human_cv.py --folds 3 --steps 4 --out /tmp/cv    # quick check of the plumbing
    python eval/human_cv.py --from-report eval/reports/human_cv/report.json --write-interval models/llmvqa-mini

Every run also derives the overall score's 80% interval from the held-out errors
(``evaluation.human.heldout_interval``: the 80% quantile of |held-out score − human mean|, with its
coverage estimated fold by fold); ``--write-interval DIR`` writes it to DIR/interval.json, the interval
``llmvqa rate`` reports. ``--from-report`` does that from an earlier run's predictions without re-running.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llmvqa.corpus.chains import DEFAULT_CHAINS
from llmvqa.evaluation.human import (
    REAL_SOURCE,
    agreement,
    coverage,
    heldout_interval,
    human_table,
    real_outranks,
    within_source,
)
from llmvqa.model.prior import PRIOR_TARGETS, HumanPrior, prior_input
from llmvqa.train.human import (
    CalibrationConfig,
    calibrate,
    chain_pairs,
    features_from_cache,
    load_rated,
    prompt_folds,
)

ASPECT_KEY = {"overall": "overall", "group:technical": "technical", "group:motion": "motion",
              "group:semantic": "semantic", "dimension:prompt_alignment": "prompt_alignment"}


def score_clips(model, clips, feats) -> dict[str, list[float]]:
    """{aspect key: scores} of the clips through the model's score_queries (scorer where it reads)."""
    from llmvqa.prompts import aspect_query

    out: dict[str, list[float]] = {k: [] for k in ASPECT_KEY.values()}
    for c, (f, ps) in zip(clips, feats, strict=True):
        queries = [aspect_query(a, c.prompt or None, model.cfg.prompt_version) for a in ASPECT_KEY]
        for a, sc in zip(ASPECT_KEY, model.score_queries(f, queries, prompt=c.prompt or None, prompt_stats=ps),
                         strict=True):
            out[ASPECT_KEY[a]].append(sc.score)
    return out


def summarize(name: str, pred: dict, clips, half_width=None) -> dict:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="models/llmvqa-mini", help="checkpoint whose main adapter starts every fold")
    ap.add_argument("--ratings", default="../shared/data/fetv_dev", help="folder with labels.csv and clips/")
    ap.add_argument("--folds", type=int, default=6, help="prompt-grouped folds (default 6)")
    ap.add_argument("--steps", type=int, default=CalibrationConfig.steps, help="calibration steps per fold")
    ap.add_argument("--synth", default=None, help="synth manifest.jsonl: degradation chains of its train split join "
                    "every fold's calibration (as llmvqa calibrate --synth)")
    ap.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help=f"chains built from --synth (default {DEFAULT_CHAINS})")
    ap.add_argument("--cache", default="cache/features", help="feature cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="eval/reports/human_cv")
    ap.add_argument("--write-interval", default=None, metavar="MODEL_DIR",
                    help="write the interval from the held-out errors to MODEL_DIR/interval.json")
    ap.add_argument("--from-report", default=None, metavar="REPORT_JSON",
                    help="take the held-out predictions of an earlier run (with --write-interval) instead of running")
    args = ap.parse_args(argv)
    if args.from_report:
        return interval_from_report(Path(args.from_report), args.ratings, args.write_interval)

    from llmvqa.model.modeling import QualityLLM

    base = Path(args.base)
    meta = json.loads((base / "config.json").read_text(encoding="utf-8"))
    clips = load_rated(args.ratings)
    features_of = features_from_cache(meta.get("encoder"), args.cache)
    feats = [features_of(c) for c in clips]
    folds = prompt_folds([c.prompt for c in clips], args.folds, args.seed)
    chains = pairs = None
    if args.synth:
        from llmvqa.corpus.chains import build_chains
        from llmvqa.encoders.cache import FeatureCache
        from llmvqa.encoders.config import EncoderConfig
        from llmvqa.encoders.pipeline import FeatureExtractor

        enc = meta.get("encoder")
        chains = build_chains(FeatureExtractor(EncoderConfig.from_dict(enc) if enc else None), args.synth, "train",
                              args.chains, args.seed, cache=FeatureCache(args.cache))
        pairs = chain_pairs(chains, CalibrationConfig.prior_margin)
    n = len(clips)
    t0 = time.perf_counter()

    before = QualityLLM.from_pretrained(base, scorer=False)
    before.prior = None
    pred_before = score_clips(before, clips, feats)
    del before

    x = np.stack([prior_input(f, ps) for f, ps in feats])
    y = np.array([[c.ratings[t] for t in PRIOR_TARGETS] for c in clips])
    cfg = CalibrationConfig(steps=args.steps, seed=args.seed)
    pred_model = {k: [0.0] * n for k in ASPECT_KEY.values()}
    pred_ridge = {k: [0.0] * n for k in ("overall", "technical", "motion", "semantic", "prompt_alignment")}
    pred_ranked = {k: [0.0] * n for k in pred_ridge} if pairs is not None else None
    half = np.zeros(n)
    from llmvqa.evaluation import brisque

    # BRISQUE (LIVE-trained, fixed: nothing fitted per fold); lower BRISQUE = better, so its negative
    pred_brisque = [-brisque.clip_brisque(c.path) for c in clips] if brisque.available() else None
    for f in range(int(folds.max()) + 1):
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f)
        prior = HumanPrior.fit(x[train], y[train], cfg.alpha)
        est = prior.predict_inputs(x[test])  # (n_test, 3)
        put_estimates(pred_ridge, test, est)
        if pairs is not None:
            ranked = HumanPrior.fit_ranked(x[train], y[train], *pairs, alpha=cfg.alpha, weight=cfg.pair_weight)
            put_estimates(pred_ranked, test, ranked.predict_inputs(x[test]))
        with tempfile.TemporaryDirectory() as tmp:
            out = calibrate(base, [clips[i] for i in train], features_of, Path(tmp) / "model", cfg,
                            log=lambda m: print(m, file=sys.stderr), chains=chains)
            model = QualityLLM.from_pretrained(out)
            scored = score_clips(model, [clips[i] for i in test], [feats[i] for i in test])
            half[test] = float(model.interval["half_width"]) if model.interval else np.nan
            del model
        for k, v in scored.items():
            for j, i in enumerate(test):
                pred_model[k][i] = v[j]
        from llmvqa.evaluation.metrics import srcc

        hum = human_table([clips[i].ratings for i in test])
        print(f"fold {f + 1}/{folds.max() + 1} done ({time.perf_counter() - t0:.0f} s): overall~static "
              f"{srcc(scored['overall'], hum['static']):.3f}, ~temporal {srcc(scored['overall'], hum['temporal']):.3f}; "
              f"ridge {srcc(est[:, :2].mean(1), hum['overall']):.3f}", file=sys.stderr)

    rows = [summarize("llmvqa (calibrated, held-out folds)", pred_model, clips, half),
            summarize("before: base checkpoint, no calibration", pred_before, clips),
            summarize("ridge prior alone (same folds)", pred_ridge, clips)]
    if pred_ranked is not None:
        rows.append(summarize(f"ranked prior alone ({len(chains)} chains; same folds)", pred_ranked, clips))
    if pred_brisque is not None:
        rows.append(summarize("BRISQUE (LIVE SVM, −score; nothing fitted)", {"overall": pred_brisque}, clips))
    interval = heldout_interval(pred_model["overall"], human_table([c.ratings for c in clips])["overall"], folds)
    if args.write_interval:
        write_interval(Path(args.write_interval), interval, args)
    report = {"interval": interval, "ratings": str(args.ratings), "clips": n, "folds": int(folds.max()) + 1,
              "grouped_by": "prompt",
              "steps": args.steps, "chains": len(chains or []), "seconds": time.perf_counter() - t0, "rows": rows,
              "predictions": {"names": [c.name for c in clips], "model": pred_model, "ridge": pred_ridge,
                              "before": pred_before, "ranked": pred_ranked, "brisque": pred_brisque, "fold": folds.tolist(), "half_width": half.tolist()}}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    md = markdown(report)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


def put_estimates(pred: dict, rows, est: np.ndarray) -> None:
    """Store prior estimates (static, temporal, alignment per row) as the aspects they stand for."""
    for j, i in enumerate(rows):
        s, t, a = est[j]
        pred["overall"][i] = (s + t) / 2
        pred["technical"][i], pred["motion"][i] = s, t
        pred["semantic"][i] = pred["prompt_alignment"][i] = a


def write_interval(model_dir: Path, interval: dict, args) -> None:
    how = (f"{interval['coverage']:.0%} quantile of the calibrated model's held-out |overall score - human mean| "
           f"on {interval['n']} clips of {args.ratings}, {interval['folds']} folds grouped by prompt (eval/human_cv.py); "
           f"coverage expected on new clips (nested by fold): {interval['expected_coverage']:.1%}")
    data = {"coverage": interval["coverage"], "half_width": interval["half_width"], "fitted_on": interval["n"],
            "expected_coverage": interval["expected_coverage"], "how": how}
    (model_dir / "interval.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {model_dir / 'interval.json'}: ±{interval['half_width']:.3f}, expected coverage "
          f"{interval['expected_coverage']:.1%}", file=sys.stderr)


def interval_from_report(report_path: Path, ratings: str, model_dir: str | None) -> int:
    report = json.loads(report_path.read_text(encoding="utf-8"))
    pred = report["predictions"]
    by_name = {c.name: c for c in load_rated(ratings)}
    clips = [by_name[n] for n in pred["names"]]
    folds = pred.get("fold") or prompt_folds([c.prompt for c in clips], report["folds"]).tolist()
    interval = heldout_interval(pred["model"]["overall"], human_table([c.ratings for c in clips])["overall"], folds)
    print(json.dumps(interval, indent=2))
    if model_dir:
        write_interval(Path(model_dir), interval, argparse.Namespace(ratings=ratings))
    return 0


def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def markdown(report: dict) -> str:
    checks = ["overall~static", "overall~temporal", "overall~mean", "technical~static", "motion~temporal",
              "semantic~alignment", "prompt_alignment~alignment"]
    lines = [f"# Agreement with people: {report['ratings']} ({report['clips']} clips, {report['folds']} folds "
             f"grouped by {report['grouped_by']}, {report['steps']} calibration steps per fold)", "",
             "SRCC of each reported aspect with the human rating it stands for (overall rating = mean of static "
             "and temporal); every clip scored by a model calibrated without its fold.", "",
             "| | " + " | ".join(checks) + " | within-generator static / temporal | real > generated | interval coverage |",
             "|---" * (len(checks) + 4) + "|"]
    for row in report["rows"]:
        a = row["agreement"]
        cells = [_f(a[c]["srcc"]) if c in a else "—" for c in checks]
        wg = row.get("within_generator")
        wg_s = f"{_f(wg['static']['mean_generated'])} / {_f(wg['temporal']['mean_generated'])}" if wg else "—"
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {wg_s} | {_f(row.get('real_outranks_generated'))}"
                     f" | {_f(row.get('coverage'))} |")
    lines += ["", f"Within-generator SRCC is the mean over the generated sources (not {REAL_SOURCE}); "
              "interval coverage: share of clips whose human overall rating lies in the stated 80% interval "
              "(each fold's model states its own, from its calibration)."]
    iv = report.get("interval")
    if iv:
        lines += ["", f"Interval from the held-out errors: ±{iv['half_width']:.3f} for {iv['coverage']:.0%}; expected "
                      f"coverage on new clips (each fold against the other folds' quantile): {iv['expected_coverage']:.1%}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
