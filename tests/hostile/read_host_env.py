# Hostile: dump every environment it can reach (own, pid 1, parent, all of /proc).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
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
