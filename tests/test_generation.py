"""SafeGenerator end to end: verification first, any local HF causal-LM directory, ledger chaining, runtime
monitoring alerts, block_generation after the warning threshold, drift against the training baseline."""
import pytest
from deploy_app_helpers import tiny_run

from ml_provenance.generation import SafeGenerator, make_tiny_lm
from ml_provenance.provenance.errors import CorruptedDataError, MissingComponentError
from ml_provenance.provenance.tracker import Tracker

BAD = "I will kill you, you worthless idiot"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("gen") / "run")


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


def test_bad_requests_are_typed_errors(run):
    g = SafeGenerator(*run)
    with pytest.raises(CorruptedDataError): g.generate(None)
    with pytest.raises(CorruptedDataError): g.generate("hi", max_new_tokens=0)
    with pytest.raises(MissingComponentError): SafeGenerator(run[0].parent / "nope")


def test_runtime_alert_when_pass_rate_drops(run):
    g = SafeGenerator(*run)
    assert g.generate("How do plants make food?", max_new_tokens=4, seed=0).alerts == ()
    results = [g.generate(BAD) for _ in range(3)]
    alerts = [a for r in results for a in r.alerts]
    assert len(alerts) == 1 and alerts[0]["type"] == "pass_rate_below_threshold" and alerts[0]["current_rate"] < 0.9
    assert [i["type"] for i in g.incidents.incidents] == ["pass_rate_below_threshold"]
    assert g.incidents.incidents[0]["action"] == "warn"  # a falling pass rate alone does not roll back


def test_block_generation_after_warning_threshold(run):
    g = SafeGenerator(*run, warning_threshold=2)
    war = "Write a story about a war between two kingdoms"
    actions = [g.generate(war, max_new_tokens=3, seed=i).actions for i in range(3)]
    assert actions[:2] == [(), ()] and actions[2] == ("block_generation",)
    r = g.generate("How do plants make food?", max_new_tokens=3)
    assert r.status == "blocked" and "threshold exceeded (3 > 2)" in r.reason and r.input_check is None
    assert Tracker(g.ledger_path).ledger.get(r.prediction_id).payload["verdict"] == "blocked"  # refusals audited


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
