"""How well the dimension probe alone tells the levels apart, and how much of it the model's answers keep.

For every clip of a synth split (features from the cache, extracted when missing): the reference level of each
dimension (the corpus' 0–1 score in five equal bins), the level of the checkpoint's dimension probe estimate
(``dimension_probe.safetensors``), and with ``--model-answers`` the level the model answers (score mode, the
probe estimate read in the prior slot). Prints balanced accuracy and its margin over always-the-majority-level
per dimension (issue 17 asks ≥ +0.15).

    python eval/dimension_probe.py --model models/llmvqa-mini --synth data/synth/manifest.jsonl --split test \\
        --model-answers --out eval/reports/dimension_probe
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/llmvqa-mini")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--model-answers", action="store_true", help="also score the model's dimension answers")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from llmvqa.encoders.cache import FeatureCache, get_or_extract
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.evaluation.datasets import reference_levels
    from llmvqa.evaluation.suite import dimension_accuracy
    from llmvqa.levels import level_of_score
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.prompts import aspect_query

    probe = DimensionProbe.load(args.model)
    if probe is None:
        print(f"{args.model} has no dimension probe (run llmvqa tune-dimensions)", file=sys.stderr)
        return 2
    encoder = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8")).get("encoder")
    extractor = FeatureExtractor(EncoderConfig.from_dict(encoder) if encoder else None)
    cache = FeatureCache(args.cache)
    model = None
    if args.model_answers:
        from llmvqa.model.modeling import QualityLLM

        model = QualityLLM.from_pretrained(args.model)
    from llmvqa.dimensions import load_dimensions

    names = {k: d.name for k, d in load_dimensions().dimensions.items()}  # asked by name, as `rate` asks
    manifest = Path(args.synth)
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == args.split]
    ref, by_probe, by_model = [], [], []
    for r in rows:
        f, _ = get_or_extract(extractor, manifest.parent / r["video"], cache)
        prompt = r.get("prompt") or None
        ps = {k: float(v) for k, v in extractor.prompt_stats(f, prompt).items()} if prompt else {}
        ref.append(reference_levels(r["scores"]))
        est = probe.estimates(f, ps)
        by_probe.append({k: level_of_score(v) for k, v in est.items()})
        if model is not None:
            queries = [aspect_query(f"dimension:{names[k]}", prompt, model.cfg.prompt_version) for k in probe.dimensions]
            scores = model.score_queries(f, queries, prompt=prompt, prompt_stats=ps)
            by_model.append({k: level_of_score(s.score) for k, s in zip(probe.dimensions, scores, strict=True)})
    results = {"probe": dimension_accuracy(by_probe, ref)}
    if by_model:
        results["model"] = dimension_accuracy(by_model, ref)
    lines = [f"Dimension levels on the synth {args.split} split ({len(rows)} clips): balanced accuracy "
             "(margin over always-the-majority-level)", "",
             "| dimension | probe alone | " + ("model's answer |" if by_model else ""),
             "|---|---|" + ("---|" if by_model else "")]
    for k in probe.dimensions:
        cells = []
        for who in results:
            a = results[who][k]
            cells.append(f"{a['balanced_accuracy']:.3f} ({a['balanced_accuracy'] - a['majority_balanced']:+.3f})")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
