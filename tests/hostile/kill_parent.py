# Hostile: kill the parent, pid 1 and the process group.
# validate: import-not-allowed line 7
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
