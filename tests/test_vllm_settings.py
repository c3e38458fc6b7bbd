"""The params' vllm section as vllm.LLM arguments (no vLLM needed; tests/test_vllm_backend.py runs
engines with them on the CPU build), and every stage that can run vLLM passes them on."""

import yaml

from conftest import REPO
from varreason import vllm_backend
from varreason.pipeline import STAGES
from varreason.vllm_backend import engine_args

SETTINGS = {
    "tensor_parallel_size": 4,
    "gpu_memory_utilization": 0.8,
    "max_model_len": 4096,
    "enable_prefix_caching": True,
}


def test_prefix_caching_is_off_whenever_prompt_logprobs_are_returned(monkeypatch):
    monkeypatch.setattr(vllm_backend, "_on_cpu", lambda: False)
    assert engine_args(SETTINGS, prompt_logprobs=False) == SETTINGS
    assert engine_args(SETTINGS, prompt_logprobs=True) == {**SETTINGS, "enable_prefix_caching": False}
    assert engine_args(None, prompt_logprobs=True) == {"enable_prefix_caching": False}
    assert engine_args(None, prompt_logprobs=False) == {"enable_prefix_caching": False}  # one engine for both
    assert "max_model_len" not in engine_args({**SETTINGS, "max_model_len": None}, prompt_logprobs=False)


def test_gpu_only_settings_are_left_out_on_the_cpu_build(monkeypatch):
    monkeypatch.setattr(vllm_backend, "_on_cpu", lambda: True)
    assert engine_args(SETTINGS, prompt_logprobs=False) == {"max_model_len": 4096, "enable_prefix_caching": True}


def test_the_qwen3_preset_sets_the_engine_and_every_vllm_stage_reads_it():
    preset = yaml.safe_load((REPO / "workflow" / "presets" / "qwen3-4b-bespoke.yaml").read_text())
    assert preset["sampling"]["backend"] == "vllm" and preset["vllm"]["max_model_len"] == 40960
    runs_vllm = {c.name for c in STAGES if any(r in ("sampling", "sampling.backend") for r in c.reads)}
    assert runs_vllm >= {"sample-posterior", "sample-initial", "score", "rollout", "evaluate", "evaluate-benchmark"}
    for c in STAGES:
        if c.name in runs_vllm:
            assert "vllm" in c.reads, c.name  # a changed engine setting reruns the stage
