"""Does a model still rank synthetic degradations? Degradation chains (``llmvqa.corpus.chains``) scored, and
the carphone pair (``eval/synth_chains.py``).

A chain is one clip at growing strengths of one degradation; ``chain_orders`` counts, per degradation kind,
the pairs of a chain where the stronger degradation gets the lower overall score, and the lower score of the
group the degradation hurts. ``carphone_pair`` rates example:carphone_pristine and _distorted (overall,
technical). ``chains_report`` puts them together, ``chains_markdown`` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def chain_orders(model, chains: Sequence, version: str = "v1") -> dict[str, list[int]]:
    """{degradation kind: [overall pairs ordered, overall pairs, group pairs ordered, group pairs]} over
    ``chains`` (``Chain`` s: ``features`` in growing strength, ``degradation``, ``group``), scored by
    ``model.score_queries`` asked the overall level and the level of the chain's group, without a prompt.
    A chain whose degradation did not change the clip (``corpus.chains.changes``) has nothing to rank: left out."""
    from llmvqa.corpus.chains import ordered_pairs, ranked_chains
    from llmvqa.prompts import aspect_query

    by_kind: dict[str, list[int]] = {}
    for ch in ranked_chains(list(chains)):
        queries = [aspect_query("overall", None, version), aspect_query(f"group:{ch.group}", None, version)]
        scores = [model.score_queries(f, queries) for f in ch.features]
        counts = (*ordered_pairs([s[0].score for s in scores]), *ordered_pairs([s[1].score for s in scores]))
        row = by_kind.setdefault(ch.degradation, [0, 0, 0, 0])
        for i, c in enumerate(counts):
            row[i] += c
    return by_kind


def carphone_pair(assessor) -> dict:
    """Overall and technical scores of example:carphone_pristine and example:carphone_distorted (no explanation)."""
    out = {}
    for name in ("pristine", "distorted"):
        r = assessor.rate(f"example:carphone_{name}", explain=False)
        out[name] = {"overall": r.score, "technical": r.groups["technical"].score}
    return out


def chains_report(by_kind: Mapping[str, Sequence[int]], carphone: Mapping | None = None, **head) -> dict:
    """``head`` (model, split, chains, ...), the shares of ordered pairs over all chains ("overall_ordered",
    "group_ordered") and per kind ("by_kind": overall, group, pairs), and ``carphone`` when given."""
    tot = [sum(r[i] for r in by_kind.values()) for i in range(4)]
    report = {**head, "overall_ordered": tot[0] / tot[1], "group_ordered": tot[2] / tot[3],
              "by_kind": {k: {"overall": v[0] / v[1], "group": v[2] / v[3], "pairs": v[1]} for k, v in sorted(by_kind.items())}}
    if carphone is not None:
        report["carphone"] = dict(carphone)
    return report


def chains_markdown(report: Mapping) -> str:
    """The summary line, a table per degradation kind and the carphone line of a ``chains_report``."""
    lines = [f"{report.get('chains', '?')} chains on the {report.get('split', '?')} split: stronger degradation "
             f"scores lower in {report['overall_ordered']:.1%} of pairs (overall), {report['group_ordered']:.1%} "
             "(its group)" + (f"; {report['unchanged']} more left out: the degradation did not change the clip"
                                if report.get("unchanged") else ""), "| degradation | overall | group | pairs |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['overall']:.1%} | {v['group']:.1%} | {v['pairs']} |" for k, v in report["by_kind"].items()]
    c = report.get("carphone")
    if c:
        lines.append(f"carphone pristine: overall {c['pristine']['overall']:.2f}, technical {c['pristine']['technical']:.2f}; "
                     f"distorted: overall {c['distorted']['overall']:.2f}, technical {c['distorted']['technical']:.2f}")
    return "\n".join(lines)


__all__ = ["carphone_pair", "chain_orders", "chains_markdown", "chains_report"]
