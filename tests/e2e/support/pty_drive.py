#!/usr/bin/env python3
"""Drive an interactive `ssh -tt` under a real pseudo-terminal, as a person at a terminal would.

Usage: pty_drive.py ROWSxCOLS NEW_ROWSxNEW_COLS -- ssh ARGS...

1. Spawns the command on a new pty of ROWSxCOLS (its controlling terminal).
2. Types `stty size` until the remote shell prints "ROWS COLS".
3. Resizes the terminal (TIOCSWINSZ on the pty, then SIGWINCH to the ssh process, as a
   terminal emulator does) and types `stty size` until it prints "NEW_ROWS NEW_COLS".
4. Types `exit 5`, reads to the end, and exits with the command's own exit status.

Everything the terminal showed goes to stdout. A step that does not see what it waits for
within its deadline ends the run with status 99 and says which step on stderr, so the test
fails with the transcript instead of hanging.
"""

import fcntl
import os
import re
import select
import signal
import struct
import sys
import termios
import time

STEP_TIMEOUT = 15.0


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def parse_size(text):
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


class Terminal:
    def __init__(self, argv, rows, cols):
        self.transcript = b""
        # The size is set before the child starts, so ssh's pty request carries it.
        fd, child_fd = os.openpty()
        set_size(child_fd, rows, cols)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(fd)
                os.setsid()
                fcntl.ioctl(child_fd, termios.TIOCSCTTY, 0)
                for target in (0, 1, 2):
                    os.dup2(child_fd, target)
                if child_fd > 2:
                    os.close(child_fd)
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        os.close(child_fd)
        self.pid, self.fd = pid, fd

    def read_some(self, timeout):
        """Read what is available within `timeout`; False once the terminal is closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the child side closed
            return False
        if not chunk:
            return False
        self.transcript += chunk
        return True

    def type(self, text):
        os.write(self.fd, text.encode())

    def has_line(self, pattern, since):
        text = self.transcript[since:].decode("utf-8", "replace")
        # Prompts carry escape sequences (bracketed paste mode) that are not text.
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
        return re.search(pattern, text, re.MULTILINE) is not None

    def type_until(self, text, pattern, what):
        """Type `text` (again every second) until `pattern` shows up in the new output."""
        since = len(self.transcript)
        deadline = time.monotonic() + STEP_TIMEOUT
        next_type = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_type:
                self.type(text)
                next_type = time.monotonic() + 1.0
            if not self.read_some(0.1):
                break
            if self.has_line(pattern, since):
                return
        self.fail(what)

    def finish(self):
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            if not self.read_some(0.1):
                break
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        self.fail("ssh to exit after 'exit 5'")

    def fail(self, what):
        sys.stdout.write(self.transcript.decode("utf-8", "replace"))
        sys.stdout.flush()
        sys.stderr.write(f"pty_drive: timed out waiting for {what}\n")
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(99)


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--":
        sys.stderr.write(__doc__)
        sys.exit(2)
    rows, cols = parse_size(args[0])
    new_rows, new_cols = parse_size(args[1])
    term = Terminal(args[3:], rows, cols)

    # The shell echoes what is typed ("stty size"), so only a line that is exactly the two
    # numbers is the answer.
    term.type_until("stty size\n", rf"^{rows} {cols}$", f"'{rows} {cols}' from stty size")

    set_size(term.fd, new_rows, new_cols)
    os.kill(term.pid, signal.SIGWINCH)
    term.type_until(
        "stty size\n", rf"^{new_rows} {new_cols}$", f"'{new_rows} {new_cols}' after the resize"
    )

    term.type("exit 5\n")
    status = term.finish()
    sys.stdout.write(term.transcript.decode("utf-8", "replace"))
    sys.stdout.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
