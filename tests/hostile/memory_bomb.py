# Hostile: allocate until the machine falls over.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: top-level-statement line 7
# sandbox: kind=exception


blocks = []
while True:
    blocks.append(bytearray(64 << 20))
