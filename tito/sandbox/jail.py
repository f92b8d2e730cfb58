"""Building the limited process's world, then becoming it: namespaces, an allowlisted root, no privileges.

    python -m tito.sandbox.jail JAIL_JSON       (started by tito.sandbox.launcher)
    python -m tito.sandbox.jail --probe         (exit 0 when this machine can isolate)

This process unshares new mount, network, PID, IPC and UTS namespaces (and, without root, a user
namespace first: the kernel then lets an ordinary user do the rest). It forks: the child is PID 1
of the new PID namespace. The child builds a root from nothing (a fresh tmpfs holding read-only
binds of the allowlist, a size-limited tmpfs for everything writable, a few device nodes, a /proc
of its own), pivots into it, drops every privilege (as root: a uid of its own; without root: the
exec itself clears the capabilities, as the uid inside is not 0) and execs the limited process
(tito.sandbox.child). The parent only waits, and exits the way the child did: it holds the uid lock,
so a uid is free again only once every process that used it is gone.

Only the standard library is imported here: this runs before any limit applies.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}   # syscall numbers
# statvfs flag -> mount flag: a remount inside a user namespace must keep the flags the host locked.
KEPT_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
              os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _bytes(value):
    return None if value is None else os.fsencode(value)


def mount(source, target, fstype=None, flags=0, options=None) -> None:
    _check(libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(options)),
           f"mount {source} on {target}")


def bind(source: str, target: str, read_only: bool = True) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        locked = os.statvfs(target).f_flag
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        flags |= sum(flag for st, flag in KEPT_FLAGS.items() if locked & st)
        mount(None, target, None, flags)


def die_with_parent() -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _make_target(root: str, path: str, like: str) -> str:
    target = _inside(root, path)
    if os.path.isdir(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            open(target, "w").close()
    return target


def build_root(config: dict) -> str:
    """The new root, still seen from the host's mount tree; returns its path."""
    root = config["root"]
    os.makedirs(root, exist_ok=True)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    for path in config["binds"]:
        if os.path.lexists(path):
            bind(path, _make_target(root, path, path))
    for path, target in config["symlinks"].items():
        os.makedirs(os.path.dirname(_inside(root, path)), exist_ok=True)
        if not os.path.lexists(_inside(root, path)):
            os.symlink(target, _inside(root, path))
    uid, gid = int(config["uid"]), int(config["gid"])
    # Everything the submission may write lives in one tmpfs: a total quota, not only a per-file one.
    writable = os.path.join(root, ".writable")
    os.makedirs(writable)
    mount("tmpfs", writable, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={int(config['quota_mb'])}m,mode=0700,uid={uid},gid={gid}")
    scratch = config["scratch"]
    for name, target in (("tmp", "/tmp"), ("shm", "/dev/shm"), ("scratch", scratch)):
        os.makedirs(os.path.join(writable, name))
        os.chmod(os.path.join(writable, name), 0o1777 if name != "scratch" else 0o700)
        os.chown(os.path.join(writable, name), uid, gid)
        place = _inside(root, target)
        os.makedirs(place, exist_ok=True)
        bind(os.path.join(writable, name), place, read_only=False)
    inside_scratch = _inside(root, scratch)
    for name in sorted(os.listdir(scratch)):
        source = os.path.join(scratch, name)
        if name in config["read_only_in_scratch"]:
            bind(source, _make_target(root, os.path.join(scratch, name), source))
        elif name in config["copied_into_scratch"]:
            shutil.copytree(source, os.path.join(inside_scratch, name), symlinks=True)
    for folder, dirs, files in os.walk(inside_scratch):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]   # read-only binds stay as they are
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, uid, gid)
    for host, inside in config.get("extra_binds", {}).items():
        bind(host, _make_target(root, inside, host))
    for device in config["devices"]:
        bind(f"/dev/{device}", _make_target(root, f"/dev/{device}", f"/dev/{device}"), read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, _inside(root, f"/dev/{name}"))
    os.makedirs(_inside(root, "/proc"), exist_ok=True)
    try:
        mount("proc", _inside(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass    # a kernel that refuses a fresh /proc here gets none: never the host's (it shows other processes)
    etc = _inside(root, "/etc")
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, "passwd"), "w") as handle:
        handle.write(f"root:x:0:0::/:/bin/false\nsandbox:x:{uid}:{gid}::{scratch}/work:/bin/false\n")
    with open(os.path.join(etc, "group"), "w") as handle:
        handle.write(f"root:x:0:\nsandbox:x:{gid}:\n")
    with open(os.path.join(etc, "hostname"), "w") as handle:
        handle.write("sandbox\n")
    _check(libc.umount2(_bytes(writable), MNT_DETACH), "umount staging tmpfs")
    os.rmdir(writable)
    return root


