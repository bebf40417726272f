"""``watchdogctl``: control a running watchdog through its control socket.

Every command is one HTTP request to the socket (``events`` and ``wait``
read a stream of state changes). Errors are one line on stderr.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode

import click

from watchdog import __version__, view
from watchdog.escapes import one_line, printable
from watchdog.execprobe import default_socket
from watchdog.oneline import exit_status
from watchdog.params import Seconds
from watchdog.safefiles import owner_words, trusted_uid
from watchdog.state import RunState
from watchdog.unixhttp import PEERCRED

EXIT_OK = 0
EXIT_NOT_RUNNING = 1  # status: a rule is not fine (watchdog.view); wait: timed out; signal: no process got it
EXIT_USAGE = 2
EXIT_NO_WATCHDOG = 3  # no control socket, or no one serves it (as ``watchdog --status``)
EXIT_UNKNOWN_RULE = 4
EXIT_REFUSED = 5  # not permitted: only root and the watchdog's own user
EXIT_REJECTED = 6  # reload: the configuration has an error (nothing changed), or one is under way
EXIT_BAD_ANSWER = 7  # the watchdog did not answer in time, or not as expected

EXIT_HELP = """\b
Exit status:
  0  done (status: every rule shown runs and is not unhealthy, or exited with success)
  1  status: a rule does not; wait: timed out; signal: no process received it
  2  usage error
  3  no watchdog is running (no control socket, or no one answers on it)
  4  no rule has that name
  5  refused: only root and the watchdog's own user may control it
  6  reload rejected: the configuration has an error (nothing changed) or a reload is under way
  7  no answer in time, or an answer that makes no sense
"""

STATES = ("ready", "healthy", *(state.value for state in RunState))
TIMEOUT = 30.0


class CtlError(Exception):
    """A failure to report in one line, with its exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("watchdog", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
            _, uid, _ = PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         PEERCRED.size))
        except OSError:
            sock.close()
            raise
        # Whoever serves the socket answers for the watchdog: a socket another user put
        # where ours should be would have us print its lies (and run our reload).
        if not trusted_uid(uid):
            sock.close()
            raise CtlError(EXIT_NO_WATCHDOG, f"not trusting {self.socket_path}: it is served by "
                                             f"{owner_words(uid)}")
        self.sock = sock


