# Hostile: spin forever through run_python (the agent's own code is a valid agent).
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: ok
# sandbox: contains=and was stopped. Make it faster


def forward(self, taskInfo):
    return run_python("while True:\n    pass\n")
