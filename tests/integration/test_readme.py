"""The README's pytest plugin example runs as written, in a pytest of its own (as in a
user's project: only the plugin's entry point and asyncio mode "auto")."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from emulator.config import REPO_ROOT


def test_the_readme_plugin_example_passes(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1
    test_file = tmp_path / "test_example.py"
    test_file.write_text(blocks[0])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"]
        + ["-o", "asyncio_mode=auto", "--rootdir", str(tmp_path)],
        cwd=REPO_ROOT,  # the example's rules=["rules/"] is the user's project folder
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
