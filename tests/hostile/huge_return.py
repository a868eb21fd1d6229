# Hostile: return a 50 MB answer.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: huge-literal line 8
# sandbox: truncated


def forward(self, taskInfo):
    return "y" * 50_000_000
