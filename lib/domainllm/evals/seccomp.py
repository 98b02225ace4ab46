"""A seccomp filter for sandboxed programs, from the standard library alone (ctypes + prctl).

Installed by the jail last, right before it becomes the program (the filter survives exec):
sockets other than AF_UNIX fail with EAFNOSUPPORT (no network even where a network namespace
was not made), and what a program needs only to escape or to reach other processes fails
with EPERM: ptrace, mount and friends, namespaces (unshare, setns, clone with a namespace
flag), keyrings, bpf, perf, userfaultfd, io_uring, kernel modules. clone3 gets ENOSYS so
that libc falls back to clone, whose flags the filter can read. A system call of another ABI
(i386 on x86_64, x32) kills the process. `PR_SET_NO_NEW_PRIVS` is set first: no setuid binary
can give the program back what it lost. Known machines: x86_64 and aarch64; on others the
jail refuses (never runs unfiltered)."""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16  # struct seccomp_data; args[0]'s low 32 bits (little endian)
AF_UNIX = 1
CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
X32_BIT = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E

_COMMON = ("ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
           "perf_event_open", "userfaultfd", "process_vm_readv", "process_vm_writev", "open_by_handle_at", "io_uring_setup",
           "io_uring_enter", "io_uring_register", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
           "mount_setattr", "kexec_load", "init_module", "finit_module", "delete_module", "syslog", "acct")  # fmt: skip
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (AUDIT_ARCH_X86_64, dict(socket=41, clone=56, clone3=435, personality=135, ptrace=101, mount=165, umount2=166,
        pivot_root=155, chroot=161, unshare=272, setns=308, keyctl=250, add_key=248, request_key=249, bpf=321, perf_event_open=298,
        userfaultfd=323, process_vm_readv=310, process_vm_writev=311, open_by_handle_at=304, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
        kexec_load=246, init_module=175, finit_module=313, delete_module=176, syslog=103, acct=163)),
    "aarch64": (0xC00000B7, dict(socket=198, clone=220, clone3=435, personality=92, ptrace=117, mount=40, umount2=39, pivot_root=41,
        chroot=51, unshare=97, setns=268, keyctl=219, add_key=217, request_key=218, bpf=280, perf_event_open=241, userfaultfd=282,
        process_vm_readv=270, process_vm_writev=271, open_by_handle_at=265, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
        kexec_load=104, init_module=105, finit_module=273, delete_module=106, syslog=116, acct=89)),
}  # fmt: skip


class SeccompError(OSError):
    pass


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes:
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise SeccompError(errno.ENOSYS, f"no seccomp filter for machine {machine!r} (known: {', '.join(ARCHES)})")
    arch, nr = ARCHES[machine]
    eperm = RET_ERRNO | errno.EPERM
    prog = [_ins(LD_W_ABS, 0, 0, OFF_ARCH), _ins(JEQ_K, 1, 0, arch), _ins(RET_K, 0, 0, RET_KILL_PROCESS), _ins(LD_W_ABS, 0, 0, OFF_NR)]
    if arch == AUDIT_ARCH_X86_64:
        prog += [_ins(JGE_K, 0, 1, X32_BIT), _ins(RET_K, 0, 0, RET_KILL_PROCESS)]
    for name in _COMMON:
        prog += [_ins(JEQ_K, 0, 1, nr[name]), _ins(RET_K, 0, 0, eperm)]
    prog += [_ins(JEQ_K, 0, 1, nr["clone3"]), _ins(RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    # personality: only the query (0xffffffff) and PER_LINUX (0); e.g. ADDR_NO_RANDOMIZE is refused
    prog += [_ins(JEQ_K, 0, 4, nr["personality"]), _ins(LD_W_ABS, 0, 0, OFF_ARG0), _ins(JEQ_K, 2, 0, 0),
             _ins(JEQ_K, 1, 0, 0xFFFFFFFF), _ins(RET_K, 0, 0, eperm)]  # fmt: skip
    prog += [_ins(LD_W_ABS, 0, 0, OFF_NR), _ins(JEQ_K, 0, 3, nr["clone"]), _ins(LD_W_ABS, 0, 0, OFF_ARG0),
             _ins(JSET_K, 0, 1, CLONE_NS_FLAGS), _ins(RET_K, 0, 0, eperm)]  # fmt: skip
    prog += [_ins(LD_W_ABS, 0, 0, OFF_NR), _ins(JEQ_K, 0, 3, nr["socket"]), _ins(LD_W_ABS, 0, 0, OFF_ARG0),
             _ins(JEQ_K, 1, 0, AF_UNIX), _ins(RET_K, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT)]  # fmt: skip
    prog.append(_ins(RET_K, 0, 0, RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def no_new_privs() -> None:
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def install(machine: str | None = None) -> None:
    """no_new_privs, then the filter, for this process and whatever it execs."""
    code = build_filter(machine)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    no_new_privs()
    if _libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return libc
