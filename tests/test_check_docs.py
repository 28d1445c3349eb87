"scripts/check_docs.py: broken backticked API names and sidebar entries are reported; real ones are not."
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
check_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_docs)
R = check_docs.Resolver(check_docs.load_syms(ROOT))


def test_real_references_resolve():
    for ok in ["SafetyChecker", "Tracker.get_model_hash", "MLProvenanceMerkleTree.prove", "Ledger.verify",
               "SignatureCheck.pinned", "ml_provenance.provenance.capture.scan_model", "ml_provenance.safety",
               "provenance.capture", "capture.scan_model", "deploy.rollback_hook", "ml_provenance.cli.run",
               "ml_provenance.cli.COMMANDS", "MerkleValidator", "TrainerCallback", "DistributedDataParallel",
               "KeyError", "SafetyChecker()"]:
        assert R.problem(ok) is None, ok


def test_broken_references_are_reported():
    for bad in ["SafetyCheckr", "Tracker.verfy", "ml_provenance.provenance.nope", "ml_provenance.nope",
                "capture.scan_modl", "provenance.capture.Nope", "SafetyChecker.check_everything"]:
        assert R.problem(bad) is not None, bad


def test_code_and_file_names_are_ignored():
    for code in ["Tracker(out).verify(x)", "x = SafetyChecker", "config.json", "'SafetyCheckr'", "model.foo",
                 "merkle.root", "SafetyCheckr(cfg)"]:
        assert R.problem(code) is None, code


def test_notebook_and_sidebar(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    cell = {"cell_type": "markdown", "metadata": {},
            "source": ["Use `SafetyCheckr` and `Tracker.get_model_hash`.\n", "```python\n`NotChecked`\n```\n"]}
    (nbs / "a.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    spans = list(check_docs.markdown_spans(nbs / "a.ipynb"))
    assert spans == ["SafetyCheckr", "Tracker.get_model_hash"]
    (nbs / "sidebar.yml").write_text("website:\n  sidebar:\n    contents:\n      - a.ipynb\n"
                                     "      - section: S\n        contents:\n          - missing.ipynb\n")
    assert [p[1] for p in check_docs.sidebar_problems(nbs)] == ["missing.ipynb"]


def test_navbar(tmp_path):
    (tmp_path / "here.ipynb").write_text("{}")
    (tmp_path / "_quarto.yml").write_text("website:\n  navbar:\n    left:\n      - text: A\n        href: here.ipynb\n"
                                          "      - text: B\n        href: gone.ipynb\n      - href: https://example.org\n")
    assert [p[1] for p in check_docs.navbar_problems(tmp_path)] == ["gone.ipynb"]


def test_markdown_links(tmp_path):
    cell = {"cell_type": "markdown", "metadata": {},
            "source": ["See [a](../x/a.ipynb#sec), [web](https://example.org/b.md) and [c](c.ipynb)."]}
    (tmp_path / "n.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert list(check_docs.markdown_links(tmp_path / "n.ipynb")) == ["../x/a.ipynb", "c.ipynb"]
