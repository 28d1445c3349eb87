"""Shared helpers for the generation / app / deploy tests (not a conftest: other modules own tests/conftest.py)."""
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REQUIRED = ("age_rating", "content_filter", "sensitive_topics")


def tiny_run(root: Path, seed: int = 0, **kw):
    """A fixture run in `root` (training layout: tiny random GPT-2, provenance, ledger with a training event); its
    safety metrics are `SafetyChecker` over fixed harmless sentences unless `safety_metrics=` is given."""
    from ml_provenance.generation import make_tiny_run
    return make_tiny_run(root, seed=seed, **kw)


def metrics_section(passed: int, failed: int, warnings: int = 0, checks=REQUIRED) -> dict:
    "A consistent `safety_metrics` section: `passed`/`failed` spread over `checks` (per-check counts add up)."
    per = {c: {"passed": 0, "failed": 0} for c in checks}
    for i in range(passed): per[checks[i % len(checks)]]["passed"] += 1
    for i in range(failed): per[checks[i % len(checks)]]["failed"] += 1
    return {"content_warnings": warnings, "passed_checks": passed, "failed_checks": failed,
            "total_checks": passed + failed, "checks": per}


def flip_last_byte(path: Path) -> Path:
    "Flip one bit of the last byte of `path` (a tensor's data for a safetensors file)."
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    return path


def weights_file(model_dir: Path) -> Path:
    return next(Path(model_dir).glob("*.safetensors"))



def churn_worker(target, runs, rounds, offset, barrier, out):
    "One process of the concurrency test: `rounds` times deploy a run, then roll back; puts its results on `out`."
    from ml_provenance.deploy import deploy, rollback
    from ml_provenance.provenance.errors import SafetyVerificationError
    barrier.wait()
    done, refused = [], 0
    for i in range(rounds):
        done.append(deploy(*runs[(i + offset) % len(runs)], target).to_dict())
        try: done.append(rollback(target, reason="concurrency test").to_dict())
        except SafetyVerificationError: refused += 1  # nothing earlier left that was not rolled away from
    out.put((offset, done, refused))
