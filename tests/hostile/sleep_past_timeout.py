# Hostile: sleep far past the task timeout.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: kind=timeout


def forward(self, taskInfo):
    import time
    time.sleep(3600)
    return "woke up"
