# Hostile: spin forever.
# validate: infinite-loop line 7
# sandbox: kind=timeout


def forward(self, taskInfo):
    while True:
        pass
