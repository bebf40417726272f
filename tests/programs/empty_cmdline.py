"""A process whose command line reads empty, as a kernel thread's does, then sleeps.

Kernel threads are not visible inside a PID namespace, so tests make an empty command
line of their own: prctl(PR_SET_MM, PR_SET_MM_MAP) with the process's own memory map,
except that the argument area ends where it starts. Without a new executable this
needs no capability. Prints "ready" once /proc/self/cmdline reads empty, or the error;
on SIGUSR1 it gives its arguments back (as an exec in progress does when it ends) and
prints "restored".
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_MM = 35
PR_SET_MM_MAP = 14


class MemoryMap(ctypes.Structure):
    """struct prctl_mm_map from <linux/prctl.h>."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
        "start_stack", "arg_start", "arg_end", "env_start", "env_end",
    )] + [("auxv", ctypes.c_void_p), ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]


def set_memory_map(libc: ctypes.CDLL, mm: MemoryMap) -> str | None:
    if libc.prctl(PR_SET_MM, PR_SET_MM_MAP, ctypes.byref(mm), ctypes.sizeof(mm), 0) != 0:
        return f"prctl: {os.strerror(ctypes.get_errno())}"
    return None


def main() -> int:
    with open("/proc/self/stat", "rb") as stat:
        after_comm = stat.read().rsplit(b")", 1)[1].split()
    field = lambda number: int(after_comm[number - 3])  # noqa: E731  stat(5) numbering
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sbrk.restype = ctypes.c_void_p
    mm = MemoryMap(
        start_code=field(26), end_code=field(27), start_data=field(45), end_data=field(46),
        start_brk=field(47), brk=libc.sbrk(0), start_stack=field(28),
        arg_start=field(48), arg_end=field(48), env_start=field(50), env_end=field(51),
        auxv=None, auxv_size=0, exe_fd=0xFFFFFFFF,
    )
    arg_end = field(49)
    if error := set_memory_map(libc, mm):
        print(error, flush=True)
        return 1
    with open("/proc/self/cmdline", "rb") as cmdline:
        print("ready" if cmdline.read() == b"" else "still has a command line", flush=True)

    def restore(signum: int, frame: object) -> None:
        mm.arg_end = arg_end
        mm.brk = libc.sbrk(0)
        print(set_memory_map(libc, mm) or "restored", flush=True)

    signal.signal(signal.SIGUSR1, restore)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1000)  # resumed after a signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
