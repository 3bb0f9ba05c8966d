"""Rewrite dashboards/*.json from their definitions: python -m scripts.dashboards"""

from . import FOLDER, write

changed = write()
for path in changed:
    print(f"wrote {path}")
print(f"{len(changed)} dashboard(s) changed in {FOLDER}")
