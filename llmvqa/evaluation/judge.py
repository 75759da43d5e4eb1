"""Optional LLM judge for justifications: correctness, context, detail, temporal (0–5 each).

Any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, OpenAI ...):
``--judge-url http://host:8000/v1 --judge-model NAME``, key from ``LLMVQA_JUDGE_API_KEY``.
Only used when configured. The grading prompt is ``prompts/v1/judge.txt``; the reply must
contain a JSON object with the four criteria.

    >>> judge = Judge(JudgeConfig(url="http://localhost:8000/v1", model="qwen2.5-7b-instruct"))
    >>> judge(question, reference, answer)
    {'correctness': 4.0, 'context': 5.0, 'detail': 3.0, 'temporal': 2.0}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from llmvqa.errors import ConfigError, ModelError
from llmvqa.prompts import load_text

CRITERIA = ("correctness", "context", "detail", "temporal")
API_KEY_ENV = "LLMVQA_JUDGE_API_KEY"
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge model is served."""

    url: str
    """Base URL of the OpenAI-compatible API (…/v1); /chat/completions is appended."""
    model: str
    """Model name the endpoint serves."""
    api_key: str | None = None
    """Bearer token (default: $LLMVQA_JUDGE_API_KEY; none sent when unset)."""
    timeout_s: float = 60.0
    """Seconds to wait for one reply."""
    max_tokens: int = 128
    """Reply length limit."""
    prompt_version: str = "v1"
    """prompts/<version>/judge.txt is the grading prompt."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError("--judge-url", f"must be an http(s) URL, got {self.url!r}", "e.g. http://localhost:8000/v1")
        if not self.model:
            raise ConfigError("--judge-model", "is empty", "name the model the endpoint serves")
        if self.timeout_s <= 0:
            raise ConfigError("judge timeout", f"must be > 0, got {self.timeout_s}", "pass a positive number of seconds")


def config_from(url: str | None, model: str | None, timeout_s: float = 60.0,
                env: Mapping[str, str] | None = None) -> JudgeConfig | None:
    """A JudgeConfig when both url and model are given, else None (no judge)."""
    if not url and not model:
        return None
    if not (url and model):
        raise ConfigError("--judge-url/--judge-model", "only one of the two is given", "pass both to use an LLM judge")
    env = os.environ if env is None else env
    return JudgeConfig(url=url, model=model, api_key=env.get(API_KEY_ENV) or None, timeout_s=timeout_s)


def parse_scores(text: str) -> dict[str, float]:
    """The four criteria from a reply (the last JSON object in it), each clipped to [0, 5]."""
    for raw in reversed(_JSON_OBJECT.findall(text)):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and all(k in obj for k in CRITERIA):
            try:
                return {k: min(5.0, max(0.0, float(obj[k]))) for k in CRITERIA}
            except (TypeError, ValueError):
                continue
    raise ValueError(f"no JSON object with {CRITERIA} in the judge reply: {text[:200]!r}")


class Judge:
    """Calls the endpoint; ``client`` injectable (tests pass an httpx.Client with a MockTransport)."""

    def __init__(self, config: JudgeConfig, client: httpx.Client | None = None):
        self.config = config
        self.client = client or httpx.Client(timeout=config.timeout_s)
        self.template = load_text("judge", config.prompt_version)

    def __call__(self, question: str, reference: str, answer: str) -> dict[str, float]:
        prompt = self.template.format(question=question, reference=reference, answer=answer)
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        body = {"model": self.config.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": 0.0, "max_tokens": self.config.max_tokens}
        url = self.config.url.rstrip("/") + "/chat/completions"
        try:
            resp = self.client.post(url, json=body, headers=headers, timeout=self.config.timeout_s)
            resp.raise_for_status()
            text = resp.json()["choices"][0]["message"]["content"]
        except httpx.TimeoutException as err:
            raise ModelError(url, f"the judge did not answer within {self.config.timeout_s} s",
                             "raise the timeout or check the server") from err
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as err:
            raise ModelError(url, f"judge request failed ({type(err).__name__}: {err})",
                             "check --judge-url, --judge-model and $" + API_KEY_ENV) from err
        return parse_scores(str(text))


__all__ = ["API_KEY_ENV", "CRITERIA", "Judge", "JudgeConfig", "config_from", "parse_scores"]
