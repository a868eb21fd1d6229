# Hostile: from run_python's child (no validation sees it), call what the filter refuses:
# a TCP socket, a netlink socket, ptrace, unshare; the filter is inherited over fork and exec.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# needs: seccomp
# sandbox: contains=seccomp=2 AF_INET=EPERM AF_NETLINK=EPERM ptrace=EPERM unshare=EPERM


def forward(self, taskInfo):
    program = '''
import ctypes, errno, platform, socket
out = ["seccomp=" + open("/proc/self/status").read().split("Seccomp:")[1].split()[0]]
for name in ("AF_INET", "AF_NETLINK"):
    try:
        socket.socket(getattr(socket, name), socket.SOCK_DGRAM).close()
        out.append(name + "=LEAK")
    except OSError as e:
        out.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
x86 = platform.machine() == "x86_64"
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in (("ptrace", 101 if x86 else 117, (16, 0x3FFFFFFF, 0, 0)),
                       ("unshare", 272 if x86 else 97, (0x10000000,))):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    out.append(name + "=" + ("LEAK" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
print(" ".join(out))
'''
    return run_python(program).strip()
