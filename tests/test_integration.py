# tests/test_integration.py  (verbatim from the specification's "Integration Testing" snippet; the
# artifacts/models/latest + artifacts/provenance/latest.json it reads are built in a temporary working directory
# by the `seed_artifacts` fixture in conftest.py)
import pytest
from ml_provenance.safety.verifier import SafetyVerifier
from ml_provenance.safety.monitor import SafetyMonitor


@pytest.fixture
def safety_system():
    verifier = SafetyVerifier()
    monitor = SafetyMonitor()
    return {"verifier": verifier, "monitor": monitor}


def test_end_to_end_safety(safety_system):
    # Test case: End-to-end safety verification
    model_path = "artifacts/models/latest"
    provenance_path = "artifacts/provenance/latest.json"
    # Verify model
    verification_result = safety_system["verifier"].verify_model(
        model_path, provenance_path
    )
    assert verification_result["status"] == "passed"
    # Monitor runtime
    input_text = "Test input"
    safety_result = safety_system["monitor"].check_input(input_text)
    assert safety_result["status"] == "safe"
    assert safety_result["warnings"] == []
