"""Add the feature-version-4 statistics to a version-3 feature cache without running the models.

Version 4 (``llmvqa.encoders.config.FEATURE_VERSION``) only adds the technical encoder's ``PROBE_STATISTICS``
(highlight_cast, channel_balance): tokens, series and every other statistic are what version 3 stored. For each
version-3 entry of the given encoder settings whose video is still where it was extracted (``meta.path``) with the
same content, this decodes the same frames, measures the technical statistics, checks that the ones version 3
stored come out the same (else the entry is skipped: extract it again), and writes a version-4 entry beside it.

    python scripts/upgrade_feature_cache.py --cache cache/features --model models/llmvqa-mini

Prints how many entries were upgraded, skipped (with why) and already present. Entries it cannot upgrade are
extracted again the next time a command needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="cache/features", help="feature cache folder")
    ap.add_argument("--model", default=None, help="checkpoint whose config.json names the encoder settings "
                                                   "(default: the default settings)")
    ap.add_argument("--tolerance", type=float, default=1e-6, help="largest relative change of a stored statistic")
    args = ap.parse_args(argv)

    import llmvqa.encoders.config as config
    from llmvqa.encoders.cache import FeatureCache, content_hash, load_features
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.technical import TechnicalEncoder
    from llmvqa.errors import LlmvqaError
    from llmvqa.statistics import PROBE_STATISTICS
    from llmvqa.video.loader import load_clip

    if config.FEATURE_VERSION != "4":
        print(f"this script upgrades version 3 to 4; the encoders are at version {config.FEATURE_VERSION}",
              file=sys.stderr)
        return 2
    if not Path(args.cache).is_dir():
        print(f"{args.cache}: no such cache folder; pass the folder `llmvqa features --out` or training wrote",
              file=sys.stderr)
        return 2
    encoder = None
    if args.model:
        config_file = Path(args.model) / "config.json"
        try:
            encoder = json.loads(config_file.read_text(encoding="utf-8")).get("encoder")
        except (OSError, ValueError, AttributeError) as err:
            print(f"{config_file}: cannot read the model's encoder settings ({type(err).__name__}); pass the folder "
                  "of a llmvqa model (it holds config.json) or leave --model out for the default settings",
                  file=sys.stderr)
            return 2
    cfg = EncoderConfig.from_dict(encoder) if encoder else EncoderConfig()
    new_key = cfg.key()
    config.FEATURE_VERSION = "3"
    old_key = cfg.key()
    config.FEATURE_VERSION = "4"
    cache = FeatureCache(args.cache)
    technical = TechnicalEncoder(cfg.technical)
    added = {s.name for s in PROBE_STATISTICS}
    done = present = 0
    skipped: dict[str, int] = {}
    for file in sorted(Path(args.cache).glob(f"*-{old_key}.safetensors")):
        def skip(why: str) -> None:
            skipped[why] = skipped.get(why, 0) + 1

        try:
            feats = load_features(file)
        except (OSError, ValueError, KeyError) as err:
            skip(f"unreadable ({type(err).__name__})")
            continue
        digest, video = feats.meta.get("content_hash", ""), Path(feats.meta.get("path", ""))
        if cache.path_for(digest, new_key).is_file():
            present += 1
            continue
        if not video.exists():
            skip("video no longer at its path")
            continue
        try:
            if content_hash(video) != digest:
                skip("video changed since extraction")
                continue
            clip = load_clip(video, nframes=cfg.nframes, limits=cfg.limits)
        except LlmvqaError:
            skip("video no longer loads")
            continue
        stats = technical.stats_only(clip)
        if any(abs(stats[k] - v) > args.tolerance * max(1.0, abs(v)) for k, v in feats.stats.items() if k in stats):
            skip("a stored statistic comes out different")
            continue
        feats.stats.update({k: stats[k] for k in added})
        feats.meta["encoder_key"] = new_key
        cache.put(feats)
        done += 1
    print(f"upgraded {done}, already present {present}, skipped {sum(skipped.values())}"
          + "".join(f"\n  {n} {why}" for why, n in sorted(skipped.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
