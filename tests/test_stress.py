"""The kill storm of tests/stress/storm.py, shorter: SIGKILLs at one real watchdog.

The full storm (1,000 kills) and the long run are scripts, not tests; this
runs the storm's own code with fewer kills, so CI keeps its promises: every
death is answered, no service ever runs twice, no rule takes another's process
for its service, no zombie is left, the watchdog's memory stays put and it
exits 0 on SIGTERM, with a small table and with 1,000 extra processes in it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "stress"))

from storm import RSS_LIMIT, StormResult, run_storm  # noqa: E402

KILLS = 150  # 50 per rule: about 15 s
SEED = 20261125
LARGE_TABLE = 1000  # extra processes: events must find new pids without reading them all


def test_kill_storm_loses_no_death_and_doubles_no_service() -> None:
    check_promises(run_storm(KILLS, SEED, stop_at_first_loss=True), KILLS)


def test_kill_storm_beside_a_large_table_keeps_the_same_promises() -> None:
    check_promises(run_storm(KILLS // 2, SEED + 1, extra=LARGE_TABLE, stop_at_first_loss=True),
                   KILLS // 2)


def check_promises(result: StormResult, kills: int) -> None:
    table = result.table()
    print(table)
    assert result.aborted is None, table
    assert result.kills_sent == kills, table
    assert result.answered == kills, table
    for rule in result.rules:
        assert rule.kills >= kills // 3, table
        assert rule.max_copies == 1, table
    assert result.duplicates == 0, table
    assert result.stand_ins == [], table
    assert result.zombies == [], table
    assert result.rss_growth < RSS_LIMIT, table
    assert result.exit_status == 0, table
    assert result.broken() == [], table
