# Hostile: return a 50 MB answer.
# validate: huge-literal line 7
# sandbox: truncated


def forward(self, taskInfo):
    return "y" * 50_000_000
