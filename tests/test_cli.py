"""The provenance commands through the real console entry point (`python -m ml_provenance`): exit codes
0 (ok) / 1 (check failed) / 2 (bad input), exactly one line, never a traceback, and no torch import for --help."""
import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "ml_provenance", *map(str, args)], capture_output=True, text=True,
                       env=ENV, cwd=cwd, timeout=300)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


def one_line(s):
    lines = [x for x in s.splitlines() if x.strip()]
    assert len(lines) == 1, s
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    r = cli("demo", "--output-dir", out, "--seed", 3)
    assert r.returncode == 0, r.stderr
    assert "verify      OK" in r.stdout and "tamper caught at weights/transformer.h.0.attn.c_attn.weight" in r.stdout
    return out


def test_record_hash_verify_roundtrip(demo, tmp_path):
    model, prov = demo / "models" / "demo", tmp_path / "prov.json"
    r = cli("record", "--model-path", model, "--provenance-path", prov)
    assert r.returncode == 0 and "root" in one_line(r.stdout)
    root = json.loads(prov.read_text())["merkle"]["root"]
    r = cli("hash", "--model-path", model)
    assert r.returncode == 0 and one_line(r.stdout) == f"sha256:{root}"
    r = cli("verify", "--model-path", model, "--provenance-path", prov)
    assert r.returncode == 0 and one_line(r.stdout).startswith("valid") and "UNSIGNED" in r.stdout
    r = cli("verify", "--model-path", model, "--provenance-path", prov, "--component", "safety_metrics")
    assert r.returncode == 0 and one_line(r.stdout).startswith("valid: component 'safety'")


def test_verify_names_the_tampered_tensor(demo):
    r = cli("verify", "--model-path", demo / "models" / "demo-tampered", "--provenance-path",
            demo / "provenance" / "latest.json")
    line = one_line(r.stdout)
    assert r.returncode == 1 and "'weights'" in line and "transformer.h.0.attn.c_attn.weight" in line
    r = cli("verify", "--model-path", demo / "models" / "demo-tampered", "--provenance-path",
            demo / "provenance" / "latest.json", "--json")
    out = json.loads(one_line(r.stdout))
    assert r.returncode == 1 and (out["component"], out["tensor"]) == ("weights", "transformer.h.0.attn.c_attn.weight")


def test_bad_input_exits_2_with_one_line(demo, tmp_path):
    model = demo / "models" / "demo"
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "x", "merkle": {"root": ')  # truncated
    cases = [("verify", "--model-path", model, "--provenance-path", tmp_path / "missing.json"),
             ("verify", "--model-path", model, "--provenance-path", bad),
             ("verify", "--model-path", tmp_path / "no-model", "--provenance-path", demo / "provenance" / "latest.json"),
             ("verify", "--model-path", model, "--provenance-path", demo / "provenance" / "latest.json", "--component", "optimizer"),
             ("record", "--model-path", tmp_path / "no-model", "--provenance-path", tmp_path / "p.json"),
             ("hash", "--model-path", tmp_path / "no-model"),
             ("verify", "--model-path", model)]  # usage error: missing --provenance-path
    for args in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "error" in one_line(r.stderr), args


def test_help_and_cli_import_do_not_import_torch():
    r = cli("--help")
    assert r.returncode == 0 and "verify" in r.stdout
    code = ("import sys, ml_provenance.cli as c; c.build_parser(); "
            "import ml_provenance.provenance.verifier, ml_provenance.provenance.tracker; print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_record_prints_the_prefixed_root_and_refuses_a_dir_without_weights(demo, tmp_path):
    import shutil
    model, prov = tmp_path / "m", tmp_path / "prov.json"
    shutil.copytree(demo / "models" / "demo", model)
    r = cli("record", "--model-path", model, "--provenance-path", prov)
    root = json.loads(prov.read_text())["merkle"]["root"]
    assert r.returncode == 0 and f"root sha256:{root} " in one_line(r.stdout)
    # a changed config file is named in the verify line
    (model / "generation_config.json").write_text("{}")
    r = cli("verify", "--model-path", model, "--provenance-path", prov)
    assert r.returncode == 1 and "'config'" in r.stdout and "generation_config.json" in one_line(r.stdout)
    bare = tmp_path / "bare"; bare.mkdir()
    (bare / "config.json").write_text("{}")
    r = cli("record", "--model-path", bare, "--provenance-path", tmp_path / "bare.json")
    assert r.returncode == 2 and "has no *.safetensors" in one_line(r.stderr) and not (tmp_path / "bare.json").exists()


def test_pickled_checkpoints_are_weights_named_by_file(tmp_path):
    d = tmp_path / "pt"; d.mkdir()
    (d / "config.json").write_text('{"model_type": "gpt2"}')
    (d / "pytorch_model.bin").write_bytes(bytes(range(256)) * 8)
    prov = tmp_path / "prov.json"
    assert cli("record", "--model-path", d, "--provenance-path", prov).returncode == 0
    assert json.loads(prov.read_text())["merkle"]["files"]["pytorch_model.bin"]["component"] == "weights"
    blob = bytearray((d / "pytorch_model.bin").read_bytes()); blob[1000] ^= 1
    (d / "pytorch_model.bin").write_bytes(bytes(blob))
    r = cli("verify", "--model-path", d, "--provenance-path", prov, "--json")
    out = json.loads(one_line(r.stdout))
    assert r.returncode == 1 and (out["component"], out["tensor"]) == ("weights", "pytorch_model.bin")


def test_verify_logs_every_attempt_beside_the_provenance(demo):
    from ml_provenance.provenance.audit import AuditLog
    log = AuditLog(demo / "audit" / "validation.jsonl")
    before = len(log.entries()) if log.path.exists() else 0
    r = cli("verify", "--model-path", demo / "models" / "demo-tampered", "--provenance-path",
            demo / "provenance" / "latest.json")
    assert r.returncode == 1
    entries = log.entries()
    assert log.verify().ok and len(entries) == before + 1
    assert entries[-1]["result"] == "failed" and "transformer.h.0.attn.c_attn.weight" in entries[-1]["reason"]
