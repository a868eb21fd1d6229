# Hostile: burn CPU on many threads (the wall-clock timeout alone would let it run).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: kind=timeout


def forward(self, taskInfo):
    import threading

    def burn():
        while True:
            pass

    for _ in range(4):
        threading.Thread(target=burn, daemon=True).start()
    burn()
