"""SafeGenerator end to end: verification first, any local HF causal-LM directory, ledger chaining, runtime
monitoring alerts, block_generation after the warning threshold, drift against the training baseline."""
import pytest
from deploy_app_helpers import flip_last_byte, tiny_run, weights_file

from ml_provenance.generation import SafeGenerator, make_tiny_lm
from ml_provenance.provenance.errors import CorruptedDataError, MissingComponentError
from ml_provenance.provenance.hash_config import hash_bytes
from ml_provenance.provenance.tracker import Tracker

BAD = "I will kill you, you worthless idiot"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("gen") / "run")


@pytest.fixture(scope="module")
def gen(run):
    return SafeGenerator(*run)


def test_predictions_are_chained_to_the_model_in_the_ledger(run):
    g = SafeGenerator(*run)
    r = g.generate("How do plants make food?", max_new_tokens=8, seed=0)
    led = Tracker(g.ledger_path).ledger
    ev = led.get(r.prediction_id)
    train = led.get(g.model_event)
    assert ev.type == "prediction" and ev.parents == (train.hash,) and train.payload["model_version"] == g.model_root
    assert ev.payload["output_digest"] == r.output_digest and r.output_digest.startswith("sha256:")
    assert bool(led.verify(r.prediction_id))


def test_any_local_hf_directory(tmp_path):
    bare = make_tiny_lm(tmp_path / "bare", seed=3)
    with pytest.raises(MissingComponentError, match="provenance"): SafeGenerator(bare)
    with pytest.warns(UserWarning, match="UNVERIFIED"):
        g = SafeGenerator(bare, allow_unverified=True, ledger_path=tmp_path / "ledger")
    r = g.generate("The stars are", max_new_tokens=5, seed=0)
    assert r.verified is False and r.model_root and r.prediction_id  # root of the files as loaded, still recorded


@pytest.mark.parametrize("kw, name", [
    (dict(prompt=""), "prompt"), (dict(prompt=" \n\t"), "prompt"), (dict(prompt=None), "prompt"),
    (dict(prompt=123), "prompt"), (dict(max_new_tokens=0), "max_new_tokens"), (dict(max_new_tokens=-5), "max_new_tokens"),
    (dict(max_new_tokens=2.0), "max_new_tokens"), (dict(temperature=-1), "temperature"),
    (dict(temperature=float("nan")), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(top_k=-3), "top_k"), (dict(top_p=0), "top_p"), (dict(top_p=1.01), "top_p"),
    (dict(top_p=float("nan")), "top_p"), (dict(seed="7"), "seed")])
def test_bad_requests_are_typed_errors_before_anything_runs(gen, kw, name):
    n, led = len(gen.history), len(Tracker(gen.ledger_path).ledger)
    with pytest.raises(CorruptedDataError) as e: gen.generate(**{"prompt": "hi there", **kw})
    assert e.value.component == name and str(e.value).count("\n") == 0
    assert (len(gen.history), len(Tracker(gen.ledger_path).ledger)) == (n, led)  # nothing checked, generated or recorded


def test_edge_values_that_are_valid(gen):
    assert gen.generate("hi there", temperature=0, top_k=0, top_p=1.0, max_new_tokens=1).max_new_tokens == 1  # greedy
    assert gen.generate("hi there", top_k=None, top_p=None, seed=None, max_new_tokens=2).status != "blocked"


def test_missing_model_directory(run):
    with pytest.raises(MissingComponentError): SafeGenerator(run[0].parent / "nope")


def test_runtime_alert_when_pass_rate_drops(run):
    g = SafeGenerator(*run)
    assert g.generate("How do plants make food?", max_new_tokens=4, seed=0).alerts == ()
    results = [g.generate(BAD) for _ in range(3)]
    alerts = [a for r in results for a in r.alerts]
    assert len(alerts) == 1 and alerts[0]["type"] == "pass_rate_below_threshold" and alerts[0]["current_rate"] < 0.9
    assert [i["type"] for i in g.incidents.incidents] == ["pass_rate_below_threshold"]
    assert g.incidents.incidents[0]["action"] == "warn"  # a falling pass rate alone does not roll back


def test_the_request_that_crosses_the_warning_threshold_is_itself_blocked(run):
    g = SafeGenerator(*run, warning_threshold=2)
    war = "Write a story about a war between two kingdoms"
    rs = [g.generate(war, max_new_tokens=3, seed=i) for i in range(3)]
    assert [r.status for r in rs] == ["warning", "warning", "blocked"]
    assert [r.actions for r in rs] == [(), (), ("block_generation",)]
    third = rs[2]
    assert third.text == "" and third.output_check is None and third.warnings  # warning shown, text withheld
    assert "threshold exceeded (3 > 2)" in third.reason
    led = Tracker(g.ledger_path).ledger
    assert led.get(third.prediction_id).payload["verdict"] == "blocked"
    assert third.output_digest == str(hash_bytes(b""))  # the digest of "", not of the withheld text
    r = g.generate("How do plants make food?", max_new_tokens=3)
    assert r.status == "blocked" and "threshold exceeded (3 > 2)" in r.reason and r.input_check is None
    assert led.get(r.prediction_id).payload["verdict"] == "blocked"  # refusals audited
    g.reset_block()
    assert g.generate("How do plants make food?", max_new_tokens=3, seed=0).status != "blocked"


