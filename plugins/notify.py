"""``--notify NAME``: systemd's readiness protocol (sd_notify) for rule NAME.

The watchdog gives the service ``NOTIFY_SOCKET``, a datagram socket of its
own for that rule, and reads what the service sends there:

* ``READY=1``: the rule is ready (rules ``--after`` it start);
* ``RELOADING=1`` / ``STOPPING=1``: no longer ready until ``READY=1`` again;
* ``STATUS=...``: shown in ``--status`` and the status file;
* ``MAINPID=N``: process N is the service's main process, adopted and watched;
* ``WATCHDOG=1``: a keep-alive ping. With ``--watchdog-sec NAME=SECONDS`` the
  service gets ``WATCHDOG_USEC``; from its first ``READY=1`` or ping on, a
  ping not followed by another within SECONDS makes the rule unhealthy and
  restarts it
  (``WATCHDOG=trigger`` does so at once, ``WATCHDOG_USEC=`` changes the limit).

Only the rule's own processes may speak for it: the kernel stamps each
datagram with its sender's pid (``SO_PASSCRED``), which must be a process
the rule started or matched, or a descendant of one. A datagram from a
process the rule does not have yet (a daemon that just forked, not yet in
the process table's match) is kept a few seconds and looked at again after
each check. Foreign, oversized, malformed or unexpected datagrams are dropped
with a debug line. In a config file: ``notify = ["sshd"]`` at the top level,
``watchdog-sec = 30`` in a rule's table.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.logs import logger
from watchdog.params import Seconds
from watchdog.readiness import READY_REPORTED
from watchdog.rules import Rule
from watchdog.state import HEALTHY, RUNNING, STARTING, UNHEALTHY
from watchdog.timers import Timer

if TYPE_CHECKING:
    import socket

    from watchdog.api import EngineAPI

MAX_PER_WAKE = 64  # datagrams read per wake-up, so a flood cannot hold the loop
PENDING_MAX = 8  # unverified datagrams kept per rule
PENDING_FOR = 5.0  # seconds an unverified datagram waits for its sender to be the rule's
RECHECK = 0.2  # how soon to look again while some are pending


class Pending:
    """A datagram whose sender is not (yet) one of the rule's processes."""

    def __init__(self, pid: int, fields: dict[str, str], until: float) -> None:
        self.pid = pid
        self.fields = fields
        self.until = until


class Channel:
    """One rule's socket and what the plugin remembers of the rule."""

    def __init__(self, rule: Rule, sock: socket.socket, path: str, watchdog_sec: float | None = None) -> None:
        self.rule = rule
        self.sock = sock
        self.path = path
        self.watchdog_sec = watchdog_sec
        self.ping_timer: Timer | None = None
        self.last_ping = 0.0
        self.pending: list[Pending] = []


