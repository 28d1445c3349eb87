"""Safety checker benchmark (issue 4): TEST rows of the two external files, side by side with better-profanity.

Protocol: `SafetyChecker(SafetyConfig(max_input_length=100_000))` with the seed's defaults otherwise (for the Davidson
file also `block_sensitive_topics=False`); a text is flagged when `check_input(text).status != "safe"`. Split: row i
is a test row when i % 5 == 0 (data README); lexicons were tuned on the other rows (bench/tune_safety.py).
Anchors: better-profanity 0.7.0 and 0.6.1, each pip-installed into a throwaway --target dir and run in a subprocess
(`contains_profanity`). Latency: median per check at 200 and 512 characters, one thread, same texts for every tool.

Usage: python bench/bench_safety.py [--split test|dev] [--out bench/results/safety_test.json] [--no-anchors]
Docs: `summary("bench/results/safety_test.json")` returns (F1/FPR by tool, latency) DataFrames.
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

DATA = Path(os.environ.get("ML_PROVENANCE_EXTERNAL", Path(__file__).resolve().parents[1].parent / "shared/data/external"))
MOD_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
# project categories -> moderation keys (data README, "Suggested project mapping")
CATEGORY_KEYS = {"violence": ("V", "V2", "H2"), "explicit": ("S", "S3"), "offensive": ("H", "HR"), "self_harm": ("SH",)}
ANCHORS = ("0.7.0", "0.6.1")


def in_split(i: int, split: str) -> bool:
    "Deterministic split of the data README: test rows are i % 5 == 0."
    return (i % 5 == 0) if split == "test" else (i % 5 != 0)


def load_davidson(split: str) -> pd.DataFrame:
    "Davidson tweets of one split with the main binary mapping (hate or offensive = 1, neither = 0)."
    d = pd.read_csv(DATA / "davidson_labeled_data.csv")
    d = d[[in_split(i, split) for i in range(len(d))]]
    return pd.DataFrame({"text": d["tweet"].astype(str).tolist(), "y": d["class"].isin([0, 1]).astype(int).tolist()})


def load_moderation(split: str) -> list:
    "Moderation rows of one split: dicts with prompt and the category keys that are present."
    with gzip.open(DATA / "openai_moderation_samples-1680.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r for i, r in enumerate(rows) if in_split(i, split)]


def prf(y, p) -> dict:
    "Precision, recall, F1 and false-positive rate of binary predictions."
    tp = sum(1 for a, b in zip(y, p) if a and b)
    fp = sum(1 for a, b in zip(y, p) if not a and b)
    fn = sum(1 for a, b in zip(y, p) if a and not b)
    tn = sum(1 for a, b in zip(y, p) if not a and not b)
    pr = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return {"n": len(y), "precision": pr, "recall": rc, "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0,
            "fpr": fp / (fp + tn) if fp + tn else 0.0}


def moderation_labels(rows) -> dict:
    "Binary labels: 'any' (any known category = 1) and, per project category, None where no mapped key is present."
    out = {"any": [int(any(r.get(k) == 1 for k in MOD_KEYS)) for r in rows]}
    for cat, keys in CATEGORY_KEYS.items():
        out[cat] = [None if not any(k in r for k in keys) else int(any(r.get(k) == 1 for k in keys)) for r in rows]
    return out


def score_moderation(labels: dict, flagged: list, cats: list | None) -> dict:
    "Any-category figures plus per-category F1 (a tool without categories predicts its binary flag for each)."
    out = {"any": prf(labels["any"], flagged)}
    for cat in CATEGORY_KEYS:
        idx = [i for i, v in enumerate(labels[cat]) if v is not None]
        pred = [(cat in cats[i]) if cats is not None else flagged[i] for i in idx]
        out[cat] = prf([labels[cat][i] for i in idx], pred)
    return out


def run_checker(texts, block_topics=True):
    "Flags and detected categories of ml_provenance's SafetyChecker under the benchmark protocol."
    from ml_provenance.safety.checker import SafetyChecker
    from ml_provenance.safety.config import SafetyConfig
    ch = SafetyChecker(SafetyConfig(max_input_length=100_000, block_sensitive_topics=block_topics))
    res = [ch.check_input(t) for t in texts]
    return [r.status != "safe" for r in res], [{c.category for c in r.categories} for r in res]


def latency_texts(n_chars: int, k: int = 300) -> list:
    "k real texts of exactly n_chars characters (moderation prompts, joined with tweets when short)."
    pool = [r["prompt"] for r in load_moderation("test")] + load_davidson("test")["text"].tolist()
    out, i = [], 0
    while len(out) < k:
        s = ""
        while len(s) < n_chars: s, i = s + pool[i % len(pool)] + " ", i + 1
        out.append(s[:n_chars])
    return out


def time_calls(fn, texts, repeat=3) -> float:
    "Median seconds per call over all texts (after one warm-up pass)."
    for t in texts[:20]: fn(t)
    ts = []
    for _ in range(repeat):
        for t in texts:
            t0 = time.perf_counter(); fn(t); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


_ANCHOR_CODE = r"""
import json, sys, statistics, time
sys.path.insert(0, sys.argv[1])
from better_profanity import profanity
profanity.load_censor_words()
job = json.load(open(sys.argv[2]))
flags = {name: [bool(profanity.contains_profanity(t)) for t in texts] for name, texts in job["sets"].items()}
lat = {}
for n, texts in job["latency"].items():
    for t in texts[:5]: profanity.contains_profanity(t)
    ts = []
    for t in texts:
        t0 = time.perf_counter(); profanity.contains_profanity(t); ts.append(time.perf_counter() - t0)
    lat[n] = statistics.median(ts)
