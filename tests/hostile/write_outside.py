# Hostile: write outside the scratch dir: a world-writable host dir, /tmp, /dev/shm, the package.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: any


def forward(self, taskInfo):
    import os
    wrote = []
    for path in ("@@OUTSIDE_DIR@@/pwned", "/tmp/pwned-@@TOKEN@@", "/dev/shm/pwned-@@TOKEN@@",
                 "@@PKG_DIR@@/pwned_@@TOKEN@@.py", "/var/tmp/pwned-@@TOKEN@@"):
        try:
            with open(path, "w") as f:
                f.write("pwned")
            wrote.append(path)
        except OSError:
            pass
    return "wrote " + repr(wrote)
