"""Validate generated justifications and chat answers, and time them.

Rates every clip with explanation and runs the validator (``llmvqa.evaluation.justification.violations``)
over the text: a stated level that differs from the reported one, two levels for one aspect, a
level word outside a level sentence, no closing overall sentence, a time that no measurement
states. With ``--chat``, also asks the four questions of issue 18 per clip and checks each answer
(levels as above, times grounded in the evidence). Prints the violation counts and the seconds
per rate-with-explanation and per chat answer (model loaded; features extracted inside the timing).

    python eval/justification_check.py --videos ../shared/data/fetv_dev --limit 72 --out eval/reports/justification
    python eval/justification_check.py --synth data/synth/manifest.jsonl --limit 40 --chat
    python eval/justification_check.py --bench-clip        # speed on a 4 s 512² clip (bikes, resized)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = ("which part looks worst?", "why is the motion poor?", "is there any flicker in the first second?",
             "how could the generator improve this video?")


def fetv_items(folder: Path) -> list[tuple[str, str | None]]:
    from llmvqa.train.human import load_rated

    return [(str(c.path), c.prompt or None) for c in load_rated(folder)]


def synth_items(manifest: Path, split: str) -> list[tuple[str, str | None]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [(str(manifest.parent / r["video"]), r.get("prompt") or None) for r in rows if r.get("split") == split]


def bench_clip(tmp: Path) -> tuple[str, None]:
    """4 s of example:bikes resized to 512² (the clip issue 18's speed target is stated for)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from defect_localization import load_segment

    from llmvqa.video.writer import write_video

    frames, fps = load_segment("bikes", 3.0)
    return str(write_video(tmp / "bikes_4s_512.mp4", frames, fps=fps)), None


def reference_seconds(assessor) -> float:
    """Seconds for a fixed job on this machine: 64 greedy tokens of the LM's plain ``generate`` (full
    vocabulary, no plan) after example:bikes' explain prompt. Machines and their load differ; the rate and
    chat timings can be read against it."""
    import torch

    from llmvqa.model.collate import encode_conversation

    m = assessor.model
    f = assessor.features("example:bikes")
    ex = encode_conversation(m._user_turn(None, "explain", None), f, m.template, prompt_stats=m.input_stats(f, None),
                             open_answer="")
    batch = m.collator([ex])
    with torch.no_grad():
        emb = m.embed_inputs(batch["input_ids"], batch)
        t = time.perf_counter()
        m.lm.generate(inputs_embeds=emb, attention_mask=batch["attention_mask"], max_new_tokens=64,
                      min_new_tokens=64, do_sample=False)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/llmvqa-mini")
    ap.add_argument("--videos", default=None, help="a fetv_dev-style folder (labels.csv with video, prompt)")
    ap.add_argument("--synth", default=None, help="a synth manifest.jsonl (its --split clips)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bench-clip", action="store_true", help="time a 4 s 512² clip (5 repeats)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--chat", action="store_true", help="also ask the four chat questions per clip")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from llmvqa.assessor import Assessor
    from llmvqa.evaluation.justification import violations
    from llmvqa.justify import question_window

    assessor = Assessor.from_pretrained(args.model)
    tmp = Path(tempfile.mkdtemp())
    if args.bench_clip:
        items = [bench_clip(tmp)] * 5
    elif args.videos:
        items = fetv_items(Path(args.videos))
    elif args.synth:
        items = synth_items(Path(args.synth), args.split)
    else:
        ap.error("give --videos, --synth or --bench-clip")
    if args.limit and args.synth:  # a spread sample of the split, not its first sources
        import random

        random.Random(0).shuffle(items)
    items = items[: args.limit]
    rate_s, chat_s, rows = [], [], []
    n_viol = n_chat_viol = 0
    for i, (video, prompt) in enumerate(items):
        if args.bench_clip:
            assessor.clear_features()
        t0 = time.perf_counter()
        try:
            r = assessor.rate(video, prompt=prompt, explain=True)
        except Exception as err:  # recorded, the run goes on
            rows.append({"video": video, "error": f"{type(err).__name__}: {err}"})
            continue
        rate_s.append(time.perf_counter() - t0)
        levels = {"overall": r.level, **{k: v.level for k, v in r.groups.items()},
                  **{k: v.level for k, v in r.dimensions.items()}}
        cites = [e["text"] for e in r.evidence]
        v = violations(r.justification or "", levels, cites)
        n_viol += len(v)
        row = {"video": video, "score": round(r.score, 3), "justification": r.justification, "violations": v,
               "seconds": round(rate_s[-1], 2), "evidence": cites}
        if args.chat and (not args.bench_clip or i == 0):
            history, answers = [], []
            for q in QUESTIONS:
                history.append({"role": "user", "content": q})
                t = time.perf_counter()
                a = assessor.chat(video, list(history), prompt=prompt)
                chat_s.append(time.perf_counter() - t)
                history.append({"role": "assistant", "content": a})
                window = question_window(q, float(r.meta.get("duration") or 0) or 1e9)
                cv = violations(a, levels, cites, closes_with_overall=False, allowed_times=window[:2] if window else ())
                n_chat_viol += len(cv)
                answers.append({"question": q, "answer": a, "violations": cv, "seconds": round(chat_s[-1], 2)})
            row["chat"] = answers
        rows.append(row)
        print(f"[{i + 1}/{len(items)}] {Path(video).name} {r.score:.2f} {rate_s[-1]:.1f}s violations={len(v)}",
              file=sys.stderr)
    report = {
        "model": args.model,
        "reference_generate_64_s": round(reference_seconds(assessor), 2) if args.bench_clip else None,
        "clips": len(rate_s),
        "failed": sum("error" in r for r in rows),
        "justification_violations": n_viol,
        "clips_with_violations": sum(bool(r.get("violations")) for r in rows),
        "chat_answers": len(chat_s),
        "chat_violations": n_chat_viol,
        "rate_explain_s": {"median": round(statistics.median(rate_s), 2), "max": round(max(rate_s), 2)} if rate_s else None,
        "chat_answer_s": {"median": round(statistics.median(chat_s), 2), "max": round(max(chat_s), 2)} if chat_s else None,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = "bench" if args.bench_clip else ("fetv" if args.videos else f"synth_{args.split}")
        (out / f"report_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        with (out / f"clips_{name}.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
