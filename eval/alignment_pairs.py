"""Does the prompt-alignment statistic itself tell a wrong prompt from the right one?

For each wrong-prompt pair of a synth corpus (``<corpus>/pairs.jsonl``: the same video with its own
prompt and with another source's), counts how often the wrong prompt scores strictly lower, per
split, before any model is involved. Three versions of the statistic:

    raw           cos(prompt, video basis), the default ``prompt_alignment``
    classes       raw − the prompt's mean cosine to the encoder's 1000 class names (a per-prompt
                  offset: some prompts sit close to every basis, "hub" prompts)
    train-videos  raw − the prompt's mean cosine to the bases of the train split's videos
    configured    the recipe's own ``prompt_alignment`` (its semantic encoder settings: offset,
                  alignment_scoring, scoring_top_k), exactly as training and rating compute it
    one_cut       the configured statistic with one cut fitted on the train pairs: the fraction of
                  pairs with right ≥ cut > wrong, i.e. the wrong prompt's *level* strictly lower for
                  a two-level rule on this statistic alone (the model card's wrong-prompt target; a
                  rule with more levels that rises with the statistic reaches at most `configured`)

The model's wrong-prompt check (eval/score_dataset.py) cannot do better than the signal it is
given, so this is its ceiling with the offline encoders (computed by ``llmvqa.evaluation.separation``).
Prompt statistics are never cached, so other settings are measured on the same cached features with
--override, e.g.

    python eval/alignment_pairs.py data/synth --config configs/mini.yaml
    python eval/alignment_pairs.py data/synth --config configs/mini.yaml \
        --override data.encoder.semantic.alignment_scoring=class_expectation
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", help="a synth corpus folder (manifest.jsonl, pairs.jsonl, videos/)")
    ap.add_argument("--config", default="configs/mini.yaml", help="recipe whose feature cache / encoder to use")
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                    help="recipe settings, e.g. data.encoder.semantic.alignment_scoring=class_expectation")
    ap.add_argument("--json", default="", help="also write the result here (and its Markdown beside it)")
    args = ap.parse_args(argv)

    from llmvqa.errors import LlmvqaError
    from llmvqa.evaluation.report import save_report
    from llmvqa.evaluation.separation import separation_markdown, separation_report
    from llmvqa.train.config import load_config

    try:
        out = separation_report(args.corpus, load_config(args.config, args.override).data)
    except (LlmvqaError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sc = out["semantic"]
    print(f"configured: alignment_scoring={sc['alignment_scoring']} scoring_top_k={sc['scoring_top_k']} "
          f"alignment_offset={sc['alignment_offset']} top_k={sc['top_k']}")
    print(f"one_cut: right prompt ≥ {out['cut']:.4f} > wrong prompt (the configured statistic; cut fitted on "
          "the train pairs) — the most a two-level rule on this statistic can separate; with any number of "
          "levels, at most the `configured` fraction")
    table = separation_markdown(out["splits"])
    print(table)
    if args.json:
        save_report(args.json, out["splits"], markdown=table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
