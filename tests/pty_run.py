"""Runs a command on a pseudo-terminal (as a person's shell would) and prints, on
stdout, everything it wrote to the terminal, then `exit: N`. Used by tests/output.rs
to see what berth shows on a terminal: spinners and colour."""

import os
import pty
import sys

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
chunks = []
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not data:
        break
    chunks.append(data)
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(b"".join(chunks))
sys.stdout.write(f"\nexit: {os.waitstatus_to_exitcode(status)}\n")
