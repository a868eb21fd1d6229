# Hostile: thread bomb.
# validate: import-not-allowed line 7
# sandbox: any


def forward(self, taskInfo):
    import threading
    import time
    n = 0
    while True:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        n += 1
