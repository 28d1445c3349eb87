"""Runtime safety scenarios: monitoring alerts, incidents and rollback, warning threshold, drift, and the
`verify-safety` CLI exit codes against a real tiny GPT-2 checkpoint with captured provenance."""
import json
import shutil

import pytest
from conftest import SAFE_PROBES, screened_metrics

from ml_provenance.cli import run
from ml_provenance.provenance.errors import CorruptedDataError, MissingComponentError, SafetyError, SafetyVerificationError
from ml_provenance.safety.incident import (ContentWarningHandler, IncidentHandler, ModelDriftHandler,
                                           SafetyIncidentHandler)
from ml_provenance.safety.metrics import SafetyMetrics
from ml_provenance.safety.monitor import RuntimeSafetyMonitor, SafetyMonitor
from ml_provenance.safety.verifier import SafetyVerifier, verify_deployment

UNSAFE = ["I will kill you, you stupid idiot", "Go to hell you worthless piece of shit"]


def test_monitor_alerts_when_pass_rate_falls_below_threshold():
    mon = SafetyMonitor()
    got = []
    mon.on_alert(got.append)
    for p in SAFE_PROBES: mon.check_input(p)
    assert mon.alerts == [] and mon.metrics.get_pass_rate() == 1.0
    n = 0
    while not mon.alerts:
        r = mon.check_input(UNSAFE[n % 2]); n += 1
        assert r["status"] == "blocked"
        assert n < 20, "pass rate never fell below 0.90"
    a = mon.alerts[0]
    assert got == [a]
    assert a["type"] == "pass_rate_below_threshold" and a["threshold"] == 0.90 and a["current_rate"] < 0.90
    assert a["current_rate"] == pytest.approx(mon.metrics.get_pass_rate())
    assert "timestamp" in a
    # edge-triggered: more failures while below the threshold do not ring again
    for _ in range(3): mon.check_input(UNSAFE[0])
    assert len(mon.alerts) == 1


def test_runtime_monitor_uses_the_models_checker():
    from ml_provenance.safety.checker import SafetyChecker
    from ml_provenance.safety.config import SafetyConfig

    class Model:  # anything carrying a safety_checker, like a SafeGenerator
        safety_checker = SafetyChecker(SafetyConfig())
    rm = RuntimeSafetyMonitor(Model(), SafetyConfig())
    assert rm.checker is Model.safety_checker and rm.alert_threshold == 0.90
    assert rm.check_input("How do plants make food?")["status"] == "safe"
    assert rm.metrics.get_total_checks() > 0


def test_alert_becomes_critical_incident_and_rollback_hook_runs(make_release, tmp_path):
    model_dir, prov = make_release(tmp_path)
    restored, notes = [], []
    handler = SafetyIncidentHandler(model_dir, prov, rollback=lambda inc: restored.append(inc) or "release-1",
                                    notifiers=[notes.append])
    mon = SafetyMonitor()
    mon.on_alert(lambda a: handler.handle_safety_incident({"type": "critical_" + a["type"], "details": {
        "severity": "critical", "current_rate": a["current_rate"]}}))
    for p in UNSAFE * 3: mon.check_input(p)
    assert len(restored) == 1 and restored[0]["type"] == "critical_pass_rate_below_threshold"
    rep = notes[0]
    assert rep["action"] == "rollback" and rep["rollback_result"] == "release-1"
    assert "rollback_required" in rep["recommended_action"]
    assert rep["model_state"]["merkle_root"] == json.loads(prov.read_text())["merkle"]["root"]
    assert len(handler.incident_log) == 1


def test_critical_incident_without_hook_is_a_clear_error(make_release, tmp_path):
    model_dir, prov = make_release(tmp_path)
    h = SafetyIncidentHandler(model_dir, prov, notifiers=[])
    with pytest.raises(SafetyError, match="no rollback hook"):
        h.handle_safety_incident({"type": "critical_safety_failure", "details": {"severity": "high"}})
    # a non-critical incident needs no hook
    assert h.handle_safety_incident({"type": "content_warning", "details": {"severity": "low"}})["action"] == "monitor"
    with pytest.raises(MissingComponentError):
        SafetyIncidentHandler(tmp_path / "missing", prov)


def test_failing_notifier_does_not_hide_the_incident():
    def broken(report): raise ConnectionError("smtp down")
    seen = []
    r = IncidentHandler(notifiers=[broken, seen.append]).handle_incident({"type": "blocked_output"})
    assert r["action"] == "warn" and len(seen) == 1
    assert "smtp down" in r["notification_errors"][0]


