"""Prompt formats: the embedded layout unchanged, the reasoning format, whole-tag splitting."""

from __future__ import annotations

import pytest

from conftest import build_bpe_tokenizer
from varreason.prompting import (
    Prompter,
    PromptFormat,
    format_from_params,
    reasoning_format,
    split_completion,
    stop_cut,
)

REASONING = reasoning_format("B")


def test_embedded_format_writes_the_embedded_strings(tokenizer):
    pi = Prompter(format_from_params({"templates": {"format": "embedded"}}), tokenizer)
    assert pi.reasoner("3+4-2") == "Q3+4-2T"
    assert pi.posterior("3+4-2", "57") == "Q3+4-2H57T"
    assert pi.completion("+4=7-2=5", "57") == "+4=7-2=5A57"
    assert pi.delimiter_id == tokenizer.convert_tokens_to_ids("A")
    assert pi.end_id == tokenizer.eos_token_id == pi.stop_ids[0]
    ids = tokenizer("+4=7A57").input_ids
    assert pi.trace_cut(ids) == 5 and pi.trace_cut(ids[:4]) is None


def test_reasoning_prompts_use_the_chat_template_and_the_prefill(bpe_tokenizer):
    pi = Prompter(REASONING, bpe_tokenizer)
    prompt = pi.reasoner("What is 2 + 3?")
    assert prompt.startswith("<|im_start|>system\n") and "<|im_start|>user\nWhat is 2 + 3?<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<|begin_of_thought|>\n\n")
    # the assistant turn ends with <|im_end|> in a chat format
    assert pi.end_id == bpe_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert set(pi.stop_ids) == {pi.end_id, bpe_tokenizer.eos_token_id}
    assert pi.delimiter_id is None  # <|end_of_thought|> spans several tokens: a stop string


@pytest.mark.parametrize("template", ["A", "B"])
def test_both_posterior_templates_show_the_answer_and_the_reasoner_never_does(bpe_tokenizer, template):
    pi = Prompter(reasoning_format(template), bpe_tokenizer)
    answer = "The answer is \\boxed{5}."
    q_prompt, pi_prompt = pi.posterior("What is 2 + 3?", answer), pi.reasoner("What is 2 + 3?")
    assert answer in q_prompt and answer not in pi_prompt
    assert q_prompt.endswith("<|begin_of_thought|>\n\n")
    where = q_prompt.index(answer)
    user_turn = q_prompt.index("<|im_start|>user")
    assert (where > user_turn) if template == "A" else (where < user_turn)


def test_chatml_fallback_without_a_chat_template():
    tok = build_bpe_tokenizer(chat_template=None)
    prompt = Prompter(REASONING, tok).reasoner("Q?")
    assert prompt == (
        f"<|im_start|>system\n{REASONING.system}<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n"
        "<|im_start|>assistant\n<|begin_of_thought|>\n\n"
    )


@pytest.mark.parametrize(
    ("text", "trace", "answer"),
    [
        (
            "x is 5.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n\\boxed{5}\n\n<|end_of_solution|>",
            "x is 5.\n\n",
            "\\boxed{5}",
        ),
        # text after the solution is not part of the answer
        ("t<|end_of_thought|><|begin_of_solution|>ans<|end_of_solution|> more", "t", "ans"),
        # no solution tags written: the answer is what follows the delimiter
        ("t<|end_of_thought|> 42", "t", "42"),
        # cut inside the delimiter: no answer, the whole text is trace
        ("x is 5.<|end_of_th", "x is 5.<|end_of_th", None),
        ("no delimiter at all", "no delimiter at all", None),
    ],
)
def test_split_completion_cuts_on_whole_tags_only(text, trace, answer):
    assert split_completion(text, REASONING) == (trace, answer)


def test_stop_cut_keeps_the_token_that_completes_the_tag(bpe_tokenizer):
    text = "3 plus 4 is 7.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>"
    ids = bpe_tokenizer(text, add_special_tokens=False).input_ids
    n = stop_cut(ids, bpe_tokenizer, "<|end_of_thought|>")
    head = bpe_tokenizer.decode(ids[:n])
    assert head.endswith("<|end_of_thought|>") or head.rstrip().endswith("<|end_of_thought|>")
    assert "<|end_of_thought|>" not in bpe_tokenizer.decode(ids[: n - 1])
    # a partial tag is not a stop
    partial = bpe_tokenizer("7.\n\n<|end_of_th", add_special_tokens=False).input_ids
    assert stop_cut(partial, bpe_tokenizer, "<|end_of_thought|>") is None
    assert Prompter(REASONING, bpe_tokenizer).trace_cut(ids) == n


def test_format_from_params_overrides_and_errors():
    fmt = format_from_params({"templates": {"format": "reasoning", "posterior_template": "A", "system": "Be brief."}})
    assert fmt.system == "Be brief." and fmt.posterior_template == "A" and fmt.chat
    with pytest.raises(ValueError, match="unknown key"):
        format_from_params({"templates": {"format": "embedded", "promt": "Q{question}T"}})
    with pytest.raises(ValueError, match="hint"):
        format_from_params({"templates": {"format": "embedded", "posterior_prompt": "Q{question}T"}})
    with pytest.raises(ValueError, match="format must be"):
        format_from_params({"templates": {"format": "alpaca"}})
    assert format_from_params({}) == PromptFormat()