def enter(root: str) -> None:
    """pivot_root into root and forget the host's tree; chroot where pivot_root is refused (initramfs)."""
    os.chdir(root)
    number = PIVOT_ROOT.get(os.uname().machine)
    if number is not None and libc.syscall(number, b".", b".") == 0:          # pivot_root(".", "."): the old root stacks on top
        _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    else:
        mount(root, "/", None, 1 << 13)              # MS_MOVE
        os.chroot(".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def write_id_maps(inside_uid: int, inside_gid: int, outside_uid: int, outside_gid: int) -> None:
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{inside_uid} {outside_uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{inside_gid} {outside_gid} 1")


def unshare(user_namespace: bool) -> None:
    """In the parent: the namespaces its next child is born into (PID 1 of a new PID namespace)."""
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    outside_uid, outside_gid = os.getuid(), os.getgid()
    _check(libc.unshare(flags | (CLONE_NEWUSER if user_namespace else 0)), "unshare")
    if user_namespace:
        # The same uid inside as outside (never 0): the exec below then leaves no capability.
        write_id_maps(outside_uid, outside_gid, outside_uid, outside_gid)


def private_mounts() -> None:
    """In the child: a mount namespace of its own (pivot_root changes the root of everyone in it),
    from which nothing propagates back to the host."""
    _check(libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def wait_and_mirror(pid: int) -> None:
    """Wait for PID 1 of the namespace; exit as it did (a signal as that signal)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            os._exit(70)
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def run(config: dict) -> None:
    user_namespace = config["mode"] == "user"
    unshare(user_namespace)
    pid = os.fork()
    if pid:
        for fd in config["child_fds"]:               # EOF on the channel must mean the child is gone
            os.close(fd)
        wait_and_mirror(pid)
    die_with_parent()
    try:
        private_mounts()
        root = build_root(config)
        enter(root)
        libc.sethostname(b"sandbox", 7)
        if config.get("lock_fd") is not None:
            os.close(int(config["lock_fd"]))          # the parent holds the uid lock; the submission never sees it
        if not user_namespace:
            os.setgroups([])
            os.setgid(int(config["gid"]))
            os.setuid(int(config["uid"]))
            die_with_parent()                         # a uid change clears the parent-death signal
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.chdir(config["scratch"])
        os.execve(config["argv"][0], config["argv"], config["env"])
    except BaseException as exc:  # noqa: B902 - any failure to confine ends here, before student code runs
        sys.stderr.write(f"tito sandbox: could not confine the process: {exc}\n")
        os._exit(71)


def probe(mode: str) -> None:
    """Exit 0 when namespaces, tmpfs mounts, binds and pivot_root all work here."""
    scratch = tempfile.mkdtemp(prefix="tito-probe-")
    os.mkdir(os.path.join(scratch, "work"))
    uid, gid = os.getuid(), os.getgid()
    try:
        unshare(mode == "user")
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        sys.stderr.write(f"{exc}\n")
        os._exit(73)
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 74)
    try:
        private_mounts()
        root = build_root({"root": os.path.join(scratch, ".root"), "binds": [sys.base_prefix], "symlinks": {},
                           "uid": uid, "gid": gid, "quota_mb": 1, "scratch": scratch, "read_only_in_scratch": [],
                           "copied_into_scratch": ["work"], "devices": ["null"]})
        enter(root)
        os._exit(0 if os.path.isdir(sys.base_prefix) else 72)
    except OSError as exc:
        sys.stderr.write(f"{exc}\n")
        os._exit(73)


if __name__ == "__main__":
    if sys.argv[1] == "--probe":
        probe(sys.argv[2])
    else:
        run(json.loads(sys.argv[1]))