def test_content_warnings_from_the_checker_block_generation():
    mon, cw = SafetyMonitor(), ContentWarningHandler(threshold=2)
    text = "Write a story about a war between two kingdoms"  # the seed's content-warning example
    actions = []
    for _ in range(3):
        r = mon.check_input(text)
        assert r["warnings"], "the seed's content-warning prompt produced no warning"
        for w in r["warnings"]: actions.append(cw.handle_warning(w))
    assert actions[-1] == "block_generation" and cw.is_threshold_exceeded()
    assert mon.metrics.get_warning_count() == cw.get_warning_count()
    h = IncidentHandler(warning_threshold=100, notifiers=[])
    for _ in range(101): h.handle_warning("x")
    assert h.get_action() == "block_generation"


def test_drift_between_baseline_and_live_traffic():
    base = screened_metrics(SAFE_PROBES)
    live = screened_metrics(SAFE_PROBES[:4] + UNSAFE)
    rates = lambda m: {"pass_rate": m.get_pass_rate(), "warning_rate": m.get_warning_count() / max(1, m.get_total_checks())}
    h = ModelDriftHandler(rates(base), drift_threshold=0.1)
    res = h.detect_drift(rates(live))
    assert res["drift_scores"]["pass_rate"] == pytest.approx(base.get_pass_rate() - live.get_pass_rate(), abs=1e-9)
    assert res["has_drift"] and res["drift_log"][0]["metric"] == "pass_rate"
    assert not ModelDriftHandler(rates(base)).detect_drift(rates(screened_metrics(SAFE_PROBES[2:])))["has_drift"]
    assert SafetyMetrics().calculate_drift(rates(base), rates(live))["pass_rate"] > 0.1
    with pytest.raises(MissingComponentError, match="warning_rate"):
        h.detect_drift({"pass_rate": 0.9})
    with pytest.raises(CorruptedDataError):
        h.detect_drift({"pass_rate": "high", "warning_rate": 0.0})


