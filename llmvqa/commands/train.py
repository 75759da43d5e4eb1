"""`llmvqa train --config configs/mini.yaml [--stage 1|2|3|all] [--resume] [--override key=value ...]`.

Progressive tuning (Score2Instruct): stage 1 trains the projectors on dimension → level
pairs, stage 2 LoRA + projectors on rating instructions with CE + PLCC/rank score loss,
stage 3 the full instruction mix. Each stage starts from the previous stage's checkpoint.
Multi-GPU: launch through `deepspeed --num_gpus N -m llmvqa.cli train ...` or
`accelerate launch -m llmvqa.cli train ...` (train.sh does it for you).
"""

from __future__ import annotations

import argparse
import dataclasses

from llmvqa.train.config import DataConfig, StageConfig, TrainConfig


def _field_help() -> str:
    """The documented fields of a recipe (dataclass docstrings) for --help."""
    from llmvqa.train.config import field_docs

    lines = ["recipe fields (YAML; --override section.field=value):"]
    for section, cls in (("", TrainConfig), ("data.", DataConfig), ("stageN.", StageConfig)):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("data", "stage1", "stage2", "stage3"):
                continue
            lines.append(f"  {section}{f.name}: {docs.get(f.name, '')}")
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="progressive training (stages 1–3) from a YAML recipe",
        description=__doc__, epilog=_field_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML recipe, e.g. configs/mini.yaml")
    p.add_argument("--stage", default="all", choices=["1", "2", "3", "all"], help="stage to run (default: all, in order)")
    p.add_argument("--resume", action="store_true", help="skip finished stages and continue from the last checkpoint")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                   help="set recipe fields by dotted path, e.g. stage2.lr=1e-4 model.lora_r=8")
    p.add_argument("--fill-cache", action="store_true", help="only extract and cache the features of every record's video")
    p.add_argument("--quiet", action="store_true", help="no progress bars (log lines instead)")
    p.set_defaults(func=run)


def run(args) -> int:
    from llmvqa.train.config import load_config
    from llmvqa.train.data import CachedFeatures, read_records
    from llmvqa.train.trainer import Trainer

    cfg = load_config(args.config, args.override)
    if args.fill_cache:
        n = CachedFeatures(cfg.data).fill(read_records(cfg.data), progress=not args.quiet)
        print(f"feature cache {cfg.data.feature_cache}: {n} videos ready")
        return 0
    stages = (1, 2, 3) if args.stage == "all" else (int(args.stage),)
    final = Trainer(cfg, progress=not args.quiet).run(stages, resume=args.resume)
    print(f"checkpoint: {final}")
    return 0
