# Hostile: unbounded recursion, with the recursion limit raised.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: kind=exception|crash|timeout


def forward(self, taskInfo):
    import sys
    sys.setrecursionlimit(10**6)

    def down(n):
        return down(n + 1) + 1

    return str(down(0))
