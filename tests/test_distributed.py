"The training loop under `torchrun --nproc_per_node=2` (DDP, gloo on CPU): one record, written by rank 0 only."
import json
import os
import subprocess
import sys

from ml_provenance.provenance.tracker import Tracker
from ml_provenance.training.data import embedded_corpus


def test_two_process_cpu_training(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("\n\n".join(embedded_corpus(150, seed=3)))
    out = tmp_path / "art"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ml_provenance",
           "train", "--model", "tiny", "--data", str(data), "--epochs", "1", "--max-steps", "4",
           "--output-dir", str(out), "--block-sensitive-topics", "--require-content-warning"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("merkle root:") == 1  # only rank 0 prints (and writes)
    versions = [f for f in (out / "provenance").glob("*.json") if f.name != "latest.json"]
    assert len(versions) == 1
    runs = [d for d in (out / "models").iterdir() if d.name != "latest"]
    assert len(runs) == 1
    doc = json.loads(versions[0].read_text())
    assert doc["system"]["world_size"] == 2
    assert doc["training_provenance"]["config"]["world_size"] == 2
    assert doc["training_provenance"]["config"]["steps"] == 4
    tr = Tracker(out)
    assert tr.verify_model_hash(tr.get_model_hash(runs[0]), doc)
    assert len(tr.events()) == 3  # dataset, training, evaluation: once, not once per process
