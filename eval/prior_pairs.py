"""How hard should degradation chains rank the human prior? People against chains, on held-out data.

    python eval/prior_pairs.py --grid 0:0 3:0.25 3:0.35:0.2 3:0.5:0.2 --out eval/reports/prior_pairs

For each ``weight:margin[:outside[:source_weight:source_margin]]`` (0:0 = the ridge on the rated clips alone;
``outside``: the quantile of the range hinges, none when left out or negative; ``source_weight:source_margin``: the
synth train split's within-source pairs join, ``human_data.source_pairs``) the prior is fitted with
``HumanPrior.fit_ranked`` on fetv_dev plus the ranking pairs of ``--chains`` train-split chains, and scored on
- fetv_dev in prompt-grouped folds (each fold's clips estimated by a prior fitted without them): SRCC of the
  overall estimate (mean of static and temporal) with static and temporal, and of the alignment estimate;
- ``--test-chains`` test-split chains (content the chains never showed): the share of pairs where the stronger
  degradation gets the lower overall estimate, by kind; the same on ``--val-chains`` val-split chains, the ones
  to choose a setting on (chains whose degradation did not change the clip are left out of both);
- the carphone pair (``example:carphone_pristine`` against ``example:carphone_distorted``);
- the synth test split (``--synth-test``, on by default): SRCC of the overall estimate with the corpus' overall
  target, without the wrong-prompt clips, and inside a source (``human.synth_check``).
This is the prior alone, before the LLM reads it (eval/human_cv.py and eval/synth_chains.py score the model).
Chain features are cached (``--cache``), so a second run takes about two minutes per setting on 2 cores.
Each setting is ``llmvqa.evaluation.human.prior_setting``; the table ``human_report.prior_pairs_markdown``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from llmvqa.corpus.chains import DEFAULT_CHAINS, build_chains
from llmvqa.evaluation.datasets import WRONG_PROMPT
from llmvqa.evaluation.human import SynthCheck, prior_data, prior_setting
from llmvqa.evaluation.human_report import prior_pairs_markdown
from llmvqa.evaluation.report import save_report
from llmvqa.model.prior import DEFAULT_ALPHA, prior_input
from llmvqa.train.human_data import features_from_cache, load_rated, prompt_folds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="train-split chains that rank the prior")
    ap.add_argument("--test-chains", type=int, default=72, help="test-split chains it is checked on (6 per kind)")
    ap.add_argument("--val-chains", type=int, default=72, help="val-split chains to choose a setting on (0: none)")
    ap.add_argument("--grid", nargs="+", default=["0:0", "3:0.25", "3:0.35:0.2", "3:0.5:0.2"],
                    help="weight:margin[:outside[:source_weight:source_margin]] settings (outside: the prior's range "
                         "hinges, a quantile, none when left out or negative; source_*: the synth train split's "
                         "within-source pairs)")
    ap.add_argument("--no-synth-test", action="store_true", help="skip the synth test split's SRCC")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from llmvqa.assessor import resolve_video
    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.encoders.pipeline import FeatureExtractor

    extractor = FeatureExtractor()
    cache = FeatureCache(args.cache)
    clips = load_rated(args.ratings)
    features_of = features_from_cache(None, args.cache)
    x, y = prior_data([features_of(c) for c in clips], clips)
    folds = prompt_folds([c.prompt for c in clips], args.folds, 0)
    train = build_chains(extractor, args.synth, "train", args.chains, 0, cache=cache)
    test = build_chains(extractor, args.synth, "test", args.test_chains, 0, cache=cache)
    val = build_chains(extractor, args.synth, "val", args.val_chains, 0, cache=cache) if args.val_chains else []
    carphone = np.stack([prior_input(extractor.extract(resolve_video(f"example:{n}")))
                         for n in ("carphone_pristine", "carphone_distorted")])
    settings = [parse_setting(s) for s in args.grid]
    source_rows = synth_inputs(extractor, cache, args.synth, "train") if any(s[3] > 0 for s in settings) else []
    synth_test = None if args.no_synth_test else synth_split(extractor, cache, args.synth, "test")
    rows = []
    for setting, (weight, margin, outside, source_weight, source_margin) in zip(args.grid, settings, strict=True):
        rows.append(prior_setting(x, y, folds, args.alpha, weight, margin, train, test, carphone, outside, val,
                                  source_rows=source_rows, source_weight=source_weight, source_margin=source_margin,
                                  synth_test=synth_test))
        print(f"{setting} done", file=sys.stderr)
    md = prior_pairs_markdown(rows, chains=args.chains, clips=len(clips), folds=args.folds, test_chains=args.test_chains)
    print(md, end="")
    if args.out:
        save_report(args.out, rows, markdown=md)
    return 0


def parse_setting(text: str) -> tuple[float, float, float | None, float, float]:
    """"w:m[:outside[:sw:sm]]" → (weight, margin, outside or None, source weight, source margin)."""
    v = [float(p) for p in text.split(":")]
    if len(v) not in (2, 3, 5):
        raise SystemExit(f"--grid {text!r}: expected weight:margin[:outside[:source_weight:source_margin]]")
    outside = v[2] if len(v) > 2 and v[2] >= 0 else None
    return v[0], v[1], outside, (v[3] if len(v) == 5 else 0.0), (v[4] if len(v) == 5 else 0.0)


def synth_split(extractor, cache, manifest: str, split: str) -> SynthCheck:
    """One synth split as the prior check reads it (``human.SynthCheck``): prior inputs, the corpus' overall target,
    each clip's source, and whether it carries a wrong prompt."""
    rows = synth_inputs(extractor, cache, manifest, split)
    return SynthCheck(np.stack([x for _, x in rows]), np.array([float(r["scores"]["overall"]) for r, _ in rows]),
                      [str(r.get("source") or "") for r, _ in rows],
                      np.array([bool(r.get("twin_of")) or any(d["name"] == WRONG_PROMPT
                                                                for d in r.get("degradations") or []) for r, _ in rows]))


def synth_inputs(extractor, cache, manifest: str, split: str) -> list[tuple[dict, np.ndarray]]:
    """(record, prior input with the record's prompt) of every clip of one synth split (features cached)."""
    from pathlib import Path

    from llmvqa.corpus.manifest import read_manifest
    from llmvqa.encoders.cache import get_or_extract

    out = []
    for rec in read_manifest(manifest, split):
        f, _ = get_or_extract(extractor, Path(manifest).parent / rec["video"], cache)
        out.append((rec, prior_input(f, extractor.prompt_stats(f, rec.get("prompt") or None))))
    return out


if __name__ == "__main__":
    sys.exit(main())
