# Hostile: fork bomb.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: any


def forward(self, taskInfo):
    import os
    n = 0
    while True:
        try:
            if os.fork() == 0:
                while True:
                    os.fork()
            n += 1
        except OSError:
            return f"fork failed after {n}"
