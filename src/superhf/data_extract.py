"""A raw row's prompt and preference pair: the extraction rules of hh-rlhf and webgpt (paper
section 5.1), and ``Malformed`` for a row that breaks them."""

from __future__ import annotations

from typing import Any

ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"


class Malformed(ValueError):
    """A raw row that lacks a field, has the wrong type, or has no human turn."""


def first_turn_prompt(transcript: Any) -> str:
    """hh-rlhf rule: the text up to the first ``\\n\\nAssistant:``, plus ``\\n\\nAssistant:``."""
    if not isinstance(transcript, str):
        raise Malformed(f"expected a string, got {type(transcript).__name__}")
    cut = transcript.find(ASSISTANT)
    if cut < 0:
        raise Malformed("no '\\n\\nAssistant:' turn")
    if "Human:" not in transcript[:cut]:
        raise Malformed("no human turn before the first assistant turn")
    return transcript[:cut] + ASSISTANT


def webgpt_prompt(question: Any) -> str:
    """webgpt rule: ``\\n\\nHuman: `` + question + ``\\n\\nAssistant:``."""
    if not isinstance(question, dict) or not isinstance(question.get("full_text"), str):
        raise Malformed("question.full_text missing or not a string")
    text = question["full_text"].strip()
    if not text:
        raise Malformed("question.full_text is empty")
    return f"{HUMAN} {text}{ASSISTANT}"


def extract_prompt(dataset: str, row: Any) -> str:
    if not isinstance(row, dict):
        raise Malformed(f"row is a {type(row).__name__}, not an object")
    if dataset == "webgpt":
        return webgpt_prompt(row.get("question"))
    key = "transcript" if dataset == "red_team" else "chosen"
    if key not in row:
        raise Malformed(f"missing field '{key}'")
    return first_turn_prompt(row[key])


def _split_last_turn(dialogue: Any) -> tuple[str, str]:
    if not isinstance(dialogue, str):
        raise Malformed(f"expected a string, got {type(dialogue).__name__}")
    cut = dialogue.rfind(ASSISTANT)
    if cut < 0 or "Human:" not in dialogue[:cut]:
        raise Malformed("no human turn followed by an assistant turn")
    return dialogue[: cut + len(ASSISTANT)], dialogue[cut + len(ASSISTANT) :].strip()


def extract_pair(dataset: str, row: dict[str, Any]) -> dict[str, str] | None:
    """A preference pair ``{prompt, chosen, rejected}`` or None when the row has none.

    hh-rlhf: the shared dialogue up to the last assistant turn, and the two final replies.
    webgpt: the question, and the two answers ordered by score (ties give None).
    """
    if dataset == "red_team":
        return None
    if dataset == "webgpt":
        prompt = webgpt_prompt(row.get("question"))
        a0, a1, s0, s1 = (row.get(k) for k in ("answer_0", "answer_1", "score_0", "score_1"))
        if not (isinstance(a0, str) and isinstance(a1, str)):
            raise Malformed("answer_0/answer_1 missing or not strings")
        if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in (s0, s1)):
            raise Malformed("score_0/score_1 missing or not numbers")
        if s0 == s1 or not a0.strip() or not a1.strip():
            return None
        chosen, rejected = (a0, a1) if s0 > s1 else (a1, a0)
        return {"prompt": prompt, "chosen": chosen.strip(), "rejected": rejected.strip()}
    prompt, chosen = _split_last_turn(row.get("chosen"))
    prompt_r, rejected = _split_last_turn(row.get("rejected"))
    if prompt != prompt_r or not chosen or not rejected or chosen == rejected:
        return None
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
