# Hostile: sleep far past the task timeout.
# validate: import-not-allowed line 7
# sandbox: kind=timeout


def forward(self, taskInfo):
    import time
    time.sleep(3600)
    return "woke up"
