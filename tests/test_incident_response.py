# tests/test_incident_response.py  (verbatim from the specification's "Incident Response Testing" snippet)
import pytest
from ml_provenance.safety.incident import IncidentHandler


@pytest.fixture
def incident_handler():
    return IncidentHandler()


def test_critical_incident(incident_handler):
    # Test case: Critical incident handling
    incident = {
        "type": "critical_safety_failure",
        "details": {
            "check": "age_rating",
            "severity": "high",
            "impact": "model_rollback_required"
        }
    }
    response = incident_handler.handle_incident(incident)
    assert response["action"] == "rollback"
    assert response["severity"] == "high"
    assert "rollback_required" in response["recommended_action"]


def test_warning_threshold(incident_handler):
    # Test case: Warning threshold handling
    for _ in range(95):
        incident_handler.handle_warning("test_warning")
    assert not incident_handler.is_threshold_exceeded()
    # Add more warnings
    for _ in range(10):
        incident_handler.handle_warning("test_warning")
    assert incident_handler.is_threshold_exceeded()
    assert incident_handler.get_action() == "block_generation"
