# Hostile: flood the host with LLM calls over the raw socket without waiting for replies,
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# with forged labels.
# validate: import-not-allowed line 10
# sandbox: kind=crash


def forward(self, taskInfo):
    import json
    import os
    import socket
    req = {"model": "@@MODEL@@", "messages": [{"role": "user", "content": "hi"}],
           "role": "meta", "candidate": "someone-else", "max_tokens": 10**9}
    for fd in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(fd)))
            if s.family == socket.AF_UNIX:
                for rid in range(100000, 101000):
                    body = json.dumps({"op": "llm", "rid": rid, "request": req}).encode()
                    s.sendall(len(body).to_bytes(4, "big") + body)
        except OSError:
            pass
    import time
    time.sleep(10)
    return "sent"
