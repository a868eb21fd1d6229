# Hostile: flood stdout and stderr (through print and straight to the file descriptors).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: truncated


def forward(self, taskInfo):
    import os
    line = "x" * 1000 + "\n"
    for _ in range(20000):
        print(line)
    for _ in range(2000):
        os.write(1, line.encode())
        os.write(2, line.encode())
    return "flooded"
