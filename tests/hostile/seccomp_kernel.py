# Hostile: reach kernel surfaces an unprivileged process may otherwise use or probe:
# keyctl, add_key, bpf, perf_event_open, userfaultfd, io_uring_setup (io_uring could open
# sockets past the socket filter), through raw syscall().
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 11
# needs: seccomp
# sandbox: contains=seccomp=2 keyctl=EPERM add_key=EPERM bpf=EPERM perf_event_open=EPERM userfaultfd=EPERM io_uring_setup=EPERM


def forward(self, taskInfo):
    import ctypes
    import errno
    import platform
    with open("/proc/self/status") as f:
        out = ["seccomp=" + f.read().split("Seccomp:")[1].split()[0]]
    x86 = platform.machine() == "x86_64"
    libc = ctypes.CDLL(None, use_errno=True)
    calls = [
        ("keyctl", 250 if x86 else 219, (9999, 0, 0, 0, 0)),  # an unknown op: EOPNOTSUPP
        ("add_key", 248 if x86 else 217, (0, 0, 0, 0, 0)),  # NULL type: EFAULT
        ("bpf", 321 if x86 else 280, (9999, 0, 0)),
        ("perf_event_open", 298 if x86 else 241, (0, 0, -1, -1, 0)),  # NULL attr: EFAULT
        ("userfaultfd", 323 if x86 else 282, (0xFFFF,)),  # bad flags: EINVAL
        ("io_uring_setup", 425, (0, 0)),
    ]
    for name, nr, args in calls:
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        out.append(name + "=" + ("LEAK" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
    return " ".join(out)
