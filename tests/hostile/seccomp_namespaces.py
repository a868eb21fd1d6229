# Hostile: leave the jail's namespaces or remount it: ptrace, mount, umount2, pivot_root,
# unshare, setns, clone with CLONE_NEWUSER, clone3, through raw syscall(). Arguments are
# chosen so that, unfiltered, most calls would fail with another errno than EPERM.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 11
# needs: seccomp
# sandbox: contains=seccomp=2 ptrace=EPERM mount=EPERM umount2=EPERM pivot_root=EPERM unshare=EPERM setns=EPERM clone_newuser=EPERM clone3=ENOSYS


def forward(self, taskInfo):
    import ctypes
    import errno
    import os
    import platform
    with open("/proc/self/status") as f:
        out = ["seccomp=" + f.read().split("Seccomp:")[1].split()[0]]
    x86 = platform.machine() == "x86_64"
    # PyDLL keeps the GIL, so a clone that did succeed leaves a child that can run os._exit
    libc = ctypes.PyDLL(None, use_errno=True)
    calls = [
        ("ptrace", 101 if x86 else 117, (16, 0x3FFFFFFF, 0, 0)),  # PTRACE_ATTACH, no such pid
        ("mount", 165 if x86 else 40, (0, 1, 0, 0, 0)),  # a bad target pointer: EFAULT
        ("umount2", 166 if x86 else 39, (1, 0)),
        ("pivot_root", 155 if x86 else 41, (1, 1)),
        ("unshare", 272 if x86 else 97, (0x10000000,)),  # CLONE_NEWUSER
        ("setns", 308 if x86 else 268, (-1, 0)),  # a bad fd: EBADF
        ("clone_newuser", 56 if x86 else 220, (0x10000000 | 17, 0, 0, 0, 0)),
        ("clone3", 435, (0, 0)),
    ]
    for name, nr, args in calls:
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if r == 0 and name.startswith("clone"):
            os._exit(0)  # the child of a clone that was not refused
        out.append(name + "=" + ("LEAK" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
    return " ".join(out)
