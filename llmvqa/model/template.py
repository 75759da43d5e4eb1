"""The one prompt renderer: conversation → token ids with one placeholder run per stream.

Texts come from prompts/<version>/ (system.txt, chat_format.yaml, video.txt, text_prompt.txt,
instructions.yaml questions, answers.yaml). The "<video>" tag in a user turn is
replaced by video.txt, whose "{technical}" / "{motion}" / "{semantic}" slots become runs of
``tokens_per_stream`` placeholder tokens, plus the text-prompt line when the video was generated
from text. Each assistant turn is tokenized so that the level word of its last level sentence
(answers.yaml) is the single level token; ``level_pos`` is the index right before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmvqa.errors import ConfigError, DataError
from llmvqa.levels import LEVELS
from llmvqa.prompts import VIDEO_TAG, load_text, load_yaml, question, video_turn
from llmvqa.statistics import STREAMS

QUESTION_TASK = {"rating": "rating", "explain": "rating_cot"}
"""Model question kind → the SIG task whose question templates (instructions.yaml) it uses."""

IGNORE = -100
PLACEHOLDER_CANDIDATES = ("<|video_pad|>", "<unused0>", "<|reserved_special_token_0|>")
"""Existing rarely-used tokens tried before adding our own (avoids resizing a 262k vocab)."""
ADDED_PLACEHOLDER = "<llmvqa_feature>"
USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "model")


def choose_placeholder(tokenizer) -> tuple[str, bool]:
    """Placeholder token string and whether it has to be added to the tokenizer."""
    vocab = tokenizer.get_vocab()
    for tok in PLACEHOLDER_CANDIDATES:
        if tok in vocab and len(tokenizer(tok, add_special_tokens=False)["input_ids"]) == 1:
            return tok, False
    return ADDED_PLACEHOLDER, ADDED_PLACEHOLDER not in vocab


def resolve_chat_format(chat_format: str, tokenizer) -> str:
    """"auto" → "template" when the tokenizer has a chat template of its own (Qwen2.5, Qwen2.5-VL …), else
    "chatml" when it has <|im_start|> and <|im_end|> as single tokens, else "gemma" (the base Gemma)."""
    if chat_format != "auto":
        return chat_format
    if getattr(tokenizer, "chat_template", None):
        return "template"
    vocab = tokenizer.get_vocab()
    return "chatml" if "<|im_start|>" in vocab and "<|im_end|>" in vocab else "gemma"


_SENTINELS = ("\u2063SYSTEM\u2063", "\u2063USER\u2063", "\u2063ASSISTANT\u2063")


def template_markers(tokenizer) -> dict[str, str]:
    """The turn markers of the tokenizer's own chat template, read off ``tokenizer.apply_chat_template``: a
    system, a user and an assistant turn with sentinel contents are rendered and split at the sentinels, so
    a conversation this module renders is the text ``apply_chat_template`` gives for it (with the generation
    prompt where an answer starts). Raises ConfigError for a template without that turn shape."""
    sys_s, user_s, asst_s = _SENTINELS
    turns = [{"role": "system", "content": sys_s}, {"role": "user", "content": user_s}]
    try:
        text = tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": asst_s}], tokenize=False)
        prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        system_start, rest = text.split(sys_s, 1)
        between_su, rest = rest.split(user_s, 1)
        between_ua, turn_end = rest.split(asst_s, 1)
    except (ValueError, TypeError, AttributeError) as err:  # no template, or one that drops a role
        raise ConfigError("chat_format template", f"the tokenizer's chat template cannot be used ({err})",
                          "set chat_format: chatml or gemma in the recipe") from err
    ok = between_su.startswith(turn_end) and between_ua.startswith(turn_end)
    markers = {"system_start": system_start, "user_start": between_su[len(turn_end):],
               "assistant_start": between_ua[len(turn_end):], "turn_end": turn_end}
    if not ok or prompt != system_start + sys_s + between_su + user_s + turn_end + markers["assistant_start"]:
        raise ConfigError("chat_format template", "the tokenizer's chat template does not render turns as "
                          "start + content + end", "set chat_format: chatml or gemma in the recipe")
    return markers


def normalize_messages(conversations: list[dict]) -> list[dict]:
    """SIG records ({"from", "value"}) or chat messages ({"role", "content"}) → [{"role", "content"}]."""
    out = []
    for m in conversations:
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        if role in USER_ROLES:
            role = "user"
        elif role in ASSISTANT_ROLES:
            role = "assistant"
        else:
            raise DataError("conversation", f"unknown speaker {role!r}", f"use one of {USER_ROLES + ASSISTANT_ROLES}")
        if not isinstance(content, str):
            raise DataError("conversation", f"message text must be a string, got {type(content).__name__}", None)
        out.append({"role": role, "content": content})
    return out


@dataclass
class Encoded:
    """One rendered conversation."""

    input_ids: list[int]
    labels: list[int]
    """Token ids on assistant turns (answer text and turn end), IGNORE elsewhere."""
    level_pos: int
    """Index whose next-token logits give the level word of the last level sentence; -1 if none."""


class PromptTemplate:
    """Renders conversations for one tokenizer; placeholder and level ids are resolved once."""

    def __init__(self, tokenizer, tokens_per_stream: int, placeholder_id: int, level_ids: list[int],
                 version: str = "v1", chat_format: str = "gemma"):
        self.tokenizer = tokenizer
        self.tokens_per_stream = tokens_per_stream
        self.placeholder_id = placeholder_id
        self.level_ids = list(level_ids)
        self.version = version
        self.chat_format = resolve_chat_format(chat_format, tokenizer)
        if self.chat_format == "template":
            self.fmt = template_markers(tokenizer)
            bos = tokenizer.bos_token or ""
            with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
            if bos and self.fmt["system_start"].startswith(bos) and with_sp and with_sp[0] == tokenizer.bos_token_id:
                self.fmt["system_start"] = self.fmt["system_start"][len(bos):]  # the tokenizer adds it (below)
        else:
            self.fmt = load_yaml("chat_format" if self.chat_format == "gemma" else f"chat_format_{self.chat_format}",
                                 version)
        self.system = load_text("system", version)
        self.video_text = load_text("video", version)
        self.text_prompt = load_text("text_prompt", version)
        self.answers = load_yaml("answers", version)
        slots = re.findall(r"\{(\w+)\}", self.video_text)
        if sorted(slots) != sorted(STREAMS):
            raise DataError(f"prompts/{version}/video.txt", f"has slots {slots}",
                            f"it needs exactly one slot per stream: {['{' + s + '}' for s in STREAMS]}")
        self.stream_order: tuple[str, ...] = tuple(slots)
        # the words right before "{level}" in every answers.yaml sentence ("… this video is")
        tails = {re.split(r"\}", s.split("{level}")[0])[-1] for s in self.answers.values()}
        alts = "|".join(re.escape(t) for t in sorted(tails, key=len, reverse=True))
        self._level_re = re.compile(f"(?:{alts})({'|'.join(LEVELS)})\\b")
        with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
        bos = tokenizer.bos_token_id
        self._lead = [bos] if bos is not None and with_sp and with_sp[0] == bos else []

    # ------------------------------------------------------------------ text pieces
    @property
    def tokens_per_video(self) -> int:
        return self.tokens_per_stream * len(self.stream_order)

    def question(self, kind: str, prompt: str | None = None) -> str:
        """The "rating" or "explain" question exactly as SIG trains it: the first template of the
        instructions.yaml task (rating / rating_cot), with the text-prompt clause when a prompt is given."""
        return question(QUESTION_TASK.get(kind, kind), prompt, self.version)

    def _tok(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _video_items(self, prompt: str | None) -> list:
        items: list = []
        for i, piece in enumerate(re.split(r"\{(\w+)\}", self.video_text)):
            items.append(("ph", piece) if i % 2 else piece)
        if prompt:
            items.append("\n" + self.text_prompt.format(prompt=prompt))
        return items

    def _encode_items(self, items: list) -> list[int]:
        ids: list[int] = []
        buf = ""
        for it in items:
            if isinstance(it, str):
                buf += it
            else:
                ids += self._tok(buf) + [self.placeholder_id] * self.tokens_per_stream
                buf = ""
        return ids + self._tok(buf)

    def _encode_answer(self, text: str) -> tuple[list[int], int]:
        """Answer text → ids with the last level word as the level token; (ids, index before it or -1)."""
        matches = list(self._level_re.finditer(text))
        if not matches:
            return self._tok(text), -1
        m = matches[-1]
        before = self._tok(text[: m.start(1)].rstrip(" "))
        ids = before + [self.level_ids[LEVELS.index(m.group(1))]] + self._tok(text[m.end(1):])
        return ids, len(before) - 1

    # ------------------------------------------------------------------ rendering
    def encode(self, conversations: list[dict], prompt: str | None = None, open_answer: str | None = None) -> Encoded:
        """Render a conversation.

        conversations: SIG turns or chat messages; the "<video>" tag goes in a user turn (it is
            prepended to the first user turn when absent). Ends with a complete assistant turn (training)
            or a user turn (inference).
        prompt: text prompt the video was generated from (adds the text-prompt line), or None.
        open_answer: inference only — start an assistant turn after the conversation and prefill it with
            this text (no turn end); "" starts generation, a level prefix gives score-only mode.
        """
        msgs = normalize_messages(conversations)
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        if not users:
            raise DataError("conversation", "has no user turn", "start with a human turn containing '<video>'")
        tags = sum(m["content"].count(VIDEO_TAG) for m in msgs)
        if tags > 1:
            raise DataError("conversation", f"has {tags} '<video>' tags", "put exactly one '<video>' in a user turn")
        if tags == 0:
            msgs[users[0]] = {"role": "user", "content": video_turn(msgs[users[0]]["content"])}
        ids, labels = list(self._lead), [IGNORE] * len(self._lead)
        level_pos = -1
        own_system = "system_start" in self.fmt  # a chat template: the system prompt is a turn of its own
        if own_system:
            ids += self._tok(self.fmt["system_start"] + self.system + self.fmt["turn_end"])
            labels += [IGNORE] * (len(ids) - len(labels))
        for i, m in enumerate(msgs):
            if m["role"] == "user":
                text = m["content"]
                if i == users[0] and not own_system:
                    text = self.system + self.fmt["system_separator"] + text
                items: list = [self.fmt["user_start"]]
                if VIDEO_TAG in text:
                    before, after = text.split(VIDEO_TAG, 1)
                    items += [before, *self._video_items(prompt), after]
                else:
                    items.append(text)
                items.append(self.fmt["turn_end"])
                new = self._encode_items(items)
                ids += new
                labels += [IGNORE] * len(new)
            else:
                head = self._tok(self.fmt["assistant_start"])
                ans, lp = self._encode_answer(m["content"])
                tail = self._tok(self.fmt["turn_end"])
                if lp >= 0:
                    level_pos = len(ids) + len(head) + lp
                ids += head + ans + tail
                labels += [IGNORE] * len(head) + ans + tail
        if open_answer is not None:
            head = self._tok(self.fmt["assistant_start"])
            ans = self._tok(open_answer.rstrip(" "))
            ids += head + ans
            labels += [IGNORE] * (len(head) + len(ans))
            level_pos = len(ids) - 1 if open_answer and self._ends_with_prefix(open_answer) else -1
        return Encoded(ids, labels, level_pos)

    def _ends_with_prefix(self, text: str) -> bool:
        t = text.rstrip(" ")
        return any(t.endswith(re.split(r"\}", s.split("{level}")[0])[-1].rstrip(" ")) for s in self.answers.values())
