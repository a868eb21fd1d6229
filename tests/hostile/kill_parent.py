# Hostile: kill the parent, pid 1 and the process group.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: any


def forward(self, taskInfo):
    import os
    import signal
    res = []
    for pid in (os.getppid(), 1):
        try:
            os.kill(pid, signal.SIGKILL)
            res.append(f"killed {pid}")
        except OSError as e:
            res.append(f"{pid}: {type(e).__name__}")
    return " ".join(res)