json.dump({"flags": flags, "latency": lat}, sys.stdout)
"""


def run_anchor(version: str, sets: dict, latency: dict, workdir: Path) -> dict:
    "Install better-profanity==version into a throwaway target and run it in a subprocess."
    target = workdir / f"better_profanity_{version}"
    if not target.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"better-profanity=={version}"], check=True)
    job = workdir / "job.json"
    job.write_text(json.dumps({"sets": sets, "latency": latency}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _ANCHOR_CODE, str(target), str(job)], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def summary(figures) -> tuple:
    "Docs-ready tables from `main`'s JSON (a path or the loaded dict): F1/FPR per file and category by tool, latency."
    d = json.loads(Path(figures).read_text()) if isinstance(figures, (str, Path)) else figures
    acc = pd.DataFrame(d["accuracy"])
    wide = acc.pivot_table(index=["file", "category"], columns="tool", values=["f1", "fpr"], sort=False)
    return wide.round(3), pd.DataFrame(d["latency"]).round(4)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=["test", "dev"])
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--no-anchors", action="store_true", help="skip better-profanity (no install)")
    ap.add_argument("--anchor-dir", default=None, help="reuse this directory for the anchors' --target installs")
    a = ap.parse_args(argv)
    dav, mod = load_davidson(a.split), load_moderation(a.split)
    mtexts, mlab = [r["prompt"] for r in mod], moderation_labels(mod)
    rows = []
    flags, _ = run_checker(dav["text"].tolist(), block_topics=False)
    rows.append({"tool": "ml_provenance", "file": "davidson", "category": "any", **prf(dav["y"].tolist(), flags)})
    mflags, mcats = run_checker(mtexts)
    for cat, m in score_moderation(mlab, mflags, mcats).items():
        rows.append({"tool": "ml_provenance", "file": "moderation", "category": cat, **m})
    from ml_provenance.safety.checker import SafetyChecker
    ch = SafetyChecker()
    lat_sets = {n: latency_texts(n) for n in (200, 512)}
    lat = [{"tool": "ml_provenance", "chars": n, "median_ms": time_calls(ch.check_input, ts) * 1e3} for n, ts in lat_sets.items()]
    if not a.no_anchors:
        work = Path(a.anchor_dir) if a.anchor_dir else Path(tempfile.mkdtemp(prefix="bench_safety_"))
        work.mkdir(parents=True, exist_ok=True)
        for v in ANCHORS:
            r = run_anchor(v, {"davidson": dav["text"].tolist(), "moderation": mtexts}, lat_sets, work)
            tool = f"better-profanity {v}"
            rows.append({"tool": tool, "file": "davidson", "category": "any", **prf(dav["y"].tolist(), r["flags"]["davidson"])})
            for cat, m in score_moderation(mlab, r["flags"]["moderation"], None).items():
                rows.append({"tool": tool, "file": "moderation", "category": cat, **m})
            lat += [{"tool": tool, "chars": int(n), "median_ms": s * 1e3} for n, s in r["latency"].items()]
    acc, lat = pd.DataFrame(rows), pd.DataFrame(lat)
    base = lat[lat.tool == "ml_provenance"].set_index("chars")["median_ms"]
    lat["x_slower_than_ml_provenance"] = [m / base[c] for m, c in zip(lat.median_ms, lat.chars)]
    pd.set_option("display.width", 160)
    print(f"split: {a.split} rows (davidson {len(dav)}, moderation {len(mod)})\n")
    print(acc.round(3).to_string(index=False), "\n")
    print(lat.round(4).to_string(index=False), "\n")
    print(summary({"accuracy": rows, "latency": lat.to_dict("records")})[0].to_string())
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"split": a.split, "accuracy": rows, "latency": lat.to_dict("records")}, indent=1))
    return acc, lat


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
