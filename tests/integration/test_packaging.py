"""`pip install .` must carry every module and every data file of the tree."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"src/dc_overview": "dc_overview", "adapters": "dc_overview/adapters", "frontends": "dc_overview/frontends",
           "templates": "dc_overview/templates", "dashboards": "dc_overview/dashboards"}


def test_wheel_contains_the_whole_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("dc_overview-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for path in tracked:
        for folder, package in MAPPING.items():
            if path.startswith(folder + "/") and "__pycache__" not in path:
                expected.add(package + path[len(folder):])
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "dc_overview/domain.py" in names
