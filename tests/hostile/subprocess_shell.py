# Hostile: run shell commands with subprocess: read secrets, write outside, phone home.
# ruff: noqa  (agent code in the ADAS dialect, not a project module)
# validate: import-not-allowed line 8
# sandbox: any


def forward(self, taskInfo):
    import subprocess
    r = subprocess.run(
        ["/bin/sh", "-c", "id; cat /etc/shadow; env; touch @@OUTSIDE_DIR@@/sub-pwned; "
         "cat @@SSH_DIR@@/id_rsa"],
        capture_output=True, text=True, timeout=5)
    return r.stdout + r.stderr
