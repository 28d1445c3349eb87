"""Write README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which some machines lack).

Markdown cells are copied; code cells are shown as ```python blocks; cells marked `#| hide` are left out.
Run with --check to fail when README.md is out of date."""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / "nbs" / "index.ipynb").read_text())
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip()
    if not src: continue
    if c["cell_type"] == "markdown": parts.append(src)
    elif c["cell_type"] == "code":
        lines = src.splitlines()
        if any(l.strip() in ("#| hide", "#|hide") for l in lines): continue
        body = "\n".join(l for l in lines if not l.startswith("#|")).strip()
        if body: parts.append(f"```python\n{body}\n```")
text = "<!-- generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"
readme = root / "README.md"
if "--check" in sys.argv:
    if readme.read_text() != text: sys.exit("README.md is out of date: run python scripts/make_readme.py")
else: readme.write_text(text)
