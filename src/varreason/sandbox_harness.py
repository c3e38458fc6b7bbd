"""The trusted side of the code sandbox: it runs inside the sandbox, sets it up, then runs the tests.

Standard library only: ``varreason.sandbox`` starts it as ``python -I -c <this file's text>`` with
a clean environment (as pid 1 of new PID, mount and network namespaces where they are available), so
it needs no file the sandbox's user may be unable to read. Protocol, JSON lines: the host sends the
job (limits, identity, program, test inputs; never the expected outputs), the harness answers
``{"ready": ...}`` once set up, then per test one result line, and reads ``go`` or ``stop`` before
the next test (the host stops at the first failure).

Set-up, in this order, all before any untrusted code runs: join the cgroups the host made (process
and memory limits for everything in the sandbox), private mounts (the whole tree read-only, fresh
tmpfs of a bounded size on /tmp, /var/tmp, /dev/shm, /run/lock, a fresh /proc), no new privileges,
the process-count limit, then drop to the sandbox's own user (when started as root).

Each test runs in a forked child: its own process group, stdin from a file of the test's input (the
file is removed once open), stdout, stderr and a result channel on pipes, every other descriptor
closed, limits on address space and CPU time, then the program. The harness reads at most
``max_output_bytes`` of stdout; past the wall-clock ``timeout_s`` or that cap it kills everything in
the sandbox but itself (``kill(-1)`` as pid 1 of its PID namespace; the test's process group
otherwise) and reaps it. A program cannot signal the harness: signals from inside a PID namespace to
its pid 1 are dropped (without a PID namespace it can, and the host then judges the test an error).
"""

