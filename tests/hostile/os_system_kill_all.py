# Hostile: os.system("kill -9 -1"): kill every process it may signal.
# validate: import-not-allowed line 7
# sandbox: kind=crash


def forward(self, taskInfo):
    import os
    os.system("kill -9 -1")
    return "still here"
