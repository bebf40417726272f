from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog


def trusted_parent() -> Path | None:
    """A directory that only its owner (root or us) may write, and every directory above
    it likewise: a pidfile under it is one the watchdog trusts. /tmp is not one."""
    candidates = [os.environ.get("XDG_RUNTIME_DIR"), "/run" if os.geteuid() == 0 else None,
                  str(Path.home() / ".cache")]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        try:
            path.mkdir(exist_ok=True)
            chain = [path, *path.parents]
            if all(part.stat().st_uid in (0, os.geteuid())
                   and not part.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH) for part in chain):
                return path
        except OSError:
            continue
    return None


def pytest_configure(config: pytest.Config) -> None:
    """Each run's temporary directories under a trusted directory of their own (unless
    --basetemp says otherwise), so tests can hand the watchdog pidfiles it trusts."""
    if config.option.basetemp is None and (parent := trusted_parent()) is not None:
        config.option.basetemp = tempfile.mkdtemp(prefix="watchdog-tests-", dir=parent)
        config.stash[OWN_BASETEMP] = config.option.basetemp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    own = session.config.stash.get(OWN_BASETEMP, None)
    if own is not None and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


OWN_BASETEMP = pytest.StashKey[str]()


@pytest.fixture
def watchdog(tmp_path: Path) -> Iterator[Callable[..., Watchdog]]:
    """Start real watchdogs; kill them and every process under tmp_path afterwards."""
    started: list[Watchdog] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Watchdog:
        wd = Watchdog(list(args), tmp_path, env)
        started.append(wd)
        return wd

    yield start
    for wd in started:
        wd.kill_everything()
    kill_programs_under(tmp_path)
    # Every real run also checks the rule-run model: no change of state outside its arrows.
    for wd in started:
        assert "unexpected change of state" not in wd.log(), wd.log()


def kill_programs_under(path: Path) -> None:
    """Kill leftovers started from the test's own copies of programs."""
    for proc in psutil.process_iter(["exe", "cmdline"]):
        exe = proc.info["exe"] or ""
        cmdline = " ".join(proc.info["cmdline"] or [])
        if exe.startswith(str(path)) or str(path) in cmdline:
            if proc.pid != os.getpid():
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.Error:
                    pass
