"""The seed's deployment scenarios: pre-deployment pass/fail, tampering refused with the component named, atomic
promotion, rollback (re-verified) and a critical incident rolling back through the same function."""
import json
import shutil

import pytest
from deploy_app_helpers import churn_worker, flip_last_byte, metrics_section, tiny_run, weights_file

from ml_provenance.cli import run
from ml_provenance.deploy import (check_deployable, current_release, deploy, deployment_history, deployment_ledger,
                                  rollback, rollback_hook)
from ml_provenance.provenance.errors import MissingComponentError, SafetyVerificationError


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "Two good runs (seeds 0 and 1), built once; tests copy what they modify."
    root = tmp_path_factory.mktemp("runs")
    return [tiny_run(root / f"run{s}", seed=s) for s in (0, 1)]


def _copy_run(run, dst):
    model, prov = run
    out = dst / "copy"
    shutil.copytree(model.parent.parent, out)
    return out / "models" / model.name, out / "provenance" / "latest.json"


def test_passing_model_is_promoted(runs, tmp_path):
    model, prov = runs[0]
    target = tmp_path / "deploy"
    r = deploy(model, prov, target, ledger_path=tmp_path / "ledger")
    assert current_release(target) == (target / "releases" / r.version).resolve()
    assert (target / "current").is_symlink()
    assert (current_release(target) / "model" / weights_file(model).name).read_bytes() == weights_file(model).read_bytes()
    [h] = deployment_history(target)
    assert (h["action"], h["version"], h["root"]) == ("deploy", r.version, r.root)
    from ml_provenance.provenance.tracker import Tracker
    ev = Tracker(tmp_path / "ledger").ledger.get(r.ledger_event)
    assert (ev.type, ev.payload["model_root"], ev.payload["action"]) == ("deployment", r.root, "deploy")


@pytest.mark.parametrize("section,expect", [
    (metrics_section(90, 10), "Pass rate"),  # 90% < 95%
    (metrics_section(1000, 0, warnings=150), "Content warnings"),  # 150 > 100
    (metrics_section(99, 0, checks=("age_rating", "content_filter")), "sensitive_topics"),  # required check missing
])
def test_failing_safety_metrics_are_refused(tmp_path, section, expect):
    model, prov = tiny_run(tmp_path / "run", safety_metrics=section)
    target = tmp_path / "deploy"
    rep = check_deployable(model, prov)
    assert rep["status"] == "failed" and any(expect in r for r in rep["reasons"]), rep
    with pytest.raises(SafetyVerificationError, match=expect) as e:
        deploy(model, prov, target)
    assert e.value.report.reasons == rep["reasons"]
    assert not target.exists()  # refused before anything was written


def test_thresholds_are_parameters(tmp_path):
    model, prov = tiny_run(tmp_path / "run", safety_metrics=metrics_section(90, 10))
    assert check_deployable(model, prov, min_pass_rate=0.9)["status"] == "passed"


@pytest.mark.parametrize("victim,component", [("weights", "weights"), ("config.json", "config")])
def test_tampered_model_is_refused_with_the_component_named(runs, tmp_path, victim, component):
    model, prov = _copy_run(runs[0], tmp_path)
    if victim == "weights": flip_last_byte(weights_file(model))
    else:
        cfg = json.loads((model / victim).read_text()); cfg["n_layer"] = 7
        (model / victim).write_text(json.dumps(cfg))
    with pytest.raises(SafetyVerificationError, match=f"component '{component}'") as e:
        deploy(model, prov, tmp_path / "deploy")
    if component == "weights": assert "tensor '" in str(e.value)
    assert current_release(tmp_path / "deploy") is None


def test_previous_deployment_intact_until_the_switch(runs, tmp_path, monkeypatch):
    target = tmp_path / "deploy"
    first = deploy(*runs[0], target, ledger_path=tmp_path / "l")
    before = {p.name: p.read_bytes() for p in (current_release(target) / "model").iterdir()}
    import ml_provenance.deploy as d
    real, calls = d.shutil.copyfile, []
    def failing_copy(src, dst, **kw):  # a crash in the middle of copying the new release
        calls.append(src)
        if len(calls) == 3: raise OSError(28, "No space left on device")
        return real(src, dst, **kw)
    monkeypatch.setattr(d.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="No space"): deploy(*runs[1], target, ledger_path=tmp_path / "l")
    monkeypatch.undo()
    assert current_release(target).name == first.version
    assert {p.name: p.read_bytes() for p in (current_release(target) / "model").iterdir()} == before
    assert [p.name for p in (target / "releases").iterdir()] == [first.version]  # no staging debris
    assert len(deployment_history(target)) == 1


