# Hostile: connect to a TCP listener the test runs on the host's 127.0.0.1.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: blocked


def forward(self, taskInfo):
    import socket
    try:
        s = socket.socket()  # refused by the seccomp filter; else the net namespace stops it
        s.settimeout(2)
        s.connect(("127.0.0.1", int("@@PORT@@")))
        s.sendall(b"hello from the sandbox")
        return "LEAK: connected to the host listener"
    except OSError as e:
        return "BLOCKED: " + type(e).__name__
