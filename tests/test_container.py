"""The seed's image built and run in a real container engine (podman), with its faults.

The work is done by examples/docker/container-test.sh, which users run too; this
runs it once, shows its PASS/FAIL/FIGURE lines as they come, and skips with the
script's own reason when it cannot run here (not root, podman or a tool missing).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "examples" / "docker" / "container-test.sh"
SKIPPED = 77  # the script's exit status when it cannot run here


@pytest.mark.timeout(900)
def test_the_example_image_in_podman(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    with capsys.disabled():
        print()
        with subprocess.Popen(["bash", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as script:
            assert script.stdout is not None
            for line in script.stdout:
                lines.append(line.rstrip("\n"))
                if not line.startswith("SKIP"):
                    print("    " + line, end="", flush=True)
    if script.returncode == SKIPPED:
        pytest.skip(next(line for line in lines if line.startswith("SKIP")).removeprefix("SKIP "))
    failures = [line for line in lines if line.startswith("FAIL")]
    assert script.returncode == 0 and not failures, "\n".join(failures or lines[-20:])