class Client:
    """Requests to one control socket, their failures turned into exit statuses."""

    def __init__(self, path: str, timeout: float = TIMEOUT, timeout_given: bool = True) -> None:
        self.path = path
        self.timeout = timeout
        self.timeout_given = timeout_given  # --timeout on the command line, not its default

    def open(self, method: str, url: str, body: Any = None,
             timeout: float | None = TIMEOUT) -> tuple[UnixConnection, http.client.HTTPResponse]:
        connection = UnixConnection(self.path, timeout)
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        try:
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise CtlError(EXIT_NO_WATCHDOG, f"no watchdog is running (no one serves {self.path})") from None
        except PermissionError:
            raise CtlError(EXIT_REFUSED, f"refused: {self.path}: permission denied (only root and the "
                                         "watchdog's own user may control it)") from None
        except TimeoutError:
            raise CtlError(EXIT_BAD_ANSWER, f"no answer from {self.path} within {timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise CtlError(EXIT_BAD_ANSWER, f"{self.path}: {exc or type(exc).__name__}") from None
        if response.status != 200:
            self.fail(response)
        return connection, response

    def call(self, method: str, url: str, body: Any = None, *, wait_forever: bool = False) -> Any:
        """The JSON answer, within ``self.timeout`` unless ``wait_forever``."""
        connection, response = self.open(method, url, body, None if wait_forever else self.timeout)
        try:
            return decode(response.read())
        except (OSError, http.client.HTTPException) as exc:
            raise CtlError(EXIT_BAD_ANSWER, f"{self.path}: {exc or type(exc).__name__}") from None
        finally:
            connection.close()

    def fail(self, response: http.client.HTTPResponse) -> NoReturn:
        try:
            message = str(decode(response.read()).get("error", ""))
        except (CtlError, AttributeError, OSError, http.client.HTTPException):
            message = ""
        message = message or f"HTTP {response.status} {response.reason}"
        code = {403: EXIT_REFUSED, 404: EXIT_UNKNOWN_RULE, 409: EXIT_REJECTED, 422: EXIT_REJECTED,
                400: EXIT_USAGE}.get(response.status, EXIT_BAD_ANSWER)
        if response.status == 404 and "no rule" not in message:
            code = EXIT_BAD_ANSWER  # an endpoint this watchdog does not have
        prefix = {EXIT_REFUSED: "refused: ", EXIT_REJECTED: "rejected: "}.get(code, "")
        raise CtlError(code, prefix + message)

    def events(self, names: Sequence[str], timeout: float | None = None) -> EventStream:
        """State changes as they happen, after one ``current`` line per rule."""
        query = urlencode([("rule", name) for name in names])
        return EventStream(*self.open("GET", "/v1/events" + (f"?{query}" if query else ""),
                                      timeout=timeout))


class EventStream:
    """The JSON lines of ``GET /v1/events``; iteration ends when the watchdog ends the stream."""

    def __init__(self, connection: UnixConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                line = self.response.readline()
            except TimeoutError:
                raise
            except (OSError, http.client.HTTPException):
                return  # the watchdog went away: the stream is over
            if not line:
                return
            yield decode(line)

    def set_timeout(self, seconds: float) -> None:
        """How long the next line may take (TimeoutError after)."""
        if self.connection.sock is not None:
            self.connection.sock.settimeout(seconds)

    def close(self) -> None:
        self.connection.close()


def decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise CtlError(EXIT_BAD_ANSWER, f"not a JSON answer: {data[:80]!r}") from None


def wait_for_states(client: Client, names: Sequence[str], state: str, timeout: float) -> None:
    """Until every rule in ``names`` is in ``state``; CtlError when it is removed or time runs out."""
    deadline = time.monotonic() + timeout
    where: dict[str, str] = {}
    pending = set(names)
    stream = client.events(names, timeout=max(timeout, 0.001))
    try:
        for event in stream:
            name = event.get("rule")
            if name not in pending or "state" not in event:  # an ``exited`` event: no state of its own
                continue
            if event.get("event") == "removed":
                raise CtlError(EXIT_UNKNOWN_RULE, f"{name}: removed while waiting")
            where[name] = str(event.get("state"))
            if view.reached(event, state):
                pending.discard(name)
                if not pending:
                    return
            elif where[name] == RunState.FAILED:  # final: nothing comes of waiting longer
                raise CtlError(EXIT_NOT_RUNNING, f"{name} failed before {state}: {event.get('reason')}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            stream.set_timeout(remaining)
    except TimeoutError:
        pass
    finally:
        stream.close()
    if not pending:
        return
    shown = ", ".join(f"{name} is {where.get(name, 'unknown')}" for name in sorted(pending))
    if time.monotonic() < deadline:
        raise CtlError(EXIT_NO_WATCHDOG, f"the watchdog stopped before {state}: {shown}")
    raise CtlError(EXIT_NOT_RUNNING, f"timed out after {timeout:g}s waiting for {state}: {shown}")


class CtlGroup(click.Group):
    """Errors are one line: ``watchdogctl: ...``, with the documented exit status."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        try:
            # Ctrl-C ends ``events`` and ``wait``: nothing went wrong
            code = exit_status(lambda: super(CtlGroup, self).main(
                args, prog_name, standalone_mode=False, **extra), "watchdogctl", lambda: EXIT_OK)
        except CtlError as exc:
            click.echo(f"watchdogctl: {one_line(exc.message)}", err=True)
            code = exc.code
        except BrokenPipeError:  # ``watchdogctl events | head``
            sys.stderr.close()
            code = EXIT_OK
        if standalone_mode:
            sys.exit(code or 0)
        return code


@click.group(cls=CtlGroup, epilog=EXIT_HELP,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--socket", "socket_path", metavar="PATH", envvar="WATCHDOG_CONTROL_SOCKET",
              show_envvar=True,
              help="The watchdog's control socket. [default: control.sock beside the status file, "
                   "/run/watchdog/ for root]")
@click.option("--timeout", "request_timeout", type=Seconds(0.01), default=TIMEOUT, show_default=True,
              metavar="SECONDS", help="How long to wait for an answer.")
@click.version_option(__version__, prog_name="watchdogctl", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, socket_path: str | None, request_timeout: float) -> None:
    """Control a running watchdog: status, start, stop, restart, signal, reload, events, logs, wait."""
    given = ctx.get_parameter_source("request_timeout") is not click.core.ParameterSource.DEFAULT
    ctx.obj = Client(socket_path or default_socket(), request_timeout, given)


names_argument = click.argument("names", nargs=-1, required=True, metavar="NAME...")
wait_option = click.option("--wait", "wait_timeout", type=Seconds(0.01), metavar="SECONDS",
                           help="Then wait up to SECONDS for the result (ready, or stopped).")


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(client: Client, names: tuple[str, ...], as_json: bool) -> int:
    """Each rule's state, as `watchdog --status` shows it, with its exit status (1: one is not fine)."""
    query = urlencode([("rule", name) for name in names])
    content = client.call("GET", "/v1/status" + (f"?{query}" if query else ""))
    rules = printable(content.get("rules", []))  # what services said, without terminal escapes
    click.echo(json.dumps(content, indent=1) if as_json else view.format_table(rules))
    if names and not as_json:
        for rule in rules:
            if rule.get("last_output"):
                click.echo(f"\n{rule.get('name')}: the last lines of its last run")
                for entry in rule["last_output"]:
                    click.echo(format_line({**entry, "rule": rule.get("name")}, True))
    return view.exit_status(rules)


def act(client: Client, verb: str, names: Sequence[str], wait_timeout: float | None) -> int:
    answer = client.call("POST", f"/v1/{verb}", {"rules": list(names)})
    results = answer.get("results", [])
    for result in results:
        pid = f" (pid {result['pid']})" if result.get("pid") else ""
        click.echo(one_line(f"{result.get('rule')}: {result.get('result')}{pid}"))
    if wait_timeout is not None:  # GROUP:* and all: the rules they stood for
        rules = [str(result.get("rule")) for result in results]
        wait_for_states(client, rules, "stopped" if verb == "stop" else "ready", wait_timeout)
    return EXIT_OK


@cli.command()
@names_argument
@wait_option
@click.pass_obj
def start(client: Client, names: tuple[str, ...], wait_timeout: float | None) -> int:
    """Start rules that are stopped (or missing); running ones are left alone.

    NAME is a rule, GROUP:* every rule of a group, GROUP:NAME one of them, or all.
    """
    return act(client, "start", names, wait_timeout)


@cli.command()
@names_argument
@wait_option
@click.pass_obj
def stop(client: Client, names: tuple[str, ...], wait_timeout: float | None) -> int:
    """Stop rules (stop signal, grace, KILL); they stay stopped until started.

    NAME is a rule, GROUP:* every rule of a group, GROUP:NAME one of them, or all.
    """
    return act(client, "stop", names, wait_timeout)


@cli.command()
@names_argument
@wait_option
@click.pass_obj
def restart(client: Client, names: tuple[str, ...], wait_timeout: float | None) -> int:
    """Stop rules like stop, then start them again: never two copies at once.

    NAME is a rule, GROUP:* every rule of a group, GROUP:NAME one of them, or all.
    """
    return act(client, "restart", names, wait_timeout)


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.pass_obj
def pid(client: Client, names: tuple[str, ...]) -> int:
    """The watchdog's pid; with NAME (or GROUP:*, all), each rule's pids, as supervisorctl pid.

    Exit 1 when a rule named has no process.
    """
    query = urlencode([("rule", name) for name in names])
    content = client.call("GET", "/v1/status" + (f"?{query}" if query else ""))
    if not names:
        click.echo(content.get("pid"))
        return EXIT_OK
    code = EXIT_OK
    for rule in content.get("rules", []):
        pids = rule.get("pids") or []
        if not pids:
            code = EXIT_NOT_RUNNING
        shown = ",".join(str(number) for number in pids) or "0"
        click.echo(f"{rule.get('name')} {shown}" if len(content.get("rules", [])) > 1 else shown)
    return code


@cli.command("signal")
@click.argument("name")
@click.argument("signal_name", metavar="SIGNAL")
@click.pass_obj
def send_signal(client: Client, name: str, signal_name: str) -> int:
    """Send SIGNAL (HUP, SIGUSR1, 10...) to rule NAME's processes."""
    answer = client.call("POST", "/v1/signal", {"rule": name, "signal": signal_name})
    count = int(answer.get("processes", 0))
    if not count:
        click.echo(one_line(f"watchdogctl: {name}: no process to send {answer.get('signal')} to"), err=True)
        return EXIT_NOT_RUNNING
    click.echo(one_line(f"{name}: sent {answer.get('signal')} to {count} process{'es' if count > 1 else ''}"))
    return EXIT_OK


@cli.command()
@click.pass_obj
def reload(client: Client) -> int:
    """Read the watchdog's configuration again and apply what changed.

    New rules start, removed ones stop, changed ones restart; the others are
    not touched. A configuration with an error changes nothing (exit 6).
    Waits for the answer however long the reload takes, unless --timeout.
    """
    answer = client.call("POST", "/v1/reload", wait_forever=not client.timeout_given)
    for what in ("added", "removed", "changed", "unchanged"):
        if answer.get(what):
            click.echo(one_line(f"{what}: {', '.join(map(str, answer[what]))}"))
    if answer.get("not_applied"):
        click.echo(one_line("watchdogctl: not applied until the watchdog restarts: "
                            + ", ".join(map(str, answer["not_applied"]))), err=True)
    return EXIT_OK


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.pass_obj
def events(client: Client, names: tuple[str, ...]) -> int:
    """Print state changes as JSON lines as they happen, until interrupted.

    The first lines (event "current") say where each rule stands.
    """
    for event in client.events(names):
        click.echo(json.dumps(event))
        sys.stdout.flush()
    return EXIT_OK


def parse_since(text: str, now: float) -> float:
    """``--since``: ``90s``, ``10m``, ``2h``, ``1d`` ago, an RFC 3339 time, or a Unix time."""
    spelled = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if spelled[-1:].lower() in units:
        try:
            return now - float(spelled[:-1]) * units[spelled[-1].lower()]
        except ValueError:
            pass
    try:
        return float(spelled)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(spelled.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give 10m, 2h, 1d, an RFC 3339 time or a Unix time",
                                 param_hint="--since") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as date(1) shows it
    return when.timestamp()


def format_line(entry: dict[str, Any], timestamps: bool) -> str:
    """``web stderr | the line``, control characters escaped (a service's line may hold any)."""
    stamp = ""
    if timestamps:
        stamp = datetime.fromtimestamp(float(entry.get("time", 0)), UTC).isoformat(
            timespec="milliseconds") + " "
    return one_line(f"{stamp}{entry.get('rule')} {entry.get('stream')} | {entry.get('line', '')}")


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("-n", "--lines", "count", type=int, default=30, show_default=True, metavar="N",
              help="How many of the last lines kept to show first (-1: all).")
@click.option("-f", "--follow", is_flag=True, help="Then print each new line as it is written.")
@click.option("--since", metavar="TIME", help="Only lines written since TIME: 10m, 2h, 1d, an RFC 3339 "
                                              "time, or a Unix time.")
@click.option("--stdout", "stream", flag_value="stdout", help="Only the services' stdout.")
@click.option("--stderr", "stream", flag_value="stderr", help="Only the services' stderr.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: time, rule, stream, run, pid, line.")
@click.option("-t", "--timestamps", is_flag=True, help="Show when each line was read.")
@click.pass_obj
def logs(client: Client, names: tuple[str, ...], count: int, follow: bool, since: str | None,
         stream: str | None, as_json: bool, timestamps: bool) -> int:
    """What the services wrote (kept in the watchdog's memory), several rules interleaved.

    Each line says its rule and stream; -f follows until interrupted.
    """
    query: list[tuple[str, str]] = [("rule", name) for name in names]
    query.append(("n", str(count)))
    if since is not None:
        query.append(("since", repr(parse_since(since, time.time()))))
    if stream is not None:
        query.append(("stream", stream))
    if follow:
        query.append(("follow", "1"))
    connection, response = client.open("GET", "/v1/logs?" + urlencode(query),
                                       timeout=None if follow else client.timeout)
    try:
        for entry in EventStream(connection, response):
            click.echo(json.dumps(entry) if as_json else format_line(entry, timestamps))
            if follow:
                sys.stdout.flush()
    finally:
        connection.close()
    return EXIT_OK


@cli.command()
@click.argument("name")
@click.argument("stream", required=False, type=click.Choice(["stdout", "stderr"]))
@click.option("-f", "--follow", is_flag=True, help="Then print each new line as it is written.")
@click.pass_context
def tail(ctx: click.Context, name: str, stream: str | None, follow: bool) -> int:
    """supervisorctl's tail: `logs NAME` (GROUP:* too), both streams unless STREAM is given."""
    return int(ctx.invoke(logs, names=(name,), count=30, follow=follow, since=None, stream=stream,
                          as_json=False, timestamps=False))


@cli.command()
@names_argument
@click.option("--state", type=click.Choice(STATES), default="ready", show_default=True,
              help="ready: running, not unhealthy and, with --notify, READY=1 since its start; "
                   "healthy: running and a check says healthy.")
@click.option("--timeout", type=Seconds(0.01), default=TIMEOUT, show_default=True, metavar="SECONDS",
              help="Give up after this long (exit 1).")
@click.pass_obj
def wait(client: Client, names: tuple[str, ...], state: str, timeout: float) -> int:
    """Wait until every rule NAME is in --state."""
    wait_for_states(client, names, state, timeout)
    return EXIT_OK


def main(args: Sequence[str] | None = None) -> NoReturn:
    cli.main(args, prog_name="watchdogctl")
    sys.exit(0)



if __name__ == "__main__":
    main()
