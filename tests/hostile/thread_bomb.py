# Hostile: thread bomb.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: any


def forward(self, taskInfo):
    import threading
    import time
    n = 0
    while True:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        n += 1