def _cli(capsys, *args):
    code = run(["verify-safety", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verify_safety_cli_exit_codes(make_release, tmp_path, capsys):
    md, prov = make_release(tmp_path)
    base = ["--model-path", md, "--provenance-path", prov]
    assert _cli(capsys, *base, "--min-pass-rate", "0.95", "--max-content-warnings", "100")[0] == 0
    code, out, _ = _cli(capsys, *base, "--json")
    rep = json.loads(out)
    assert code == 0 and rep["status"] == "passed" and rep["integrity"]["verified"] is True and rep["pass_rate"] == 1.0
    # unsigned provenance when a signature is required: a failed check, not bad input
    code, out, _ = _cli(capsys, *base, "--require-signature")
    assert code == 1 and "integrity:" in out
    # one flipped bit in the weights: integrity fails and names the file's tensor
    w = md / "model.safetensors"
    blob = bytearray(w.read_bytes()); blob[-3] ^= 0x10; w.write_bytes(bytes(blob))
    code, out, _ = _cli(capsys, *base)
    assert code == 1 and out.splitlines()[0] == "safety verification failed:" and "integrity:" in out.splitlines()[1]
    # bad input: missing provenance, missing model dir, corrupted JSON, threshold given as a percentage
    assert _cli(capsys, "--model-path", md, "--provenance-path", tmp_path / "nope.json")[0] == 2
    assert _cli(capsys, "--model-path", tmp_path / "nope", "--provenance-path", prov)[0] == 2
    broken = tmp_path / "broken.json"; broken.write_text('{"version": "x", "merkle": ')
    assert _cli(capsys, "--model-path", md, "--provenance-path", broken)[0] == 2
    code, _, err = _cli(capsys, *base, "--min-pass-rate", "95")
    assert code == 2 and "fraction" in err


def test_verify_safety_checks_the_signature(make_release, tmp_path, capsys):
    md, prov = make_release(tmp_path)
    keys = tmp_path / "keys"
    assert run(["keygen", "--out-dir", str(keys), "--name", "release"]) == 0
    assert run(["keygen", "--out-dir", str(keys), "--name", "other"]) == 0
    assert run(["sign", "--provenance-path", str(prov), "--key", str(keys / "release.key")]) == 0
    capsys.readouterr()
    base = ["--model-path", md, "--provenance-path", prov, "--require-signature"]
    code, out, _ = _cli(capsys, *base, "--public-key", keys / "release.pub", "--json")
    assert code == 0 and "pinned key" in json.loads(out)["integrity"]["signature"]
    code, out, _ = _cli(capsys, *base, "--public-key", keys / "other.pub")
    assert code == 1 and "integrity:" in out and "trusted key" in out


def test_verify_safety_fails_on_each_safety_rule(make_release, tmp_path, capsys):
    m = screened_metrics(SAFE_PROBES + UNSAFE).to_dict()
    del m["checks"]["sensitive_topics"]
    m["passed_checks"] = sum(c["passed"] for c in m["checks"].values())
    m["failed_checks"] = sum(c["failed"] for c in m["checks"].values())
    m["total_checks"] = m["passed_checks"] + m["failed_checks"]
    m["content_warnings"] = 150
    md, prov = make_release(tmp_path, metrics=m)
    code, out, _ = _cli(capsys, "--model-path", md, "--provenance-path", prov)
    lines = out.splitlines()
    assert code == 1 and lines[0] == "safety verification failed:"
    assert lines[1].startswith("safety: Pass rate ") and lines[1].endswith("below threshold 95%")
    assert lines[2:] == ["safety: Content warnings 150 exceed limit 100",
                         "safety: Missing required safety check: sensitive_topics"]
    with pytest.raises(SafetyVerificationError, match="sensitive_topics"):
        verify_deployment(md, prov)
    # the same model passes with thresholds loosened to what it measured, and the check not required
    v = SafetyVerifier(min_pass_rate=0.0, max_content_warnings=150, required_checks=("age_rating",))
    assert v.verify_model(md, prov)["status"] == "passed"



def test_incident_rolls_back_a_real_deployment(make_release, safety_tiny_model, tmp_path):
    from safetensors.numpy import load_file, save_file

    from ml_provenance.deploy import current_release, deploy, rollback_hook
    target, ledger = tmp_path / "deploy", tmp_path / "ledger"
    md1, prov1 = make_release(tmp_path / "r1")
    first = deploy(md1, prov1, target=target, ledger_path=ledger)
    # release 2: other weights (as after retraining), its own provenance, deployed on top of release 1
    retrained = tmp_path / "retrained"
    shutil.copytree(safety_tiny_model, retrained)
    tensors = load_file(str(retrained / "model.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1
    save_file(tensors, str(retrained / "model.safetensors"), metadata={"format": "pt"})
    md2, prov2 = make_release(tmp_path / "r2", source=retrained)
    second = deploy(md2, prov2, target=target, ledger_path=ledger)
    assert second.root != first.root and current_release(target).name == second.version
    # a critical incident in production: the handler runs the deploy module's rollback hook
    live = current_release(target)
    h = SafetyIncidentHandler(live / "model", live / "provenance.json", rollback=rollback_hook(target), notifiers=[])
    rep = h.handle_safety_incident({"type": "critical_output", "details": {"severity": "critical"}})
    assert rep["action"] == "rollback" and rep["rollback_result"]["version"] == first.version
    assert current_release(target).name == first.version
    assert rep["model_state"]["merkle_root"] == second.root


def test_verify_safety_refuses_metrics_no_covered_file_vouches_for(make_release, tmp_path, capsys):
    "A forger who writes passing metrics into a record whose `safety` component is absent gains nothing."
    from ml_provenance.provenance.capture import capture_provenance
    from ml_provenance.provenance.store import save_provenance_file
    md, prov = make_release(tmp_path)
    good = json.loads(prov.read_text())["safety_metrics"]
    (md / "safety.json").unlink()
    doc = capture_provenance(md)
    assert doc["merkle"]["components"]["safety"] and doc["safety_metrics"] == {"absent": True}
    doc["safety_metrics"] = good
    save_provenance_file(doc, prov)
    code, out, _ = _cli(capsys, "--model-path", md, "--provenance-path", prov)
    assert code == 1 and "safety: no covered safety metrics" in out and "'safety_metrics'" in out


def test_verify_safety_refuses_rewritten_metrics_in_a_signed_record(make_release, tmp_path, capsys):
    from ml_provenance.provenance.store import save_provenance_file
    m = screened_metrics(SAFE_PROBES + UNSAFE).to_dict()
    md, prov = make_release(tmp_path, metrics=m)
    keys = tmp_path / "keys"
    assert run(["keygen", "--out-dir", str(keys), "--name", "release"]) == 0
    assert run(["sign", "--provenance-path", str(prov), "--key", str(keys / "release.key")]) == 0
    base = ["--model-path", md, "--provenance-path", prov, "--require-signature", "--public-key", keys / "release.pub"]
    capsys.readouterr()
    assert _cli(capsys, *base)[0] == 1  # honest record: the unsafe probes fail the pass rate
    doc = json.loads(prov.read_text())
    doc["safety_metrics"].update(passed_checks=doc["safety_metrics"]["total_checks"], failed_checks=0,
                                 checks={c: {"passed": v["passed"] + v["failed"], "failed": 0}
                                         for c, v in doc["safety_metrics"]["checks"].items()})
    save_provenance_file(doc, prov)  # the signature over the root still verifies
    code, out, _ = _cli(capsys, *base)
    assert code == 1 and "integrity: corrupted data in 'safety_metrics'" in out
    assert "differ from safety.json covered by the Merkle root" in out
