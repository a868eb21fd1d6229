# Hostile: call the model in a loop to drain the budget.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: infinite-loop line 9
# sandbox: kind=budget


def forward(self, taskInfo):
    agent = LLMAgentBase(["answer"], "drain")
    while True:
        agent([taskInfo], "again")
