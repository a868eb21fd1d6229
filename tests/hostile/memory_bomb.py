# Hostile: allocate until the machine falls over.
# validate: top-level-statement line 6
# sandbox: kind=exception


blocks = []
while True:
    blocks.append(bytearray(64 << 20))
