# Hostile: from run_python's child, reach the worker's RPC socket: inherited fds, the
# worker's /proc/<pid>/fd, pidfd_getfd, /proc/<pid>/mem and ptrace; write garbage on any
# socket found.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# sandbox: blocked


def forward(self, taskInfo):
    program = '''
import ctypes, os, socket
reached = []

def garble(fd, how):
    reached.append(how)
    try:
        s = socket.socket(fileno=fd)
        s.sendall(b"\\x00\\x00\\x00\\x05notjs" + b"[" * 100000)
    except OSError:
        pass

for fd in range(3, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    garble(fd, "inherited fd %d" % fd)
parent = os.getppid()
try:
    os.listdir("/proc/%d/fd" % parent)
    reached.append("listed /proc/%d/fd" % parent)
except OSError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
try:
    pidfd = os.pidfd_open(parent)
    for target in range(64):
        fd = libc.syscall(438, pidfd, target, 0)
        if fd >= 0:
            garble(fd, "pidfd_getfd %d" % target)
except OSError:
    pass
try:
    open("/proc/%d/mem" % parent, "rb").close()
    reached.append("/proc/%d/mem" % parent)
except OSError:
    pass
if libc.ptrace(16, parent, 0, 0) == 0:
    reached.append("ptrace")
print("REACHED: " + ", ".join(reached) if reached else "BLOCKED: no route to the worker")
'''
    return run_python(program).strip()
