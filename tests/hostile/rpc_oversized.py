# Hostile: announce a 2 GB frame on the RPC socket.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: kind=crash


def forward(self, taskInfo):
    import os
    import socket
    for fd in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(fd)))
            if s.family == socket.AF_UNIX:
                s.sendall((2**31).to_bytes(4, "big") + b"{" * 65536)
        except OSError:
            pass
    import time
    time.sleep(10)
    return "sent"
