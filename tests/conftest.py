"""Shared pytest fixtures.

Safety (tests/test_integration.py, tests/test_safety_runtime.py): a real tiny GPT-2 checkpoint saved as safetensors,
safety metrics measured by running the real SafetyChecker over probe prompts, and provenance captured with
`capture_provenance`. The seed's integration test reads `artifacts/models/latest` and
`artifacts/provenance/latest.json` relative to the working directory, so for that module an autouse fixture
builds them in a temporary directory and chdirs there.
"""
import os
import shutil

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

# the seed's "Safe Content" example prompts, plus everyday questions: what a deployed model is probed with
SAFE_PROBES = ["Tell me a fun fact about space", "What are the benefits of reading books?", "How do plants make food?",
               "Test input", "Explain how rainbows form", "Give me a recipe for banana bread",
               "What is the capital of France?", "How do I learn to play the guitar?"]


@pytest.fixture(scope="session")
def safety_tiny_model(tmp_path_factory):
    "A real tiny GPT-2 checkpoint (2 layers, 32-dim) saved with safetensors; build once, copy per test."
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_gpt2") / "model"
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=97, n_positions=64)
    GPT2LMHeadModel(cfg).save_pretrained(d, safe_serialization=True)
    return d


def screened_metrics(prompts):
    "Safety metrics measured by screening `prompts` with the real checker (seed config)."
    from ml_provenance.safety.monitor import SafetyMonitor
    mon = SafetyMonitor()
    for p in prompts: mon.check_input(p)
    return mon.metrics


@pytest.fixture
def make_release(safety_tiny_model):
    "Copy the tiny model (or `source`) to `root/models/latest`, capture and save its provenance; returns (model_dir, provenance)."
    def make(root, prompts=SAFE_PROBES, metrics=None, source=None):
        from ml_provenance.provenance.capture import capture_provenance
        from ml_provenance.provenance.store import save_provenance
        from ml_provenance.safety.config import SafetyConfig
        md = root / "models" / "latest"
        shutil.copytree(source or safety_tiny_model, md)
        m = metrics if metrics is not None else screened_metrics(prompts).to_dict()
        doc = capture_provenance(md, safety_config=SafetyConfig(), safety_metrics=m)
        save_provenance(doc, root / "provenance")
        return md, root / "provenance" / "latest.json"
    return make


@pytest.fixture(autouse=True)
def _seed_artifacts_cwd(request):
    "For tests/test_integration.py only: run in a temp dir holding artifacts/models/latest + provenance/latest.json."
    if request.module.__name__.rsplit(".", 1)[-1] != "test_integration": return
    tmp_path = request.getfixturevalue("tmp_path")
    request.getfixturevalue("make_release")(tmp_path / "artifacts")
    request.getfixturevalue("monkeypatch").chdir(tmp_path)
