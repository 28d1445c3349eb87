"""Tuning aid for the safety lexicons: figures on DEV rows only (i % 5 != 0) and the terms behind errors.

For every lexicon term that fired on dev rows, how many flagged texts were true positives and how many false
positives (clean texts). Terms with many false and few true positives were removed or demoted to weak cues, and
each category's weak-cue threshold (`min_cues` in its lexicon file) was chosen by comparing the settings printed at
the end. Test rows are never loaded.

Usage: python bench/tune_safety.py [--terms 40] [--min-cues 1 2 3]
"""
import argparse
import collections
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_safety import load_davidson, load_moderation, moderation_labels, prf, score_moderation  # noqa: E402


def checker(block_topics: bool, min_cues: int | None = None):
    from ml_provenance.safety.checker import LexiconDetector, SafetyChecker
    from ml_provenance.safety.config import SafetyConfig
    cfg = SafetyConfig(max_input_length=100_000, block_sensitive_topics=block_topics)
    return SafetyChecker(cfg, detectors=[LexiconDetector(cfg, min_cues=min_cues)])


def term_table(results, y, n) -> pd.DataFrame:
    "Per (category, term): flagged texts that were positive (tp) and clean (fp)."
    tp, fp = collections.Counter(), collections.Counter()
    for r, lab in zip(results, y):
        if r.status == "safe": continue
        for key in {(c.category, c.term) for c in r.categories}: (tp if lab else fp)[key] += 1
    keys = set(tp) | set(fp)
    df = pd.DataFrame([{"category": k[0], "term": k[1], "tp": tp[k], "fp": fp[k]} for k in keys])
    return df.sort_values(["fp", "tp"], ascending=[False, True]).head(n) if len(df) else df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--terms", type=int, default=40)
    ap.add_argument("--min-cues", type=int, nargs="*", default=[0, 2, 3, 4],
                    help="0 = each category file's own min_cues (the shipped setting); k = k for every category")
    a = ap.parse_args(argv)
    pd.set_option("display.width", 160)
    dav, mod = load_davidson("dev"), load_moderation("dev")
    mtexts, mlab = [r["prompt"] for r in mod], moderation_labels(mod)
    rows = []
    for k in a.min_cues:
        dres = [checker(False, k or None).check_input(t) for t in dav["text"]]
        rows.append({"min_cues": k, "file": "davidson", "category": "any",
                     **prf(dav["y"].tolist(), [r.status != "safe" for r in dres])})
        mres = [checker(True, k or None).check_input(t) for t in mtexts]
        sc = score_moderation(mlab, [r.status != "safe" for r in mres], [{c.category for c in r.categories} for r in mres])
        rows += [{"min_cues": k, "file": "moderation", "category": c, **m} for c, m in sc.items()]
        if k == 0:
            print("davidson dev: terms behind flags (fp = clean tweets flagged)")
            print(term_table(dres, dav["y"].tolist(), a.terms).to_string(index=False), "\n")
            print("moderation dev: terms behind flags (fp = texts with no category)")
            print(term_table(mres, mlab["any"], a.terms).to_string(index=False), "\n")
    print("DEV-row figures by min_cues (0 = per-category values from the lexicon files, as shipped):")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
