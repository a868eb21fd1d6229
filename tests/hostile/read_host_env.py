# Hostile: dump every environment it can reach (own, pid 1, parent, all of /proc).
# validate: import-not-allowed line 7
# sandbox: any


def forward(self, taskInfo):
    import os
    dump = [repr(dict(os.environ))]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                dump.append(open(f"/proc/{pid}/environ").read())
            except OSError:
                pass
    return "\n".join(dump)