def test_rollback_restores_the_previous_release(runs, tmp_path):
    target = tmp_path / "deploy"
    a = deploy(*runs[0], target, ledger_path=tmp_path / "l")
    b = deploy(*runs[1], target, ledger_path=tmp_path / "l")
    assert (b.previous, current_release(target).name) == (a.version, b.version)
    r = rollback(target, reason="test")
    assert (r.version, r.previous, r.root) == (a.version, b.version, a.root)
    assert current_release(target).name == a.version
    assert [h["action"] for h in deployment_history(target)] == ["deploy", "deploy", "rollback"]
    with pytest.raises(SafetyVerificationError, match="no earlier deployment"): rollback(target)


def test_rollback_reverifies_and_skips_tampered_releases(runs, tmp_path):
    target = tmp_path / "deploy"
    a = deploy(*runs[0], target, ledger_path=tmp_path / "l")
    b = deploy(*runs[1], target, ledger_path=tmp_path / "l")
    c = deploy(*runs[0], target, ledger_path=tmp_path / "l")
    flip_last_byte(weights_file(target / "releases" / b.version / "model"))
    r = rollback(target)
    assert r.version == a.version and len(r.skipped) == 1 and "weights" in r.skipped[0]
    assert r.previous == c.version
    flip_last_byte(weights_file(target / "releases" / a.version / "model"))
    deploy(*runs[1], target, ledger_path=tmp_path / "l")
    live = current_release(target).name
    with pytest.raises(SafetyVerificationError, match="weights"): rollback(target)
    assert current_release(target).name == live  # nothing switched


def test_critical_incident_rolls_back(runs, tmp_path):
    from ml_provenance.safety.incident import SafetyIncidentHandler
    target = tmp_path / "deploy"
    a = deploy(*runs[0], target, ledger_path=tmp_path / "l")
    deploy(*runs[1], target, ledger_path=tmp_path / "l")
    live = current_release(target)
    h = SafetyIncidentHandler(live / "model", live / "provenance.json", rollback=rollback_hook(target), notifiers=[])
    rep = h.handle_safety_incident({"type": "critical_safety_failure",
                                    "details": {"check": "age_rating", "severity": "high", "impact": "model_rollback_required"}})
    assert rep["action"] == "rollback" and current_release(target).name == a.version
    assert deployment_history(target)[-1]["reason"] == "incident: critical_safety_failure"
    low = h.handle_safety_incident({"type": "content_warning", "details": {"severity": "low"}})
    assert low["action"] == "monitor" and current_release(target).name == a.version


