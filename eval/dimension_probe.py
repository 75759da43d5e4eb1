"""How well the dimension probe alone tells the levels apart, and how much of it the model's answers keep.

For every clip of a synth split (features from the cache, extracted when missing): the reference level of each
dimension (the corpus' 0–1 score in five equal bins), the level of the checkpoint's dimension probe estimate
(``dimension_probe.safetensors``), and with ``--model-answers`` the level the model answers (score mode, the
probe estimate read in the prior slot); ``--no-prompt`` asks without the clips' text prompts. Prints balanced
accuracy and its margin over always-the-majority-level per dimension (issue 17 asks ≥ +0.15).

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
    ap.add_argument("--no-prompt", action="store_true",
                    help="ask without the clips' text prompts, as `llmvqa rate clip.mp4` asks when given none")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.evaluation.items import synth_rows
    from llmvqa.evaluation.probe import probe_levels, probe_markdown, probe_results
    from llmvqa.evaluation.report import save_report
    from llmvqa.model.dimension_probe import DimensionProbe

    probe = DimensionProbe.load(args.model)
    if probe is None:
        print(f"{args.model} has no dimension probe (run llmvqa tune-dimensions)", file=sys.stderr)
        return 2
    encoder = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8")).get("encoder")
    extractor = FeatureExtractor(EncoderConfig.from_dict(encoder) if encoder else None)
    model = None
    if args.model_answers:
        from llmvqa.model.modeling import QualityLLM

        model = QualityLLM.from_pretrained(args.model)
    rows = synth_rows(args.synth, args.split)
    if args.no_prompt:
        rows = [{**r, "prompt": None} for r in rows]
    levels = probe_levels(probe, extractor, rows, Path(args.synth).parent, FeatureCache(args.cache), model)
    results = probe_results(*levels)
    split = f"{args.split} (asked without prompts)" if args.no_prompt else args.split
    text = probe_markdown(results, probe.dimensions, split, len(rows))
    print(text)
    if args.out:
        save_report(args.out, results, markdown=text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
