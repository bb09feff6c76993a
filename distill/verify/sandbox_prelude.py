"""What both sandbox harnesses (candidate and judge) start with; its text is prepended to theirs.

Usage: not imported. distill/verify/sandbox.py runs `python -I -S -c PRELUDE + HARNESS`, and each
harness's _main() first calls _enter_pid_namespace().
"""


def _enter_pid_namespace():
    """With a pid namespace, fork: the child (pid 1 inside) goes on; we wait and exit as it did."""
    import os, signal
    if not os.environ.get("DISTILL_SANDBOX_PIDNS"):
        return
    pid = os.fork()
    if pid == 0:
        return
    os.closerange(3, 1 << 16)  # the child's pipes must close the moment it dies
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):  # die the same way, so distill reads the same signal
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))
