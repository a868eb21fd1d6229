# Hostile: open sockets of every address family but AF_UNIX (in the jail's own net
# namespace AF_INET would reach its loopback; netlink and packet sockets reach the kernel).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 10
# needs: seccomp
# sandbox: contains=seccomp=2 AF_INET=EPERM AF_INET6=EPERM AF_NETLINK=EPERM AF_PACKET=EPERM raw=EPERM pair=EPERM AF_UNIX=ok


def forward(self, taskInfo):
    import ctypes
    import errno
    import socket
    with open("/proc/self/status") as f:
        out = ["seccomp=" + f.read().split("Seccomp:")[1].split()[0]]
    for name in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
        try:
            socket.socket(getattr(socket, name), socket.SOCK_RAW if name == "AF_PACKET"
                          else socket.SOCK_DGRAM).close()
            out.append(name + "=LEAK")
        except OSError as e:
            out.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {"x86_64": 41, "aarch64": 198}[__import__("platform").machine()]
    r = libc.syscall(ctypes.c_long(nr), ctypes.c_long(2), ctypes.c_long(1), ctypes.c_long(0))
    out.append("raw=" + ("LEAK" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
    try:
        socket.socketpair(socket.AF_INET)
        out.append("pair=LEAK")
    except OSError as e:
        out.append("pair=" + errno.errorcode.get(e.errno, str(e.errno)))
    socket.socket(socket.AF_UNIX).close()
    socket.socketpair()
    out.append("AF_UNIX=ok")
    return " ".join(out)
