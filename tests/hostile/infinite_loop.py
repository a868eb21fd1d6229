# Hostile: spin forever.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: infinite-loop line 8
# sandbox: kind=timeout


def forward(self, taskInfo):
    while True:
        pass
