"""How a rule's command is started: user, environment, working directory, umask, resource limits.

    --user web=www-data            # or USER:GROUP, names or numbers
    --env web=PORT=8000            # repeatable
    --env-file web=/app/.env       # Docker's format, read again at every start
    --directory web=/app
    --umask web=0027
    --rlimit web=nofile=65536      # repeatable; RESOURCE=SOFT[:HARD]

Each is checked before anything starts (a usage error, exit 2). The
environment a command gets is, from weakest to strongest: the watchdog's
own, the user's ``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` (with
``--user``), the env files in the order given, ``--env``, and last what the
watchdog sets itself for the service (``NOTIFY_SOCKET``...). An env file or
directory that is gone at a later start fails that start, like a missing
program (status 127), and the next start tries again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from watchdog import rlimits
from watchdog.envfile import EnvFileError, read_env_file
from watchdog.identity import Identity, resolve

if TYPE_CHECKING:  # the config knows rules, and rules hold a Launch
    from watchdog.config import Config


class Launch:
    """A rule's start-up settings (all unset: the watchdog's own user, environment and place)."""

    def __init__(self, identity: Identity | None = None, env: dict[str, str] | None = None,
                 env_files: tuple[str, ...] = (), directory: str | None = None, umask: int | None = None,
                 limits: dict[str, tuple[int, int]] | None = None) -> None:
        self.identity = identity
        self.env = {} if env is None else env  # --env
        self.env_files = env_files
        self.directory = directory
        self.umask = umask
        self.limits = {} if limits is None else limits  # by resource name

    def _key(self) -> tuple[object, ...]:
        return (self.identity, self.env, self.env_files, self.directory, self.umask, self.limits)

    def __eq__(self, other: object) -> bool:
        """A reload restarts a rule whose launch settings changed (``watchdog.reload``)."""
        if not isinstance(other, Launch):
            return NotImplemented
        return self._key() == other._key()

    def switches_user(self) -> bool:
        return self.identity is not None and not self.identity.is_own()

    @property
    def preexec(self) -> Callable[[], None] | None:
        """What the child runs in Python before exec: only with limits, which go first, since
        raising a hard limit takes the root the user switch gives up. Without limits the user
        switch is subprocess's, in C (``credentials``), which saves a few milliseconds a start."""
        return self._in_child if self.limits else None

    def credentials(self) -> dict[str, Any]:
        """subprocess's arguments for the user switch when no pre-exec function makes it."""
        if self.identity is None or not self.switches_user() or self.limits:
            return {}
        return {"user": self.identity.uid, "group": self.identity.gid,
                "extra_groups": list(self.identity.groups)}

    def _in_child(self) -> None:
        rlimits.apply({rlimits.RESOURCES[name]: values for name, values in self.limits.items()})
        if self.identity is not None:
            self.identity.switch()

    def plain(self) -> bool:
        """Nothing here but what the watchdog's fastest way of starting (posix_spawn) can do."""
        return not self.limits and not self.switches_user() and self.directory is None and self.umask is None

    def environment(self, own: Mapping[str, str]) -> dict[str, str] | None:
        """The command's whole environment, with ``own`` (what the watchdog sets) over it; None
        when it is the watchdog's plus ``own``. Env files are read now: raises OSError."""
        if self.identity is None and not self.env and not self.env_files:
            return None
        environ = dict(os.environ)
        if self.identity is not None:
            environ.update(self.identity.environment())
        for path in self.env_files:
            try:
                environ.update(read_env_file(path))
            except FileNotFoundError as exc:
                raise FileNotFoundError(exc.errno, f"env file {path}: {exc.strerror}", path) from None
            except OSError as exc:
                raise OSError(exc.errno, f"env file {path}: {exc.strerror}", path) from None
            except EnvFileError as exc:
                raise OSError(0, str(exc), path) from None
        environ.update(self.env)
        environ.update(own)
        return environ

    def view(self) -> dict[str, Any]:
        """What ``--status --json`` shows."""
        return {
            "user": self.identity.spec if self.identity is not None else None,
            "uid": self.identity.uid if self.identity is not None else None,
            "directory": self.directory,
        }


def options() -> list[click.Option]:
    return [
        click.Option(
            ["--user"], multiple=True, metavar="NAME=USER[:GROUP]",
            help="Run rule NAME as USER (name or number), with USER's groups or GROUP "
                 "(needs root), e.g. web=www-data.",
        ),
        click.Option(
            ["--env"], multiple=True, metavar="NAME=KEY=VALUE",
            help="Set KEY in rule NAME's environment (repeatable), e.g. web=PORT=8000.",
        ),
        click.Option(
            ["--env-file"], multiple=True, metavar="NAME=PATH",
            help="Read rule NAME's environment from PATH (Docker's format) at every start; --env wins.",
        ),
        click.Option(
            ["--directory"], multiple=True, metavar="NAME=DIR",
            help="Start rule NAME in the working directory DIR.",
        ),
        click.Option(
            ["--umask"], multiple=True, metavar="NAME=MODE",
            help="Start rule NAME with this umask (octal), e.g. web=0027.",
        ),
        click.Option(
            ["--rlimit"], multiple=True, metavar="NAME=RESOURCE=SOFT[:HARD]",
            help="A resource limit of rule NAME (repeatable): nofile, nproc, core, memlock, stack, as, "
                 "cpu, fsize...; a number or unlimited, e.g. web=nofile=65536.",
        ),
    ]


def configure(config: Config) -> None:
    """Every rule's ``launch`` from the flags; bad values are usage errors."""
    options = config.options
    for rule, text in config.per_rule("--user", options.get("user", ())):
        rule.launch.identity = resolve(f"--user {rule.name}", text)
        rule.uid = rule.launch.identity.uid  # what ownership trusts its processes by
    for rule, text in config.per_rule("--env", options.get("env", ()), repeatable=True):
        key, sep, value = text.partition("=")
        if not sep or not key or any(c.isspace() for c in key) or "\0" in text:
            raise click.UsageError(f"--env {rule.name}={text}: expected KEY=VALUE, KEY without spaces")
        rule.launch.env[key] = value
    for rule, path in config.per_rule("--env-file", options.get("env_file", ()), repeatable=True):
        try:
            read_env_file(path)
        except OSError as exc:
            raise click.UsageError(f"--env-file {rule.name}: {path}: {exc.strerror}") from None
        except EnvFileError as exc:
            raise click.UsageError(f"--env-file {rule.name}: {exc}") from None
        rule.launch.env_files += (path,)
    for rule, path in config.per_rule("--directory", options.get("directory", ())):
        if not os.path.isdir(path):
            what = "is not a directory" if os.path.exists(path) else "does not exist"
            raise click.UsageError(f"--directory {rule.name}: {path} {what}")
        rule.launch.directory = path
    for rule, text in config.per_rule("--umask", options.get("umask", ())):
        rule.launch.umask = parse_umask(f"--umask {rule.name}", text)
    for rule, text in config.per_rule("--rlimit", options.get("rlimit", ()), repeatable=True):
        name, soft, hard = rlimits.parse_rlimit(f"--rlimit {rule.name}", text)
        if rule.launch.limits.get(name, (soft, hard)) != (soft, hard):
            raise click.UsageError(f"--rlimit {rule.name}: {name} is given twice: give it once")
        rule.launch.limits[name] = (soft, hard)


def parse_umask(flag: str, text: str) -> int:
    word = text.strip()
    try:
        mask = int(word, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise click.UsageError(f"{flag}: {word!r} is not a umask (octal, 0000 to 0777, e.g. 0027)")
    return mask