def test_prompt_warnings_that_cross_the_threshold_stop_before_generation(run):
    g = SafeGenerator(*run, warning_threshold=0)
    r = g.generate("Write a story about a war between two kingdoms", max_new_tokens=3, seed=0)
    assert (r.status, r.actions, r.text, r.output_check) == ("blocked", ("block_generation",), "", None)
    assert "generate" not in r.timings and r.input_check["warnings"]


def test_incidents_are_logged_by_the_default_notifier(run, caplog):
    import logging
    g = SafeGenerator(*run)
    with caplog.at_level(logging.WARNING, logger="ml_provenance.safety.incident"):
        for _ in range(2): g.generate(BAD)
    assert g.incidents.notifiers and any("pass_rate_below_threshold" in m for m in caplog.messages)


def _two_releases(tmp_path):
    "Deploy two tiny runs to one target; returns their (model, provenance) pairs and the target."
    from ml_provenance.deploy import deploy
    m1, p1 = tiny_run(tmp_path / "run1", seed=1)
    m2, p2 = tiny_run(tmp_path / "run2", seed=2)
    target = tmp_path / "deploy"
    deploy(m1, p1, target=target)
    deploy(m2, p2, target=target)
    return (m1, p1), (m2, p2), target


def test_rollback_hook_rolls_back_and_the_generator_reloads(tmp_path):
    import json

    from ml_provenance.deploy import current_release, rollback_hook
    (m1, p1), (m2, p2), target = _two_releases(tmp_path)
    roots = [json.loads(p.read_text())["merkle"]["root"] for p in (p1, p2)]
    g = SafeGenerator(target / "current" / "model", rollback=rollback_hook(target), ledger_path=tmp_path / "run2")
    assert g.model_root == roots[1] and g.notice is None
    before = g.generate("The stars are", max_new_tokens=4, seed=0, temperature=0)
    resp = g.incidents.handle_incident({"type": "blocked_output", "details": {"severity": "high"}})
    assert resp["action"] == "rollback" and resp["rolled_back"] and resp["rollback_result"].action == "rollback"
    assert current_release(target).name == resp["rollback_result"].version
    assert (g.model_root, g.verified, g.provenance_path.parent) == (roots[0], True, current_release(target))
    assert "Rolled back" in g.notice and roots[0] in g.notice
    after = g.generate("The stars are", max_new_tokens=4, seed=0, temperature=0)
    assert after.model_root == roots[0] and before.model_root == roots[1]
    assert Tracker(tmp_path / "run2").ledger.get(after.prediction_id).payload["model_root"] == roots[0]


def test_failed_reload_after_rollback_blocks_generation(tmp_path):
    from ml_provenance.deploy import rollback_hook
    (m1, p1), (m2, p2), target = _two_releases(tmp_path)
    g = SafeGenerator(target / "current" / "model", rollback=rollback_hook(target), ledger_path=tmp_path / "run2")
    # tampering with the earlier release *after* the gate would pass it: the reload verifies and must refuse
    hook = rollback_hook(target)
    def tamper_then_roll(incident=None, *a, **k):
        res = hook(incident)
        flip_last_byte(weights_file(target / "current" / "model"))
        return res
    g.incidents.rollback = g._rollback_and_reload(tamper_then_roll)
    resp = g.incidents.handle_incident({"type": "blocked_output", "details": {"severity": "high"}})
    assert resp["rollback_error"] and "weights" in resp["rollback_error"]
    r = g.generate("How do plants make food?", max_new_tokens=3)
    assert r.status == "blocked" and "restored model cannot be served" in r.reason
    assert g.verified is False and "restored model cannot be served" in g.notice  # shown as a banner by the tester


def test_drift_against_training_baseline(run):
    g = SafeGenerator(*run)
    base = g.baseline()
    assert base["pass_rate"] >= 0.95
    g.generate("How do plants make food?", max_new_tokens=3, seed=0)
    small = g.drift()["pass_rate"]
    for _ in range(3): g.generate(BAD)
    assert g.drift()["pass_rate"] > max(small, 0.1)  # the seed's drift threshold is 0.1


def test_prediction_events_use_durability_normal_other_writers_keep_full(run):
    from ml_provenance.provenance.errors import LedgerError
    g = SafeGenerator(*run)
    sync = lambda led: led._db.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731  1 = NORMAL, 2 = FULL
    other = Tracker(g.ledger_path).ledger  # e.g. a deployment or training writer on the same directory
    assert (g.tracker.ledger.durability, sync(g.tracker.ledger), other.durability, sync(other)) == ("normal", 1, "full", 2)
    r = g.generate("How do plants make food?", max_new_tokens=3, seed=0)
    assert r.prediction_id in other and bool(other.verify(r.prediction_id))
    f = SafeGenerator(*run, ledger_durability="full")
    assert sync(f.tracker.ledger) == 2 and f.generate("The stars are", max_new_tokens=3, seed=0).prediction_id
    with pytest.raises(LedgerError, match="durability"): SafeGenerator(*run, ledger_durability="fast")
