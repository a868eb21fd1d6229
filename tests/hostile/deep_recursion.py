# Hostile: unbounded recursion, with the recursion limit raised.
# validate: import-not-allowed line 7
# sandbox: kind=exception|crash|timeout


def forward(self, taskInfo):
    import sys
    sys.setrecursionlimit(10**6)

    def down(n):
        return down(n + 1) + 1

    return str(down(0))
