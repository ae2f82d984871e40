"""Dataset formats: detect one from a row, validate each row, normalise it to TRL's formats.

  messages           {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}
  sharegpt           {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}
  alpaca             {"instruction": ..., "input": ... (optional), "output": ..., "system": ... (optional)}
  prompt-completion  {"prompt": ..., "completion": ...}  (two strings, or two lists of messages)
  prompt             {"prompt": ..., any other columns}  (a string, or a list of messages ending
                     with a user turn; no answer: task grpo samples its own, and hands every
                     other column, e.g. "answer", to the reward functions)
  text               {"text": ...}
  classification     {"text": ..., "label": ...}
  preference         {"prompt": ..., "chosen": ..., "rejected": ...}  (three strings, or a list of
                     messages and two lists of assistant messages); without "prompt", chosen and
                     rejected are whole conversations that share their prompt turns; or a
                     conversation ("messages", or sharegpt's "conversations") with "chosen" and
                     "rejected" single assistant messages
  unpaired-preference {"prompt": ..., "completion": ..., "label": true|false}  (KTO's rows: one
                     answer judged desirable or not; two strings, or two lists of messages; or a
                     conversation, "messages" or sharegpt's "conversations", whose last turn is
                     the judged answer)

Normalised kinds (what TRL reads): sharegpt and alpaca become `messages`; preference rows
become TRL's explicit-prompt form {prompt, chosen, rejected}, unpaired ones TRL's
{prompt, completion, label}; the others keep their shape. A problem is raised as `RowProblem("what is wrong with which field")`; the
loader adds the file:line.
"""
from __future__ import annotations

from typing import Any

FORMATS = ("messages", "sharegpt", "alpaca", "prompt-completion", "prompt", "text", "classification",
           "preference", "unpaired-preference")
# the kinds preference tasks train on (tasks/preference.py), and eval.metric=preference scores
PREFERENCE_KINDS = ("preference", "unpaired-preference")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant"}


class RowProblem(ValueError):
    """One row does not fit its format; the message names the field."""


class MixedFormats(RowProblem):
    """A row of another format after rows of one; the reader says where each is."""

    def __init__(self, seen: str, fmt: str) -> None:
        super().__init__(f"mixed formats: this row is {seen} but earlier rows are {fmt}; "
                         "keep one format per file (or set data.format)")
        self.seen = seen


