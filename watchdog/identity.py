"""``--user NAME=USER[:GROUP]``: whom a rule's processes run as, resolved before anything starts.

USER and GROUP are names or numbers. The supplementary groups are the user's
groups from the group database (what ``initgroups`` would set), looked up
here, in the watchdog, and not in the child: name lookups may take locks that
a freshly forked child cannot. A number with no passwd entry is allowed, as
Docker and Kubernetes allow it: its group is GROUP if given, else 0 (Docker's
choice), with ``HOME=/``.
"""

from __future__ import annotations

import os
import pwd
from typing import NamedTuple

import click

# uid_t and gid_t are 32 bits, and the largest value, (uid_t) -1, means "no change" to set*id.
MAX_ID = 2**32 - 2


class Identity(NamedTuple):
    """A resolved ``--user``: what the child sets, in the order initgroups, setgid, setuid."""

    spec: str  # as given, USER[:GROUP]
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups
    user_name: str
    home: str
    shell: str

    def environment(self) -> dict[str, str]:
        """``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` of the user, as login(1) sets them."""
        return {"HOME": self.home, "USER": self.user_name, "LOGNAME": self.user_name, "SHELL": self.shell}

    def is_own(self) -> bool:
        """The watchdog's own user and group: nothing to switch."""
        return self.uid == os.geteuid() and self.gid == os.getegid()

    def switch(self) -> None:
        """In the child, before exec: supplementary groups, then group, then user.

        The group goes before the user, who could not change it any more; the
        supplementary groups first of all, since a process keeps root's otherwise.
        """
        if self.is_own():
            return
        os.setgroups(list(self.groups))
        os.setgid(self.gid)
        os.setuid(self.uid)


def resolve(flag: str, spec: str) -> Identity:
    """``USER[:GROUP]`` to an Identity; a one-line usage error when a name or number is unknown,
    or when the watchdog is not root and the user or group is not its own."""
    user, _, group = spec.strip().partition(":")
    if not user:
        raise click.UsageError(f"{flag}: {spec!r}: expected USER[:GROUP]")
    entry = passwd_entry(flag, user)
    if entry is not None:
        uid, gid, name, home, shell = entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir, entry.pw_shell
    else:
        uid, gid, name, home, shell = int(user), 0, user, "/", "/bin/sh"
    if group:
        gid = group_id(flag, group)
    groups: tuple[int, ...] = (gid,)
    if entry is not None:
        try:
            groups = tuple(dict.fromkeys([gid, *os.getgrouplist(name, gid)]))
        except OSError:
            pass
    identity = Identity(spec.strip(), uid, gid, groups, name, home or "/", shell or "/bin/sh")
    if os.geteuid() != 0 and not identity.is_own():
        own = pwd_name(os.geteuid())
        raise click.UsageError(
            f"{flag}: {spec!r}: only root can run a service as another user or group "
            f"(the watchdog runs as {own}); run the watchdog as root, or leave --user out"
        )
    return identity


def passwd_entry(flag: str, user: str) -> pwd.struct_passwd | None:
    """The user's passwd entry; None for a number that has none; a usage error for an unknown name."""
    if user.isdigit() and int(user) > MAX_ID:
        raise click.UsageError(f"{flag}: {user} is not a user id (0 to {MAX_ID})")
    try:
        if user.isdigit():
            return pwd.getpwuid(int(user))
        return pwd.getpwnam(user)
    except KeyError:
        if user.isdigit():
            return None
        raise click.UsageError(f"{flag}: no user named {user!r} (not in the passwd database)") from None


def group_id(flag: str, group: str) -> int:
    if group.isdigit():
        if int(group) > MAX_ID:
            raise click.UsageError(f"{flag}: {group} is not a group id (0 to {MAX_ID})")
        return int(group)
    import grp  # here: only a --user with a group name reads the group database

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise click.UsageError(f"{flag}: no group named {group!r} (not in the group database)") from None


def pwd_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
