"""Start one process inside the sandbox's OS walls, wait for it on a wall clock, then kill all it left.

Usage:
    from distill.verify.confine import isolation, Jail
    layers = isolation()                  # {"uid": True, "netns": True, "fsroot": True, "pidns": True, ...}
    jail = Jail(base, layers)             # base: a fresh temp dir; each process gets base/<name>/ as cwd
    proc = jail.start("judge", [layers["python"], "-I", "-S", "-c", code], pass_fds=(r, w))
    jail.wait(proc, deadline)             # returncode, or None when the deadline passed
    jail.close()                          # SIGKILL every process group and every throwaway uid

Walls, each used only where ``isolation()`` measured that it works on this machine:
- an empty environment, ``python -I -S``, a new session (its process group is SIGKILLed at the end);
- rlimits on CPU time, address space, file size, processes, open files, core dumps;
- ``uid`` (running as root): a throwaway uid per process, so RLIMIT_NPROC counts only that process
  tree, it cannot signal or trace anything else, and every process of that uid is killed afterwards;
- ``netns``: a private network namespace with loopback only (a user namespace too when not root);
- ``pidns``: a private pid namespace: the started process stays outside it and its first child is
  pid 1 inside (the harnesses fork once when DISTILL_SANDBOX_PIDNS is set), so the program cannot
  name, signal or trace any process outside, and all of it dies with that child;
- ``fsroot``: a private mount namespace whose root is an empty read-only tmpfs holding only the
  interpreter's install and /usr (read-only), /dev/null, /dev/zero, /dev/urandom and the process's own
  work dir (the one writable place). /etc, /tmp, /proc, home and project folders do not exist inside.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import os
import resource
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

FILE_LIMIT_MB = 16
NPROC_LIMIT = 32
UID_RANGE = (2_000_000, 2_900_000)  # throwaway uids, one per process, when running as root
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
MNT_DETACH, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 2, -100, 0x8000, 1
SYS_PIVOT_ROOT, SYS_MOUNT_SETATTR = {"x86_64": (155, 442), "aarch64": (41, 442)}.get(os.uname().machine, (None, None))
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_PYTHON = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@lru_cache(maxsize=1)
def isolation() -> dict:
    """Which walls work here, each found by trying it once (strongest combination first)."""
    root = os.geteuid() == 0
    for use_uid in ((True, False) if root else (False,)):
        python = _interpreter(use_uid)
        if python is None:
            continue
        for fsroot, pidns, netns in itertools.product((True, False), repeat=3):
            layers = _probe({"uid": use_uid, "netns": netns, "fsroot": fsroot, "pidns": pidns, "python": python})
            if layers is not None:
                return layers
    log.error("sandbox: no interpreter could be started, even with no walls but rlimits")
    return {"uid": False, "netns": False, "fsroot": False, "pidns": False, "nproc": False, "network": "none",
            "python": None}


# With a pid namespace the started process stays outside it and forks once: that child is pid 1.
_PROBE = ("import os, socket, json, sys\n"
          "if os.environ.get('DISTILL_SANDBOX_PIDNS') and os.fork():\n"
          "    os._exit(os.WEXITSTATUS(os.wait()[1]))\n"
          "print(json.dumps([os.getuid(), [n for _, n in socket.if_nameindex()], os.path.exists(sys.argv[1]),\n"
          "                  os.getpid()]))")


def _probe(layers: dict) -> dict | None:
    """Start a probe with these walls; report what it measured from inside, or None if it failed."""
    base = Path(tempfile.mkdtemp(prefix="distill-probe-"))
    try:  # a probe that cannot even write its marker measured nothing: these walls are unusable
        marker = base / "outside"  # visible inside only when the private root is not in place
        marker.write_text("x")
        jail = Jail(base, layers)
        try:
            proc = jail.start("probe", [layers["python"], "-I", "-S", "-c", _PROBE, str(marker)])
            code = jail.wait(proc, time.monotonic() + 10.0)
        finally:
            jail.close()
        out = jail.output("probe")
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("sandbox probe %s failed: %s", layers, exc)
        return None
    finally:  # TemporaryDirectory's cleanup recurses without end when the directory cannot be opened
        shutil.rmtree(base, ignore_errors=True)
    if code != 0:
        return None
    try:
        uid, ifaces, sees_outside, pid = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    measured = dict(layers)
    measured["uid"] = layers["uid"] and uid != os.geteuid()
    measured["netns"] = layers["netns"] and set(ifaces) <= {"lo"}
    measured["fsroot"] = layers["fsroot"] and not sees_outside
    measured["pidns"] = layers["pidns"] and pid == 1
    measured["nproc"] = measured["uid"]  # exact only with a uid of its own
    measured["network"] = "netns" if measured["netns"] else "audit-hook"
    return measured


def _interpreter(other_uid: bool) -> str | None:
    """Our own interpreter, or for a throwaway uid the first one that uid may execute.

    Candidates run with ``-I -S`` (standard library only), so any Python >= 3.8 will do.
    """
    if not other_uid:
        return _PYTHON
    for path in (_PYTHON, *_SYSTEM_PYTHONS):
        real = os.path.realpath(path)
        if os.path.isfile(real) and _world_executable(real):
            return real
    return None


def _world_executable(path: str) -> bool:
    dirs_ok = all(os.stat(d).st_mode & 0o001 for d in Path(path).parents)
    return dirs_ok and os.stat(path).st_mode & 0o005 == 0o005


@dataclass
class Jail:
    """The processes of one sandboxed run; each started in ``base/<name>/`` with its own uid."""

    base: Path
    layers: dict
    cpu_s: float = 5.0
    memory_mb: int = 512
    uids: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, name: str, argv: list[str], pass_fds: tuple[int, ...] = (), stdin: bytes = b"") -> subprocess.Popen:
        """Start argv confined, with ``stdin`` fed to it and its stdout/stderr kept in base/<name>.out/.err."""
        work = self.base / name
        work.mkdir(mode=0o700)
        uid = None
        if self.layers.get("uid"):
            low, high = UID_RANGE
            uid = secrets.randbelow(high - low) + low
            while uid in self.uids:
                uid = secrets.randbelow(high - low) + low
            self.uids.append(uid)
            os.chmod(self.base, 0o711)  # the uid may pass through base to its work dir, not list it
            os.chown(work, uid, uid)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if self.layers.get("pidns"):
            env["DISTILL_SANDBOX_PIDNS"] = "1"  # the harness forks once so its program runs as pid 1
        new_root = _mountpoint() if self.layers.get("fsroot") else None
        with open(self.base / f"{name}.out", "wb") as out, open(self.base / f"{name}.err", "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=work, env=env, close_fds=True,
                pass_fds=pass_fds, start_new_session=True,
                preexec_fn=_preexec(uid, self.layers, self.cpu_s, self.memory_mb, str(work), new_root, argv[0]))
        self.procs.append(proc)
        try:
            proc.stdin.write(stdin)  # the child reads all of stdin first, so this cannot deadlock
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        return proc

    def wait(self, proc: subprocess.Popen, deadline: float) -> int | None:
        """The exit status, or None when the deadline passed first (nothing is killed here)."""
        try:
            fd = os.pidfd_open(proc.pid)  # wakes us the moment it exits, no polling sleeps
        except (AttributeError, OSError):
            try:
                return proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                return None
        try:
            if not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
                return None
        finally:
            os.close(fd)
        return proc.wait()

    def output(self, name: str, limit: int = 4000, stream: str = "out") -> str:
        return _tail(self.base / f"{name}.{stream}", limit)

    def close(self) -> None:
        """SIGKILL every process group, then anything still running under one of the run's uids."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the session's group: forks that did not setsid
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:  # reaped first, so the uid scan below finds only real escapees
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("sandbox: process %d did not die", proc.pid)
        for uid in self.uids:
            deadline = time.monotonic() + 5
            while _pids_of(uid) and time.monotonic() < deadline:
                # anything that escaped the group still has the run's uid; wait until it is really gone
                subprocess.run(_KILL_ALL, user=uid, group=uid, extra_groups=[], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"}, check=False)
                time.sleep(0.01)


def _mountpoint() -> Path:
    """An empty directory of ours that the private root is mounted on, only inside the child's namespace.

    One per user, kept: removing a directory that was a mount point in another namespace waits for
    the kernel to tear that mount down (several ms a run).
    """
    path = Path(tempfile.gettempdir()) / f"distill-sandbox-root-{os.geteuid()}"
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise OSError(f"sandbox: {path} is not a directory of ours; remove it")
    return path


def _preexec(uid: int | None, layers: dict, cpu_s: float, memory_mb: int, work: str, new_root: Path | None,
             python: str):
    libc = _libc() if (layers.get("netns") or layers.get("pidns") or new_root) else None
    flags = (CLONE_NEWNET if layers.get("netns") else 0) | (CLONE_NEWNS if new_root else 0) | (
        CLONE_NEWPID if layers.get("pidns") else 0)
    if flags and os.geteuid() != 0:
        flags |= CLONE_NEWUSER  # an unprivileged user may make these namespaces inside a user namespace
    cpu = int(cpu_s) + 1
    memory = memory_mb << 20
    nproc = NPROC_LIMIT if uid is not None else _user_process_count() + NPROC_LIMIT
    limits = [(resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (memory, memory)),
              (resource.RLIMIT_FSIZE, (FILE_LIMIT_MB << 20, FILE_LIMIT_MB << 20)), (resource.RLIMIT_CORE, (0, 0)),
              (resource.RLIMIT_NOFILE, (64, 64)), (resource.RLIMIT_NPROC, (nproc, nproc))]
    if new_root and SYS_PIVOT_ROOT is None:  # the probe then measures the root as unavailable
        raise OSError("sandbox: no pivot_root/mount_setattr syscall numbers for " + os.uname().machine)
    plan = _root_plan(work, python) if new_root else None
    ids = os.getuid(), os.getgid()

    def in_child() -> None:  # runs between fork and exec
        if flags:
            _check(libc.unshare(flags), "unshare")
        if flags & CLONE_NEWUSER:
            _map_self(*ids)
        if plan is not None:
            _enter_root(libc, str(new_root), plan, work)
        for which, value in limits:
            resource.setrlimit(which, value)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return in_child


def _map_self(uid: int, gid: int) -> None:
    """Keep our own ids inside a new user namespace (unmapped ids cannot create files in the new root)."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def _root_plan(work: str, python: str) -> dict:
    """What the private root holds: read-only trees, device files, the host's /bin-style symlinks."""
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    trees = ["/usr"] + ([prefix] if prefix not in ("/", "/usr") and not prefix.startswith("/usr/") else [])
    links = []
    for top in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.isdir(top):
            trees.append(top)  # a system without merged /usr
    return {"trees": trees, "links": links, "devices": [d for d in DEVICES if os.path.exists(d)]}


def _enter_root(libc, new_root: str, plan: dict, work: str) -> None:
    ro = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    _check(libc.mount(b"tmpfs", new_root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=755"), "tmpfs")
    for tree in plan["trees"]:
        inside = (new_root + tree).encode()
        os.makedirs(inside, exist_ok=True)
        _check(libc.mount(tree.encode(), inside, None, MS_BIND | MS_REC, None), "bind " + tree)
        _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, inside, AT_RECURSIVE, ctypes.byref(ro), ctypes.sizeof(ro)),
               "read-only " + tree)
    for device in plan["devices"]:
        inside = new_root + device
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        open(inside, "wb").close()
        _check(libc.mount(device.encode(), inside.encode(), None, MS_BIND, None), "bind " + device)
    for top, target in plan["links"]:
        os.symlink(target, new_root + top)
    os.makedirs(new_root + work, exist_ok=True)
    _check(libc.mount(work.encode(), (new_root + work).encode(), None, MS_BIND, None), "bind work dir")
    os.chdir(new_root)
    _check(libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")  # the old root ends up stacked under "."
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", 0, ctypes.byref(ro), ctypes.sizeof(ro)), "read-only /")
    os.chdir(work)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sandbox: {what}: {os.strerror(errno)}")


@lru_cache(maxsize=1)
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _user_process_count() -> int:
    """Processes this user already has: RLIMIT_NPROC counts them all when we cannot switch uid."""
    me = os.geteuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == me
            except OSError:
                pass
    return count


# kill(-1) from the throwaway uid reaches exactly that uid's processes
_KILL_ALL = ([shutil.which("kill"), "-9", "-1"] if shutil.which("kill")
             else [_PYTHON, "-I", "-S", "-c", "import os; os.kill(-1, 9)"])


def _pids_of(uid: int) -> list[int]:
    """Live processes of ``uid`` (zombies are dead already; reaping them is init's job)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not is_zombie(entry.path):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def is_zombie(proc_dir: str) -> bool:
    with open(proc_dir + "/stat", "rb") as fh:
        return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