def test_cli_exit_codes(runs, tmp_path, capsys):
    model, prov = runs[0]
    t = str(tmp_path / "deploy")
    assert run(["deploy", "--model-path", str(model), "--provenance-path", str(prov), "--target", t]) == 0
    assert capsys.readouterr().out.startswith("deployed ")
    bad_model, bad_prov = tiny_run(tmp_path / "bad", safety_metrics=metrics_section(80, 20, warnings=150))
    assert run(["deploy", "--model-path", str(bad_model), "--provenance-path", str(bad_prov), "--target", t]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "deployment refused:" and len([ln for ln in out if ln.startswith("  - ")]) >= 2
    assert run(["rollback", "--target", t]) == 1  # a real target, nothing earlier: a refusal
    capsys.readouterr()
    assert run(["rollback", "--target", str(tmp_path / "nonexist")]) == 2  # not a deployment target: bad input
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonexist" in err[0] and "nothing was ever deployed" in err[0]
    (tmp_path / "empty").mkdir()
    assert run(["rollback", "--target", str(tmp_path / "empty")]) == 2
    capsys.readouterr()
    assert run(["deploy", "--model-path", str(tmp_path / "nope"), "--provenance-path", str(prov), "--target", t]) == 2
    assert "ml-provenance: error:" in capsys.readouterr().err


def test_missing_inputs_are_typed_errors(tmp_path, runs):
    with pytest.raises(MissingComponentError): deploy(tmp_path / "nope", runs[0][1], tmp_path / "t")
    with pytest.raises(MissingComponentError): deploy(runs[0][0], tmp_path / "nope.json", tmp_path / "t")


def _ledger_event(entry):
    from ml_provenance.provenance.tracker import Tracker
    return Tracker(entry["ledger"]).ledger.get(entry["ledger_event"])


def test_deployment_events_go_to_the_models_run_ledger(runs, tmp_path):
    "Rule: the ledger of the model's run (chained to its training event); a rollback uses the restored release's."
    from ml_provenance.provenance.tracker import Tracker
    (m0, p0), (m1, p1) = runs
    run0, run1 = p0.parent.parent.resolve(), p1.parent.parent.resolve()
    target = tmp_path / "deploy"
    a, b = deploy(m0, p0, target), deploy(m1, p1, target)
    r = rollback(target, reason="rule")
    assert (a.ledger, b.ledger, r.ledger) == (str(run0), str(run1), str(run0))
    h = deployment_history(target)
    assert [e["ledger"] for e in h] == [str(run0), str(run1), str(run0)]
    for e, want, model_run in zip(h, ["deploy", "deploy", "rollback"], [run0, run1, run0]):
        ev = _ledger_event(e)
        t = Tracker(model_run)
        assert (ev.type, ev.payload["action"], ev.payload["model_root"]) == ("deployment", want, e["root"])
        training = [x.hash for x in t.events() if x.type == "training" and x.payload["model_version"] == e["root"]]
        assert ev.parents == tuple(training) and len(training) == 1  # hangs off the model's training event
    assert not (target / "ledger").exists()  # nothing in the target's fallback ledger


def test_provenance_without_a_run_ledger_uses_the_target_ledger(runs, tmp_path):
    model, prov = _copy_run(runs[0], tmp_path)
    for f in prov.parent.parent.glob("ledger.sqlite*"): f.unlink()
    target = tmp_path / "deploy"
    assert deployment_ledger(prov, target) == target.resolve() / "ledger"
    a = deploy(model, prov, target)
    assert a.ledger == str(target.resolve() / "ledger") and deployment_history(target)[0]["ledger"] == a.ledger
    assert _ledger_event(deployment_history(target)[0]).parents == ()  # no model event to chain to
    assert not list(prov.parent.parent.glob("ledger.sqlite*"))  # nothing written next to the provenance
    explicit = deploy(model, prov, target, ledger_path=tmp_path / "mine")
    assert explicit.ledger == str((tmp_path / "mine").resolve())
    assert _ledger_event(deployment_history(target)[-1]).payload["action"] == "deploy"


def test_concurrent_deploys_and_rollbacks_keep_every_event(runs, tmp_path):
    "Two processes deploy and roll back one target at once: every event kept, `previous` chains, `current` verifies."
    import multiprocessing as mp
    target = tmp_path / "deploy"
    deploy(*runs[0], target); deploy(*runs[1], target)
    ctx = mp.get_context("fork")  # the children only hash and copy files: no torch threads involved
    barrier, out, rounds = ctx.Barrier(2), ctx.Queue(), 4
    procs = [ctx.Process(target=churn_worker, args=(target, runs, rounds, k, barrier, out)) for k in (0, 1)]
    for p in procs: p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs: p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    done = [d for _, ds, _ in results for d in ds]
    assert sum(d["action"] == "deploy" for d in done) == 2 * rounds and sum(d["action"] == "rollback" for d in done) > 0
    h = deployment_history(target)
    assert len(h) == 2 + len(done)  # no event lost
    assert sorted((e["action"], e["version"], e["previous"]) for e in h[2:]) == sorted(
        (d["action"], d["version"], d["previous"]) for d in done)  # what each call returned is what was recorded
    assert [e["previous"] for e in h] == [None] + [e["version"] for e in h[:-1]]  # each saw the one before it
    assert current_release(target).name == h[-1]["version"]
    live = current_release(target)
    assert check_deployable(live / "model", live / "provenance.json")["status"] == "passed"
    assert [_ledger_event(e).payload["action"] for e in h] == [e["action"] for e in h]
    assert not [p for p in (target / "releases").iterdir() if p.name.startswith(".")]  # no staging debris
