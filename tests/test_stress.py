"""The kill storm of tests/stress/storm.py, shorter: SIGKILLs at one real watchdog.

The full storm (1,000 kills) and the long run are scripts, not tests; this
runs the storm's own code with fewer kills, so CI keeps its promises: every
death is answered, no service ever runs twice, no zombie is left, the
watchdog's memory stays put and it exits 0 on SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "stress"))

from storm import RSS_LIMIT, run_storm  # noqa: E402

KILLS = 150  # 50 per rule: about 15 s
SEED = 20261125


def test_kill_storm_loses_no_death_and_doubles_no_service() -> None:
    result = run_storm(KILLS, SEED, stop_at_first_loss=True)
    table = result.table()
    print(table)
    assert result.aborted is None, table
    assert result.kills_sent == KILLS, table
    assert result.answered == KILLS, table
    for rule in result.rules:
        assert rule.kills >= KILLS // 3, table
        assert rule.max_copies == 1, table
    assert result.duplicates == 0, table
    assert result.zombies == [], table
    assert result.rss_growth < RSS_LIMIT, table
    assert result.exit_status == 0, table
    assert result.broken() == [], table