import ctypes
import errno
import io
import json
import os
import resource
import select
import signal
import sys
import time
import traceback

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 1, 2, 4, 16384, 1 << 18
AT_RECURSIVE, MOUNT_ATTR_RDONLY, SYS_MOUNT_SETATTR = 0x8000, 0x1, 442
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 38, 36
EXIT_ASSERTION = 3  # a script-style test's assert failed: a wrong answer, not a crash
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # the world-writable places, each a fresh tmpfs


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]  # fmt: skip


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def setup(job):
    """Everything that needs privileges, then drop them. Returns what was set up (for ``ready``)."""
    done = []
    for procs in job.get("cgroups", []):
        with open(procs, "w") as f:
            f.write("0")  # this process; its children inherit the cgroup
        done.append("cgroup")
    libc = ctypes.CDLL(None, use_errno=True)
    if job.get("mounts"):

        def mount(src, target, fstype, flags, data):
            if libc.mount(src, target, fstype, flags, data) != 0:
                raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")

        mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
        attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        if libc.syscall(SYS_MOUNT_SETATTR, -100, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
            raise OSError(ctypes.get_errno(), "mount_setattr(/, read-only)")
        size = f"size={job['disk_bytes']},mode=1777".encode()
        for d in WRITABLE:
            if os.path.isdir(d):
                mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, size)
        if job.get("pid_namespace"):
            mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV, None)
        os.makedirs(job["workdir"], exist_ok=True)
        done += ["read-only /", "tmpfs"]
    if job.get("uid") is not None:
        os.chown(job["workdir"], job["uid"], job["gid"])
    os.chmod(job["workdir"], 0o700)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS)")
    # orphans of a program come to this process (not to the host's init, which may never reap them)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(CHILD_SUBREAPER)")
    lim = job["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_bytes"], lim["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (lim["processes"], lim["processes"]))
    if job.get("uid") is not None:
        os.setgroups([])
        os.setgid(job["gid"])
        os.setuid(job["uid"])
        done.append("own user")
    os.chdir(job["workdir"])
    os.environ["HOME"] = os.environ["TMPDIR"] = job["workdir"]
    return done


def child(job, test, fds):
    """In the forked child: wire the descriptors, set the per-test limits, run the program."""
    stdin_fd, out_w, err_w, res_w = fds
    try:
        os.setpgid(0, 0)
        for src, dst in ((stdin_fd, 0), (out_w, 1), (err_w, 2), (res_w, 3)):
            os.dup2(src, dst)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        lim = job["limits"]
        cpu = int(job["timeout_s"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (lim["memory_bytes"], lim["memory_bytes"]))
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace")
    except BaseException:
        os._exit(70)
    code = 0
    try:
        style = job["style"]
        scope = {"__name__": "__main__" if style != "functional" else "solution", "__builtins__": __builtins__}
        exec(compile(job["program"], "<program>", "exec"), scope)
        if style == "functional":
            fn = scope.get(job["fn_name"])
            if "Solution" in scope and hasattr(scope["Solution"], job["fn_name"]):
                fn = getattr(scope["Solution"](), job["fn_name"])
            if fn is None:
                raise NameError(f"no function {job['fn_name']!r} in the program")
            args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
            result = fn(*args)
            try:
                text = json.dumps(list(result) if isinstance(result, tuple) else result)
            except (TypeError, ValueError):
                text = json.dumps({"__repr__": repr(result)})
            with io.FileIO(3, "w", closefd=False) as f:
                f.write(text.encode())
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except AssertionError:
        traceback.print_exc(limit=3)
        code = EXIT_ASSERTION
    except BaseException:
        traceback.print_exc(limit=3)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 1
    os._exit(code)


def kill_rest(pgid, everything):
    """Kill every process of the test: with ``everything`` (a PID namespace of its own, or a user of
    its own) all the processes this one may signal but itself, else the test's process group."""
    try:
        os.kill(-1, signal.SIGKILL) if everything else os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def reap_all(block=False):
    """Reap the children that ended (``block``: every child, waiting for each)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def everything(job):
    return bool(job.get("pid_namespace") or job.get("uid") is not None)


def run_test(job, index, test):
    """Run one test; the result dict the host judges (no expected output is known here)."""
    path = os.path.join(job["workdir"], f".stdin-{index}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(test.get("input", ""))
    stdin_fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    (out_r, out_w), (err_r, err_w), (res_r, res_w) = os.pipe(), os.pipe(), os.pipe()
    sys.stdout.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(job, test, (stdin_fd, out_w, err_w, res_w))
    for fd in (stdin_fd, out_w, err_w, res_w):
        os.close(fd)
    cap, deadline = job["max_output_bytes"], start + job["timeout_s"]
    bufs = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
    caps = {out_r: cap, err_r: 4096, res_r: cap}
    open_fds, limit_hit, timed_out = set(bufs), None, False
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
                continue
            room = caps[fd] + 1 - len(bufs[fd])
            bufs[fd] += chunk[: max(room, 0)]
            if len(bufs[fd]) > caps[fd]:
                if fd == err_r:
                    del bufs[fd][: len(bufs[fd]) - caps[fd]]  # keep the tail of stderr, drop the rest
                else:
                    limit_hit = "output" if fd == out_r else "result"
        if limit_hit:
            break
    status = None
    if not timed_out and not limit_hit:  # all pipes closed: wait for the exit, within the deadline
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.002)
        else:
            timed_out = True
    elapsed = time.monotonic() - start
    kill_rest(pid, everything(job))
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    reap_all()
    for fd in bufs:
        os.close(fd)
    out = {"index": index, "wall_s": round(elapsed, 4), "stderr": bufs[err_r].decode("utf-8", "replace")[-2000:]}
    if timed_out:
        out["status"] = "timeout"
    elif limit_hit:
        out["status"] = f"{limit_hit}_limit"
    elif status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        out["status"] = "timeout" if sig == signal.SIGXCPU else "signal"  # SIGXCPU: past its CPU seconds
        out["signal"] = sig
    else:
        code = os.WEXITSTATUS(status) if status is not None else -1
        out["status"] = "ok" if code == 0 else ("assertion" if code == EXIT_ASSERTION else "exit")
        out["exit"] = code
    out["stdout"] = bufs[out_r][:cap].decode("utf-8", "replace")
    out["result"] = bufs[res_r][:cap].decode("utf-8", "replace") if res_r in bufs else ""
    return out


def main():
    job = json.loads(sys.stdin.readline())
    try:
        done = setup(job)
    except BaseException as e:  # set-up failed: no untrusted code has run
        send({"setup_error": f"{type(e).__name__}: {e}"})
        return
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    send({"ready": done, "uid": os.getuid(), "pid": os.getpid()})
    for index, test in enumerate(job["tests"]):
        send(run_test(job, index, test))
        if sys.stdin.readline().strip() != "go":
            break
    if everything(job):
        kill_rest(0, True)  # whatever left its test's process group, then reap it all
    reap_all(block=everything(job))


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