class Notify:
    """One run's notify sockets, in a private directory removed at exit."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.watchdog_sec: dict[str, float] = {}
        self.directory: str | None = None
        self.channels: dict[str, Channel] = {}
        self.engine: EngineAPI | None = None

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [
            click.Option(["--notify"], multiple=True, metavar="NAME",
                         help="Rule NAME speaks systemd's notify protocol: it is ready at READY=1."),
            click.Option(["--watchdog-sec"], multiple=True, metavar="NAME=SECONDS",
                         help="With --notify: restart rule NAME when it sends no WATCHDOG=1 "
                              "ping for SECONDS."),
        ]

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        by_name = {rule.name: rule for rule in config.rules}
        for name in config.options.get("notify", ()):
            if name not in by_name:
                raise click.UsageError(f"--notify {name}: no rule is named {name!r} "
                                       f"(rules: {', '.join(by_name)})")
            rule = by_name[name]
            if rule not in self.rules:
                self.rules.append(rule)
                rule.settings[READY_REPORTED] = True
        seconds = Seconds(0.001)
        for rule, text in config.per_rule("--watchdog-sec", config.options.get("watchdog_sec", ())):
            if rule not in self.rules:
                raise click.UsageError(f"--watchdog-sec {rule.name}={text}: rule {rule.name!r} "
                                       f"needs --notify {rule.name} too")
            try:
                self.watchdog_sec[rule.name] = float(seconds.convert(text, None, None))
            except click.BadParameter as exc:
                raise click.UsageError(f"--watchdog-sec {rule.name}={text}: {exc.message}") from None

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        if not self.rules:
            return
        # Here, as shutil below and the protocol (watchdog.sdnotify) in the methods that read
        # the sockets: only a run with --notify needs them, and every start registers this plugin.
        import tempfile

        from watchdog.sdnotify import bind

        self.engine = engine
        self.directory = tempfile.mkdtemp(prefix="watchdog-notify-")
        os.chmod(self.directory, 0o711)  # a service that dropped root must reach its socket
        for index, rule in enumerate(self.rules):
            path = os.path.join(self.directory, f"{index}.sock")
            sock = bind(path)
            channel = Channel(rule, sock, path, self.watchdog_sec.get(rule.name))
            self.channels[rule.name] = channel
            rule.env["NOTIFY_SOCKET"] = path
            if channel.watchdog_sec is not None:
                rule.env["WATCHDOG_USEC"] = str(round(channel.watchdog_sec * 1_000_000))
            engine.add_reader(sock.fileno(), partial(self.read, channel))

    @hookimpl
    def watchdog_stopped(self) -> None:
        for channel in self.channels.values():
            if self.engine is not None:
                self.engine.remove_reader(channel.sock.fileno())
            channel.sock.close()
        self.channels.clear()
        if self.directory is not None:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # --- the watchdog pings --------------------------------------------------------

    @hookimpl
    def watchdog_process_started(self, rule: Rule) -> None:
        channel = self.channels.get(rule.name)
        if channel is not None:
            channel.pending.clear()  # what the last run said does not speak for this one
            self.disarm(rule)

    @hookimpl
    def watchdog_rule_stopping(self, rule: Rule) -> None:
        self.disarm(rule)

    @hookimpl
    def watchdog_rule_missing(self, rule: Rule) -> None:
        self.disarm(rule)

    def arm(self, channel: Channel) -> None:
        """Count a ping now; one timer per rule, moved on when it fires early (pings may be many)."""
        if channel.watchdog_sec is None or self.engine is None:
            return
        channel.last_ping = self.engine.clock()
        if channel.ping_timer is None:
            channel.ping_timer = self.engine.call_at(channel.last_ping + channel.watchdog_sec,
                                                     partial(self.ping_due, channel))

    def ping_due(self, channel: Channel) -> None:
        channel.ping_timer = None
        if channel.watchdog_sec is None or self.engine is None:
            return
        due = channel.last_ping + channel.watchdog_sec
        if self.engine.clock() < due:
            channel.ping_timer = self.engine.call_at(due, partial(self.ping_due, channel))
        else:
            self.missed(channel, f"no WATCHDOG=1 ping for {channel.watchdog_sec:g} s")

    def disarm(self, rule: Rule) -> None:
        channel = self.channels.get(rule.name)
        if channel is not None and channel.ping_timer is not None:
            channel.ping_timer.cancel()
            channel.ping_timer = None

    def missed(self, channel: Channel, detail: str) -> None:
        self.disarm(channel.rule)
        engine = self.engine
        if engine is None or engine.status[channel.rule.name].state not in (RUNNING, STARTING):
            return
        engine.set_health(channel.rule, UNHEALTHY, detail)
        engine.restart(channel.rule, detail)

    # --- reading the socket ----------------------------------------------------------

    def read(self, channel: Channel) -> None:
        from watchdog.sdnotify import MAX_DATAGRAM, parse, receive  # loaded by a run with --notify

        for pid, data in receive(channel.sock, MAX_PER_WAKE):
            if data is None:
                self.drop(channel, pid, f"oversized (over {MAX_DATAGRAM} bytes)")
                continue
            fields = parse(data)
            if fields is None:
                self.drop(channel, pid, f"not KEY=VALUE lines: {data[:40]!r}")
            elif pid is None:
                self.drop(channel, pid, "no sender credentials")
            elif self.speaks_for(channel, pid):
                self.apply(channel, pid, fields)
            elif len(channel.pending) < PENDING_MAX and self.engine is not None:
                # A daemon that has just forked is not matched yet: look again after a check.
                channel.pending.append(Pending(pid, fields, self.engine.clock() + PENDING_FOR))
                self.engine.call_later(RECHECK)
            else:
                self.drop(channel, pid, "the sender is not one of the rule's processes")

    def drop(self, channel: Channel, pid: int | None, why: str) -> None:
        logger.debug("notify: dropped a datagram from pid %s: %s", pid, why,
                     extra={"rule": channel.rule.name, "event": "notify-dropped"})

    def speaks_for(self, channel: Channel, pid: int) -> bool:
        if self.engine is None:
            return False
        from watchdog.sdnotify import descends  # loaded by a run with --notify

        status = self.engine.status[channel.rule.name]
        return descends(pid, set(status.pids) | status.children | set(status.adopted))

    @hookimpl
    def watchdog_checked(self, engine: EngineAPI) -> None:
        now = engine.clock()
        for channel in self.channels.values():
            if not channel.pending:
                continue
            waiting = []
            for item in channel.pending:
                if self.speaks_for(channel, item.pid):
                    self.apply(channel, item.pid, item.fields)
                elif now < item.until:
                    waiting.append(item)
                else:
                    self.drop(channel, item.pid, "the sender is not one of the rule's processes")
            channel.pending = waiting
            if waiting:
                engine.call_later(RECHECK)

    def apply(self, channel: Channel, pid: int, fields: dict[str, str]) -> None:
        from watchdog.sdnotify import descends, printable  # loaded by a run with --notify

        engine = self.engine
        assert engine is not None
        rule = channel.rule
        status = engine.status[rule.name]
        extra = {"rule": rule.name, "event": "notify", "pid": pid}
        logger.debug("notify: %s", " ".join(f"{k}={v!r}" for k, v in fields.items()), extra=extra)
        if "STATUS" in fields:
            status.message = printable(fields["STATUS"])
        if "MAINPID" in fields:
            main = fields["MAINPID"]
            if main.isdigit() and descends(int(main), {pid, *status.pids, *status.children}) \
                    and engine.adopt(rule, int(main)):
                logger.info("main process is %s (MAINPID)", main, extra=extra)
            else:
                self.drop(channel, pid, f"MAINPID={main[:20]!r} is not a process of the rule")
        if "WATCHDOG_USEC" in fields and fields["WATCHDOG_USEC"].isdigit() \
                and int(fields["WATCHDOG_USEC"]) > 0:
            channel.watchdog_sec = int(fields["WATCHDOG_USEC"]) / 1_000_000
            self.disarm(rule)  # the new limit counts from now
            self.arm(channel)
        if fields.get("WATCHDOG") == "1" and channel.watchdog_sec is not None:
            self.arm(channel)
            if status.health != HEALTHY:
                engine.set_health(rule, HEALTHY, "WATCHDOG=1")
        elif fields.get("WATCHDOG") == "trigger":
            self.missed(channel, "the service asked for its restart (WATCHDOG=trigger)")
        if fields.get("STOPPING") == "1":
            logger.info("says it is stopping (STOPPING=1)", extra=extra)
            engine.set_ready(rule, False)
        elif fields.get("RELOADING") == "1":
            logger.info("says it is reloading (RELOADING=1)", extra=extra)
            engine.set_ready(rule, False)
        if fields.get("READY") == "1":
            engine.set_ready(rule, True)
            if channel.ping_timer is None:
                self.arm(channel)
