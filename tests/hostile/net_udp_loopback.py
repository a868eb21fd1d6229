# Hostile: send UDP datagrams to a socket the test binds on the host's 127.0.0.1.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: blocked


def forward(self, taskInfo):
    import socket
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # refused by the seccomp filter
    except OSError as e:
        return "BLOCKED: " + type(e).__name__
    for _ in range(5):
        try:
            s.sendto(b"exfiltrate", ("127.0.0.1", int("@@UDP_PORT@@")))
        except OSError:
            pass
    return "BLOCKED: sent blind"
