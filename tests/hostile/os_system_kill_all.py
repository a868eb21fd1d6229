# Hostile: os.system("kill -9 -1"): kill every process it may signal.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: kind=crash


def forward(self, taskInfo):
    import os
    os.system("kill -9 -1")
    return "still here"
