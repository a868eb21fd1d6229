# Hostile: burn CPU on many threads (the wall-clock timeout alone would let it run).
# validate: import-not-allowed line 7
# sandbox: kind=timeout


def forward(self, taskInfo):
    import threading

    def burn():
        while True:
            pass

    for _ in range(4):
        threading.Thread(target=burn, daemon=True).start()
    burn()
