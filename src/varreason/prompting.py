"""Prompt formats: how a question becomes a prompt, and how a completion splits into trace and answer.

A completion is ``trace + answer_delimiter + answer_prefix + answer + answer_suffix`` and then the
end-of-completion token. The trace z is everything up to and including the delimiter (the delimiter
ends the thought, so sampling stops there); the answer y' is what follows.

Two built-in formats (``task.templates.format``), each field overridable in params:
- ``embedded``: the synthetic task's one-character-per-token layout (``Q<question>T<trace>A<answer>``).
- ``reasoning``: the long-thought format of Bespoke-Stratos / OpenThoughts models. The thought sits
  between ``<|begin_of_thought|>`` (an assistant prefill) and ``<|end_of_thought|>``, the solution
  between ``<|begin_of_solution|>`` and ``<|end_of_solution|>``; prompts go through the base model's
  chat template where the tokenizer has one, else ChatML (what the public reference writes by hand).
  The posterior's prompt shows the reference answer as a hint, in one of two templates: ``A`` adds
  it to the user turn after the question, ``B`` states it in the system turn. These are our own
  wordings (the paper's ship only inside its hub datasets); any of them can be replaced in params.

Splitting is done on whole tags only: a completion cut off inside ``<|end_of_thought|>`` has no
answer, and a trace's token ids end with the token that completes the delimiter, never before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

REASONING_SYSTEM = (
    "You are a careful problem solver. Think the question through step by step before answering: "
    "write your reasoning between <|begin_of_thought|> and <|end_of_thought|>, with steps separated "
    "by blank lines, exploring, checking and revising as needed. Then write the final, clear and "
    "precise solution between <|begin_of_solution|> and <|end_of_solution|>, with the final answer "
    "in \\boxed{}."
)
HINT_A_USER = (
    "{question}\n\nA reference answer to this question is given below as a hint. Reason as if you "
    "were solving the question yourself and reach the answer on your own; do not mention the hint.\n\n"
    "Reference answer:\n{answer}"
)
HINT_B_SYSTEM = (
    REASONING_SYSTEM + "\n\nFor the next question you already know the reference answer:\n{answer}\n"
    "Write the thinking that leads to it as if you had worked it out yourself; never refer to the "
    "reference answer."
)
CHATML_FALLBACK = "{system_block}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class PromptFormat:
    """Every field of ``task.templates``. ``{question}``, ``{answer}`` are filled in."""

    format: str = "embedded"
    prompt: str = "Q{question}T"  # the reasoner's prompt (the user turn when ``chat``)
    posterior_prompt: str = "Q{question}H{answer}T"  # q's prompt: sees the reference answer
    posterior_system: str | None = None  # q's system turn when ``chat`` (None: ``system``)
    answer_delimiter: str = "A"  # ends the trace
    answer_prefix: str = ""
    answer_suffix: str = ""
    chat: bool = False  # render prompts through the tokenizer's chat template (ChatML without one)
    system: str | None = None
    prefill: str = ""  # the start of the assistant turn, e.g. <|begin_of_thought|>
    posterior_template: str | None = None  # A | B (reasoning format): which hint template q uses


def reasoning_format(posterior_template: str = "B") -> PromptFormat:
    """The Bespoke-Stratos long-thought format with posterior template A or B."""
    if posterior_template not in ("A", "B"):
        raise ValueError(f"task.templates.posterior_template must be A or B, got {posterior_template!r}")
    base = PromptFormat(
        format="reasoning",
        prompt="{question}",
        posterior_prompt=HINT_A_USER if posterior_template == "A" else "{question}",
        posterior_system=None if posterior_template == "A" else HINT_B_SYSTEM,
        answer_delimiter="<|end_of_thought|>",
        answer_prefix="\n\n<|begin_of_solution|>\n\n",
        answer_suffix="\n\n<|end_of_solution|>",
        chat=True,
        system=REASONING_SYSTEM,
        prefill="<|begin_of_thought|>\n\n",
        posterior_template=posterior_template,
    )
    return base


def format_from_params(task_params: dict) -> PromptFormat:
    """``task.templates``: a built-in ``format`` and any field overridden."""
    t = dict(task_params.get("templates") or {})
    name = t.pop("format", "embedded")
    if name == "embedded":
        base = PromptFormat()
    elif name == "reasoning":
        base = reasoning_format(t.get("posterior_template") or "B")
    else:
        raise ValueError(f"task.templates.format must be embedded or reasoning, got {name!r}")
    known = {f.name for f in fields(PromptFormat)}
    unknown = sorted(set(t) - known)
    if unknown:
        raise ValueError(f"task.templates: unknown key(s) {unknown}; known: {sorted(known)}")
    fmt = replace(base, **{k: v for k, v in t.items() if v is not None or k in ("system", "posterior_system")})
    if "{answer}" not in fmt.posterior_prompt + (fmt.posterior_system or ""):
        raise ValueError("task.templates: neither posterior_prompt nor posterior_system shows {answer} (the hint)")
    return fmt


def split_completion(text: str, fmt: PromptFormat) -> tuple[str, str | None]:
    """(trace, answer) of a completion's text; the answer is None without a complete delimiter.

    The answer is what follows the delimiter, without ``answer_prefix`` / ``answer_suffix`` where
    they are written (whitespace around them tolerated), and cut at the suffix when text follows it.
    """
    i = text.find(fmt.answer_delimiter)
    if i < 0:
        return text, None
    trace, rest = text[:i], text[i + len(fmt.answer_delimiter) :]
    prefix = fmt.answer_prefix.strip()
    if prefix and rest.lstrip().startswith(prefix):
        rest = rest.lstrip()[len(prefix) :]
    suffix = fmt.answer_suffix.strip()
    if suffix and suffix in rest:
        rest = rest[: rest.index(suffix)]
    return trace, rest.strip()


def stop_cut(token_ids: Sequence[int], tokenizer, stop: str) -> int | None:
    """How many tokens, from the start, it takes to write ``stop`` in full; None if they never do.

    A stop string spans several tokens in a real tokenizer and may end inside a token: the cut is
    after the token that completes it, so the trace never ends on a partial tag. Binary search
    over decoded prefixes (decoding is prefix-monotone for the stop string's presence).
    """
    if stop not in tokenizer.decode(list(token_ids), skip_special_tokens=False):
        return None
    lo, hi = 1, len(token_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if stop in tokenizer.decode(list(token_ids[:mid]), skip_special_tokens=False):
            hi = mid
        else:
            lo = mid + 1
    return lo


class Prompter:
    """A ``PromptFormat`` bound to a tokenizer: prompt texts, token ids, stop and end tokens."""

    def __init__(self, fmt: PromptFormat, tokenizer):
        self.fmt = fmt
        self.tokenizer = tokenizer
        delim = self.encode(fmt.answer_delimiter)
        # a one-token delimiter stops sampling by id; a longer one by string
        self.delimiter_id: int | None = delim[0] if len(delim) == 1 else None
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if fmt.chat else None
        unk = getattr(tokenizer, "unk_token_id", None)
        # in a chat format the assistant turn ends with <|im_end|> where the vocabulary has it
        self.end_id: int = im_end if isinstance(im_end, int) and im_end != unk else tokenizer.eos_token_id
        self.stop_ids: list[int] = sorted({tokenizer.eos_token_id, self.end_id})

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _render(self, system: str | None, user: str) -> str:
        if not self.fmt.chat:
            return user + self.fmt.prefill
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            block = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
            text = CHATML_FALLBACK.format(system_block=block, user=user)
        return text + self.fmt.prefill

    def reasoner(self, question: str) -> str:
        """The reasoning model's prompt: never contains the reference answer."""
        return self._render(self.fmt.system, self.fmt.prompt.format(question=question))

    def posterior(self, question: str, answer: str) -> str:
        """The posterior's prompt: sees the reference answer (the hint)."""
        system = self.fmt.posterior_system if self.fmt.posterior_system is not None else self.fmt.system
        if system and "{answer}" in system:
            system = system.replace("{answer}", answer)
        return self._render(system, self.fmt.posterior_prompt.format(question=question, answer=answer))

    def answer_text(self, answer: str) -> str:
        """What follows the delimiter in a completion (the y' whose likelihood GML measures)."""
        return f"{self.fmt.answer_prefix}{answer}{self.fmt.answer_suffix}"

    def completion(self, trace: str, answer: str) -> str:
        return f"{trace}{self.fmt.answer_delimiter}{self.answer_text(answer)}"

    def trace_cut(self, token_ids: Sequence[int]) -> int | None:
        """Tokens of a sampled trace through the delimiter, or None when it never wrote one."""
        if self.delimiter_id is not None:
            return next((i + 1 for i, t in enumerate(token_ids) if t == self.delimiter_id), None)
        return stop_cut(token_ids, self.tokenizer, self.fmt.answer_delimiter)

    def split(self, text: str) -> tuple[str, str | None]:
        return split_completion(text, self.fmt)


def prompter_for(params: dict, tokenizer) -> Prompter:
    """The run's prompt format (``task.templates``) bound to a model's tokenizer."""
    return Prompter(format_from_params(params["task"]), tokenizer)