def detect(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "label" in row and any(k in row for k in ("prompt", "completion", "messages", "conversations")):
        return "unpaired-preference"
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row or "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" not in row:
        return "prompt"
    if "prompt" in row or "completion" in row:
        return "prompt-completion"
    if "text" in row and "label" in row:
        return "classification"
    if "text" in row:
        return "text"
    return None


def kind_of(fmt: str) -> str:
    """The TRL-side shape a format is normalised to."""
    return {"sharegpt": "messages", "alpaca": "messages"}.get(fmt, fmt)


def normalise(row: Any, fmt: str, forced: bool = False) -> dict[str, Any]:
    """The row in its normalised kind, or RowProblem. `forced`: fmt came from data.format."""
    if not isinstance(row, dict):
        raise RowProblem(f"expected a JSON object (one record), got {type(row).__name__}")
    seen = detect(row)
    try:
        return _NORMALISE[fmt](row)
    except RowProblem as exc:
        if seen == "prompt" and fmt in ("prompt-completion", *PREFERENCE_KINDS):
            raise exc  # not another format: a row of this one missing its answer
        if seen and seen != fmt and forced:
            raise RowProblem(f"this row is {seen}, not {fmt} as data.format says; fix data.format "
                             "or set it to auto") from None
        if seen and seen != fmt:  # a row of another format in the middle of this one
            raise MixedFormats(seen, fmt) from None
        raise exc


def _string(row: dict[str, Any], field: str, *, empty_ok: bool = False, label: str | None = None) -> str:
    name = label or f"field '{field}'"
    if field not in row:
        raise RowProblem(f"missing {name}")
    value = row[field]
    if not isinstance(value, str):
        raise RowProblem(f"{name} must be a string, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise RowProblem(f"{name} is empty")
    return value


def _conversation(msgs: Any, field: str) -> list[dict[str, str]]:
    """Checks shared by every conversational format (already in role/content form)."""
    if not isinstance(msgs, list) or not msgs:
        raise RowProblem(f"field '{field}' must be a non-empty list of messages")
    start = 1 if msgs[0]["role"] == "system" else 0
    for i, m in enumerate(msgs):
        if m["role"] == "system" and i > 0:
            raise RowProblem(f"{field}[{i}]: a system message may only come first")
        if not m["content"].strip():
            raise RowProblem(f"{field}[{i}].content: empty {m['role']} turn; remove the turn or fill it")
    if start < len(msgs) and msgs[start]["role"] == "assistant":
        raise RowProblem(f"{field}[{start}]: the conversation starts with an assistant turn; "
                         "it must start with a user turn (after an optional system message)")
    if not any(m["role"] == "assistant" for m in msgs):
        raise RowProblem(f"field '{field}' has no assistant turn, so nothing to learn from this row")
    return msgs


def _message(m: Any, field: str, i: int, role_key: str, content_key: str, roles: dict[str, str]) -> dict[str, str]:
    if not isinstance(m, dict):
        raise RowProblem(f"{field}[{i}] must be an object with '{role_key}' and '{content_key}'")
    if role_key not in m:
        raise RowProblem(f"{field}[{i}]: missing field '{role_key}'")
    if m[role_key] not in roles:
        raise RowProblem(f"{field}[{i}].{role_key} is {m[role_key]!r}; expected one of {', '.join(roles)}")
    content = _string(m, content_key, empty_ok=True, label=f"{field}[{i}].{content_key}")
    return {"role": roles[m[role_key]], "content": content}


def _messages(row: dict[str, Any]) -> dict[str, Any]:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RowProblem("field 'messages' must be a non-empty list of {role, content} objects")
    roles = {r: r for r in ROLES}
    return {"messages": _conversation([_message(m, "messages", i, "role", "content", roles)
                                       for i, m in enumerate(msgs)], "messages")}


def _sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    msgs = row.get("conversations")
    if not isinstance(msgs, list) or not msgs:
        raise RowProblem("field 'conversations' must be a non-empty list of {from, value} objects")
    # Some ShareGPT exports use role/content inside `conversations`; accept either spelling.
    keys = ("role", "content") if isinstance(msgs[0], dict) and "role" in msgs[0] else ("from", "value")
    out = [_message(m, "conversations", i, *keys, SHAREGPT_ROLES) for i, m in enumerate(msgs)]
    return {"messages": _conversation(out, "conversations")}


def _alpaca(row: dict[str, Any]) -> dict[str, Any]:
    instruction = _string(row, "instruction")
    extra = _string(row, "input", empty_ok=True) if row.get("input") is not None else ""
    output = _string(row, "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    if row.get("system") is not None and _string(row, "system", empty_ok=True).strip():
        msgs.insert(0, {"role": "system", "content": row["system"]})
    return {"messages": msgs}


def _prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list):  # conversational prompt-completion
        roles = {r: r for r in ROLES}
        for field, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, list) or not value:
                raise RowProblem(f"field '{field}' must be a non-empty list of messages like the other")
        p = [_message(m, "prompt", i, "role", "content", roles) for i, m in enumerate(prompt)]
        c = [_message(m, "completion", i, "role", "content", roles) for i, m in enumerate(completion)]
        if any(m["role"] != "assistant" for m in c):
            raise RowProblem("field 'completion' may hold assistant messages only")
        _conversation(p + c, "prompt+completion")
        return {"prompt": p, "completion": c}
    if "prompt" in row and "completion" not in row:  # a prompt alone: it needs an answer of some kind
        raise RowProblem("missing field 'completion' (a prompt-completion row), or 'chosen' and "
                         "'rejected' (a preference row)")
    return {"prompt": _string(row, "prompt"), "completion": _string(row, "completion")}


# the ways to finish rows that hold prompts alone, told by every task that refuses them
PROMPT_ONLY_FIX = ("give each prompt a 'completion' (task sft), or 'chosen' and 'rejected' answers (task dpo), "
                   "or keep them as they are and learn from rewards: task=grpo with rewards:")


# what TRL's GRPOTrainer passes to reward functions itself, or reads as images / environments:
# a column of that name would be lost or misread
RESERVED_COLUMNS = ("prompts", "completion", "completions", "completion_ids", "trainer_state", "log_extra",
                    "log_metric", "environments", "environment", "image", "images")


def _prompt(row: dict[str, Any]) -> dict[str, Any]:
    """A prompt to sample answers for, and the columns the rewards read (kept as they are)."""
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        roles = {r: r for r in ROLES}
        msgs = [_message(m, "prompt", i, "role", "content", roles) for i, m in enumerate(prompt)]
        if not msgs or msgs[-1]["role"] != "user":
            raise RowProblem("field 'prompt' must be a non-empty list of messages ending with a user turn "
                             "(the turn the model answers)")
        for i, m in enumerate(msgs):
            if not m["content"].strip():
                raise RowProblem(f"prompt[{i}].content: empty {m['role']} turn; remove the turn or fill it")
        prompt = msgs
    else:
        prompt = _string(row, "prompt")
    clash = [k for k in row if k in RESERVED_COLUMNS]
    if clash:
        raise RowProblem(f"column '{clash[0]}' is a name TRL's GRPOTrainer uses itself; rename it "
                         f"(data.columns: {{{clash[0]}: {clash[0]}_ref}})")
    return {**row, "prompt": prompt}


def _text(row: dict[str, Any]) -> dict[str, Any]:
    return {"text": _string(row, "text")}


def _classification(row: dict[str, Any]) -> dict[str, Any]:
    label = row.get("label")
    if "label" not in row:
        raise RowProblem("missing field 'label'")
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise RowProblem(f"field 'label' must be a string or an integer, got {type(label).__name__} {label!r}")
    return {"text": _string(row, "text"), "label": label}


def _preference(row: dict[str, Any]) -> dict[str, Any]:
    """TRL's explicit-prompt preference form, from any of the layouts in the module doc."""
    if "chosen" not in row or "rejected" not in row:
        raise RowProblem(f"missing field '{'rejected' if 'chosen' in row else 'chosen'}': a preference "
                         "row needs both 'chosen' and 'rejected'")
    roles = {r: r for r in ROLES}
    if isinstance(row.get("prompt"), str) or (row.get("prompt") is None and isinstance(row["chosen"], str)):
        if "prompt" not in row:
            raise RowProblem("missing field 'prompt': plain-text chosen and rejected need the prompt "
                             "they answer (only conversations can share it implicitly)")
        pair = {f: _string(row, f) for f in ("prompt", "chosen", "rejected")}
    elif "conversations" in row or "messages" in row:  # a conversation plus two single answers
        field = "conversations" if "conversations" in row else "messages"
        if not isinstance(row[field], list) or not row[field]:
            raise RowProblem(f"field '{field}' must be a non-empty list of messages (the prompt)")
        first = row[field][0]
        keys = ("from", "value") if field == "conversations" and isinstance(first, dict) and "from" in first \
            else ("role", "content")
        names = SHAREGPT_ROLES if keys[0] == "from" else roles
        prompt = [_message(m, field, i, *keys, names) for i, m in enumerate(row[field])]
        pair = {"prompt": prompt, **{f: [_message(row[f], f, 0, *keys, names)] for f in ("chosen", "rejected")}}
    else:
        chosen, rejected = (_message_list(row, f, roles) for f in ("chosen", "rejected"))
        if "prompt" in row:
            prompt = _message_list(row, "prompt", roles)
        else:  # implicit: the turns both conversations share are the prompt
            n = 0
            while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
                n += 1
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
            if not prompt:
                raise RowProblem("'chosen' and 'rejected' share no first turn, so there is no prompt; "
                                 "give it in 'prompt'")
        pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if isinstance(pair["prompt"], list):
        for f in ("chosen", "rejected"):
            if not pair[f] or any(m["role"] != "assistant" for m in pair[f]):
                raise RowProblem(f"field '{f}' must hold the assistant's answer only (after the shared prompt)")
            _conversation(pair["prompt"] + pair[f], f"prompt+{f}")
    if pair["chosen"] == pair["rejected"]:
        raise RowProblem("'chosen' and 'rejected' are the same answer, so there is no preference to learn")
    return pair


def _message_list(row: dict[str, Any], field: str, roles: dict[str, str]) -> list[dict[str, str]]:
    value = row.get(field)
    if not isinstance(value, list) or not value:
        raise RowProblem(f"field '{field}' must be a non-empty list of {{role, content}} messages")
    return [_message(m, field, i, "role", "content", roles) for i, m in enumerate(value)]


def _unpaired(row: dict[str, Any]) -> dict[str, Any]:
    """TRL's unpaired preference form {prompt, completion, label} from the layouts in the module doc."""
    if "label" not in row:
        raise RowProblem("missing field 'label': an unpaired preference row needs label true "
                         "(a desirable answer) or false (an undesirable one)")
    label = row["label"]
    if isinstance(label, int) and not isinstance(label, bool) and label in (0, 1):
        label = bool(label)
    if not isinstance(label, bool):
        raise RowProblem(f"field 'label' must be true (a desirable answer) or false (an undesirable "
                         f"one), got {label!r}")
    if "prompt" in row or "completion" in row:
        return {**_prompt_completion({k: row[k] for k in ("prompt", "completion") if k in row}),
                "label": label}
    msgs = (_messages(row) if "messages" in row else _sharegpt(row))["messages"]
    field = "messages" if "messages" in row else "conversations"
    if msgs[-1]["role"] != "assistant":
        raise RowProblem(f"{field}[{len(msgs) - 1}]: the last turn must be the assistant's answer "
                         "that 'label' judges")
    return {"prompt": msgs[:-1], "completion": msgs[-1:], "label": label}


_NORMALISE = {"messages": _messages, "sharegpt": _sharegpt, "alpaca": _alpaca,
              "prompt-completion": _prompt_completion, "prompt": _prompt, "text": _text, "classification": _classification,
              "preference": _preference, "unpaired-preference": _unpaired}
