# Hostile: write garbage (non-JSON, a JSON bomb) on the RPC socket it finds among its fds.
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
                body = b"[" * 100000 + b"]" * 100000
                s.sendall(len(body).to_bytes(4, "big") + body)
                s.sendall(b"\x00\x00\x00\x05notjs")
        except OSError:
            pass
    import time
    time.sleep(10)
    return "sent"
