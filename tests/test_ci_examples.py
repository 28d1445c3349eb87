"""The CI examples (.github/workflows/safety-verification.yml, Jenkinsfile) run for real: every `ml-provenance`
step is executed in a temporary workspace, so the examples cannot drift from the CLI."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW, JENKINSFILE = ROOT / ".github/workflows/safety-verification.yml", ROOT / "Jenkinsfile"
ENV = {"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _yaml(text):
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a transitive dev dependency (jupytext)
        pytest.skip("PyYAML is not installed")
    return yaml.safe_load(text)


def workflow_steps():
    "The workflow's job env and `run` steps as (name, if, script)."
    doc = _yaml(WORKFLOW.read_text())
    job = doc["jobs"]["safety-verification"]
    return job.get("env", {}), [(s.get("name", ""), s.get("if"), s["run"]) for s in job["steps"] if "run" in s]


def jenkins_blocks():
    "The Jenkinsfile's `environment {}` values and its `sh '''...'''` scripts (Groovy line continuations applied)."
    text = JENKINSFILE.read_text()
    env_block = re.search(r"environment\s*\{(.*?)\}", text, re.S).group(1)
    env = dict(re.findall(r"(\w+)\s*=\s*'([^']*)'", env_block))
    # in a Groovy ''' string a backslash before a newline removes the newline (the shell would join them anyway)
    return env, [b.replace("\\\n", "") for b in re.findall(r"^\s*sh\s+'''(.*?)'''", text, re.S | re.M)]


@pytest.fixture
def workspace(tmp_path):
    "A scratch checkout: the project's virtualenv linked in, nothing else (artifacts are written here)."
    venv = Path(sys.prefix)
    if not (venv / "bin" / "ml-provenance").exists(): pytest.skip(f"no ml-provenance console script in {venv}")
    (tmp_path / ".venv").symlink_to(venv)
    return tmp_path


def _run(script, cwd, env, shell=("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")):
    return subprocess.run([*shell, script], cwd=cwd, env={**os.environ, **ENV, **env}, capture_output=True,
                          text=True, timeout=300)


def test_files_keep_the_seed_shape():
    env, steps = workflow_steps()
    scripts = " ".join(s for _, _, s in steps)
    assert "--min-pass-rate 0.95" in scripts and "--max-content-warnings 100" in scripts
    assert [n for n, _, s in steps if "ml-provenance deploy" in s] == ["Deploy"]
    assert "success()" in dict((n, i) for n, i, _ in steps)["Deploy"]
    jenv, blocks = jenkins_blocks()
    assert jenv["PROVENANCE_PATH"] == env["PROVENANCE_PATH"] == "artifacts/provenance/latest.json"
    assert jenv["MODEL_PATH"] == env["MODEL_PATH"] == "artifacts/models/latest"
    assert [b for b in blocks if "verify-safety" in b] and [b for b in blocks if "ml-provenance deploy" in b]


def _github_env(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line) if path.exists() else {}


def test_github_workflow_runs(workspace):
    env, steps = workflow_steps()
    genv = workspace / "github_env"
    ran = []
    for name, _cond, script in steps:
        if "scripts/setup.sh" in script: continue  # the virtualenv is linked in already
        # the push event of the workflow: `success() && github.event_name == 'push'` holds
        r = _run(script, workspace, {**env, **_github_env(genv), "GITHUB_ENV": str(genv)})
        assert r.returncode == 0, f"step {name!r} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        ran.append((name, r.stdout))
    out = dict(ran)
    assert "safety verification passed" in out["Run safety verification"]
    assert "deployed" in out["Deploy"] and (workspace / "artifacts/deploy/current").is_symlink()
    # the gate is real: tamper one byte of the trained weights and the same step fails, naming the component
    w = next((workspace / env["MODEL_PATH"]).glob("*.safetensors"))
    data = bytearray(w.read_bytes()); data[-1] ^= 1; w.write_bytes(bytes(data))
    step = next(s for n, _, s in steps if n == "Run safety verification")
    r = _run(step, workspace, {**env, **_github_env(genv)})
    assert r.returncode == 1 and "weights" in r.stdout, r.stdout + r.stderr


def test_jenkins_pipeline_runs(workspace):
    env, blocks = jenkins_blocks()
    outs = []
    for b in blocks:
        if "scripts/setup.sh" in b: continue
        r = _run(b, workspace, env, shell=("sh", "-e", "-c"))  # Jenkins runs `sh` steps with `sh -xe`
        assert r.returncode == 0, f"block failed ({r.returncode}):\n{b}\n{r.stdout}\n{r.stderr}"
        outs.append(r.stdout)
    assert any("safety verification passed" in o for o in outs)
    assert any(o.startswith("deployed") for o in outs)
    hist = (workspace / "artifacts/deploy/deployments.jsonl").read_text().splitlines()
    assert len(hist) == 1 and '"action": "deploy"' in hist[0]


def test_examples_reference_only_real_commands():
    from ml_provenance.cli import COMMANDS
    _, steps = workflow_steps()
    _, blocks = jenkins_blocks()
    used = set(re.findall(r"ml-provenance\s+([a-z-]+)", " ".join([s for *_, s in steps] + blocks)))
    assert used and used <= set(COMMANDS), used - set(COMMANDS)
