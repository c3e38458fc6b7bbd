"""The code sandbox: each limit probed with a harmless program, then hostile programs, host checked after.

Order matters for safety, not for correctness: a hostile program runs only after the probe of the
limit it attacks has passed in this session (the ``*_holds`` fixtures; a failed probe errors the
hostile test without running it). Every hostile run has an outer timeout, and afterwards the host is
checked and cleaned: no process of a sandbox user left (killed if there is, and the test fails), no
cgroup or temporary folder left, the repository unchanged, the test's listener never connected to.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest

from varreason import sandbox, sandbox_cgroups
from varreason.sandbox import Limits, run_program

REPO = Path(__file__).resolve().parents[1]
LIMITS = Limits(timeout_s=2.0, memory_mb=512, processes=16, file_mb=16, disk_mb=64, output_mb=4)
OUTER_S = 180  # the whole run_program call, however the sandbox breaks
SECRET = "varreason-test-secret-7f3a"
ESCAPED = "escaped"  # a hostile program prints it only when its attack worked: "pass" is a breach
# harmless: 40 children that each exit after 1.5 s; prints how many forks succeeded
FORK_40 = """
        import os, time
        n = 0
        for _ in range(40):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(1.5)
                os._exit(0)
            n += 1
        print(n)
"""  # a hostile program prints it only when its attack worked: "pass" is a breach


@pytest.fixture(scope="module")
def iso() -> sandbox.Isolation:
    found = sandbox.isolation()
    print("sandbox:", "; ".join(found.describe()))
    return found


def _sandbox_pids() -> list[int]:
    """Processes whose real uid is one of the sandbox users'."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            uid_line = next(ln for ln in (d / "status").read_text().splitlines() if ln.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if sandbox.UID_BASE <= int(uid_line.split()[1]) < sandbox.UID_BASE + 100_000 * 64:
            found.append(int(d.name))
    return found


def _leftover_cgroups(iso: sandbox.Isolation) -> list[Path]:
    return [d for _, parent in iso.cgroups for d in Path(parent).glob(f"varreason-sandbox-{os.getpid()}-*")]


def _leftover_tmp() -> list[Path]:
    return list(Path("/tmp").glob("varreason-sandbox-*"))


def _repo_state() -> str:
    out = subprocess.run(
        ["git", "status", "--porcelain=v1", "--untracked-files=all"], cwd=REPO, capture_output=True, text=True
    )
    diff = subprocess.run(["git", "diff", "--stat"], cwd=REPO, capture_output=True, text=True)
    return out.stdout + diff.stdout


def _clean_host(iso: sandbox.Isolation) -> list[str]:
    """Kill and remove whatever a sandbox left; say what there was."""
    left = []
    pids = _sandbox_pids()
    if pids:
        left.append(f"processes of sandbox users: {pids}")
        for p in pids:
            try:
                os.kill(p, 9)
            except OSError:
                pass
    groups = _leftover_cgroups(iso)
    if groups:
        left.append(f"cgroups: {groups}")
        sandbox_cgroups.remove(groups)
    tmp = _leftover_tmp()
    if tmp:
        left.append(f"temporary folders: {tmp}")
    return left


def _run(program: str, *, style: str = "stdin", tests=None, limits: Limits = LIMITS, iso=None, fn_name=None):
    """run_program within an outer timeout (a hung sandbox fails the test instead of hanging it)."""
    tests = tests or [{"input": ""}]
    ex = ThreadPoolExecutor(max_workers=1)
    future = ex.submit(run_program, textwrap.dedent(program), tests, style, fn_name, limits, iso=iso)
    try:
        return future.result(timeout=OUTER_S)
    except FutureTimeout:
        pytest.fail(f"the sandbox did not return within {OUTER_S} s")
    finally:
        ex.shutdown(wait=False)


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that must never see a connection."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


def _accepted(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def host(iso, listener):
    """The host's state before; after the test: clean up, then fail on anything left or changed."""
    os.environ["VARREASON_SANDBOX_SECRET"] = SECRET
    before = _repo_state()
    yield {"port": listener.getsockname()[1]}
    os.environ.pop("VARREASON_SANDBOX_SECRET", None)
    time.sleep(0.2)  # a process mid-exit is still listed for a moment; cleanup kills it either way
    left = _clean_host(iso)
    assert not left, f"the sandbox left: {left}"
    assert not _accepted(listener), "the listener on 127.0.0.1 got a connection from the sandbox"
    assert _repo_state() == before, "the repository changed"


# ------------------------------------------------------------------------------- harmless probes


@pytest.fixture(scope="module")
def process_limit_holds(iso):
    """At most LIMITS.processes processes: fork 40 short-lived children (harmless if the limit fails)."""
    res = _run(FORK_40)
    assert res[0]["status"] == "ok", res
    n = int(res[0]["stdout"])
    print(f"forked {n} children under a limit of {LIMITS.processes}")
    assert 0 < n < LIMITS.processes
    assert not _clean_host(iso)


@pytest.fixture(scope="module")
def memory_limit_holds(iso):
    res = _run(f"""
        try:
            b = bytearray({2 * LIMITS.memory_mb} << 20)
            print("allocated")
        except MemoryError:
            print("refused")
    """)
    assert res[0]["stdout"].strip() == "refused", res


@pytest.fixture(scope="module")
def file_limit_holds(iso):
    res = _run(f"""
        with open("f", "wb") as f:
            f.write(b"x" * ({2 * LIMITS.file_mb} << 20))
        print("written")
    """)
    # Python ignores SIGXFSZ, so the write fails with EFBIG ("File too large") instead of a signal
    assert res[0]["status"] == "exit" and "File too large" in res[0]["stderr"], res


@pytest.fixture(scope="module")
def network_isolated(iso):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.setblocking(False)
    try:
        res = _run(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {s.getsockname()[1]}), timeout=1).close()
                print("connected")
            except OSError as e:
                print("refused", e.errno)
        """)
        assert res[0]["stdout"].startswith("refused"), res
        assert not _accepted(s)
    finally:
        s.close()


@pytest.fixture(scope="module")
def environment_clean(iso):
    os.environ["VARREASON_PROBE_VAR"] = "probe"
    try:
        res = _run("import os; print(sorted(os.environ))")
    finally:
        os.environ.pop("VARREASON_PROBE_VAR")
    assert res[0]["status"] == "ok" and "VARREASON_PROBE_VAR" not in res[0]["stdout"], res


@pytest.fixture(scope="module")
def repo_read_only(iso):
    target = REPO / ".sandbox-probe"
    res = _run(f"""
        try:
            open({str(target)!r}, "w").write("x")
            print("written")
        except OSError as e:
            print("refused", e.errno)
    """)
    assert res[0]["stdout"].startswith("refused"), res
    assert not target.exists()


@pytest.fixture(scope="module")
def open_files_limited(iso):
    res = _run(f"""
        kept = []
        try:
            for _ in range({4 * LIMITS.open_files}):
                kept.append(open("/dev/null"))
        except OSError as e:
            print(len(kept), e.errno)
    """)
    n, errno_ = res[0]["stdout"].split()
    assert int(n) < LIMITS.open_files and int(errno_) == 24, res  # EMFILE


@pytest.fixture(scope="module")
def host_unsignalable(iso):
    """Signal 0 (a permission check that delivers nothing) to this test process must fail."""
    res = _run(f"""
        import os
        try:
            os.kill({os.getpid()}, 0)
            print("reachable")
        except OSError as e:
            print("unreachable", e.errno)
    """)
    assert res[0]["stdout"].startswith("unreachable"), res


@pytest.fixture(scope="module")
def timeout_holds(iso):
    res = _run("import time; time.sleep(60)")
    assert res[0]["status"] == "timeout", res
    assert not _clean_host(iso)


def test_probes_pass(
    process_limit_holds,
    memory_limit_holds,
    file_limit_holds,
    network_isolated,
    environment_clean,
    repo_read_only,
    open_files_limited,
    host_unsignalable,
    timeout_holds,
):
    """Each limit holds for a harmless program (the hostile tests below need these)."""


def test_a_program_runs_and_is_cleaned_up(iso, host):
    res = _run("import sys; print(sum(map(int, sys.stdin.read().split())))", tests=[{"input": "1 2 3"}, {"input": "4"}])
    assert [r["status"] for r in res] == ["ok", "ok"]
    assert [r["stdout"] for r in res] == ["6\n", "4\n"]


def test_functional_style_returns_json(iso):
    program = "class Solution:\n    def twoSum(self, nums, target):\n        return (0, len(nums) - 1)\n"
    res = _run(program, style="functional", fn_name="twoSum", tests=[{"input": "[1, 2, 3]\n4"}])
    assert res[0]["status"] == "ok" and res[0]["result"] == "[0, 2]", res


# ------------------------------------------------------------------------------ hostile programs


def _contained(res: list[dict]) -> str:
    """The run's status; a hostile program that printed ESCAPED broke out."""
    assert res, "no result"
    assert ESCAPED not in res[0]["stdout"], f"the attack worked: {res[0]}"
    return res[0]["status"]


def test_infinite_loop(timeout_holds, host):
    assert _contained(_run("while True:\n    pass\n")) == "timeout"


def test_fork_bomb(process_limit_holds, timeout_holds, host):
    res = _run("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    assert _contained(res) == "timeout"


def test_allocating_50_gb(memory_limit_holds, host):
    res = _run(f"b = bytearray(50 << 30)\nb[::4096] = b'x' * len(b[::4096])\nprint({ESCAPED!r})\n")
    assert _contained(res) == "exit" and "MemoryError" in res[0]["stderr"]


def test_writing_a_10_gb_file(file_limit_holds, host):
    res = _run(f"""
        chunk = b"x" * (16 << 20)
        with open("big", "wb") as f:
            for _ in range(640):
                f.write(chunk)
        print({ESCAPED!r})
    """)
    assert _contained(res) == "exit" and "File too large" in res[0]["stderr"]


def test_writing_outside_its_folder(repo_read_only, host):
    targets = [REPO / "pwned.txt", REPO / "README.md", Path("/etc/pwned"), Path("/root/pwned"), Path("/usr/pwned")]
    res = _run(f"""
        for t in {[str(t) for t in targets]!r}:
            try:
                with open(t, "a") as f:
                    f.write("pwned")
                print({ESCAPED!r}, t)
            except OSError:
                pass
    """)
    assert _contained(res) == "ok"
    assert not any(t.exists() for t in targets if t.name == "pwned.txt" or t.name == "pwned")


def test_deleting_files_it_can_reach(repo_read_only, host, tmp_path):
    # a folder anyone may write, in the repository (outside the sandbox's /tmp): the worst case
    canary = REPO / f".sandbox-canary-{os.getpid()}"
    canary.mkdir(mode=0o777)
    try:
        os.chmod(canary, 0o777)
        (canary / "keep.txt").write_text("keep")
        os.chmod(canary / "keep.txt", 0o666)
        res = _run(f"""
            import os, shutil
            for p in [{str(canary / "keep.txt")!r}, {str(REPO / "pyproject.toml")!r}]:
                try:
                    os.remove(p)
                    print({ESCAPED!r}, p)
                except OSError:
                    pass
            shutil.rmtree({str(canary)!r}, ignore_errors=True)
            shutil.rmtree(os.path.expanduser("~"), ignore_errors=True)  # its own folder: allowed
        """)
        assert _contained(res) == "ok"
        assert (canary / "keep.txt").read_text() == "keep"
        assert (REPO / "pyproject.toml").exists()
    finally:
        for p in sorted(canary.rglob("*"), reverse=True):
            p.unlink()
        canary.rmdir()


def test_network_connection_to_a_local_listener(network_isolated, host):
    res = _run(f"""
        import socket
        for addr in [("127.0.0.1", {host["port"]}), ("1.1.1.1", 53)]:
            try:
                socket.create_connection(addr, timeout=1).close()
                print({ESCAPED!r}, addr)
            except OSError:
                pass
    """)
    assert _contained(res) == "ok"


def test_reading_a_secret_from_the_environment(environment_clean, host):
    res = _run(f"""
        import glob, os
        if {SECRET!r} in repr(dict(os.environ)):
            print({ESCAPED!r}, "environ")
        for p in glob.glob("/proc/*/environ"):
            try:
                if {SECRET!r}.encode() in open(p, "rb").read():
                    print({ESCAPED!r}, p)
            except OSError:
                pass
    """)
    assert _contained(res) == "ok"


def test_killing_its_parent(host_unsignalable, host):
    """It signals its parent, pid 1, this test process and every process it may: the harness runs on."""
    res = _run(
        f"""
        import os, signal, time
        for pid in (os.getppid(), 1, {os.getpid()}, -1):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.5)
        print("done")
        """,
        tests=[{"input": ""}, {"input": ""}],
    )
    assert [r["status"] for r in res] == ["ok", "ok"], f"the harness did not survive to run the second test: {res}"
    assert [r["stdout"] for r in res] == ["done\n", "done\n"]


def test_printing_1_gb(host):
    res = _run(f"""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
        print({ESCAPED!r})
    """)
    assert _contained(res) == "output_limit"
    assert len(res[0]["stdout"]) <= LIMITS.output_mb * (1 << 20)


def test_many_programs_one_hangs(timeout_holds, host):
    """A bounded pool: a hanging program holds one worker for its time limit, the others go on."""
    jobs = [{"program": "while True: pass", "tests": [{"input": ""}], "style": "stdin"}] + [
        {"program": f"print({i})", "tests": [{"input": ""}], "style": "stdin"} for i in range(12)
    ]
    results = sandbox.run_programs(jobs, LIMITS, workers=2)
    assert results[0][0]["status"] == "timeout"
    assert [r[0]["stdout"] for r in results[1:]] == [f"{i}\n" for i in range(12)]


# ---------------------------------------------------------------------- the fallback: no namespaces


@pytest.fixture(scope="module")
def fallback(iso):
    """The sandbox as on a machine where ``unshare`` fails: own user, rlimits and cgroups only."""
    if not iso.root:
        pytest.skip("the fallback's own user needs root (as on CI and the developer machines)")
    return dataclasses.replace(iso, unshare=())


def test_fallback_probes_then_a_fork_bomb(fallback, host):
    """Without namespaces: the process limit, the timeout, a clean environment and the repository's
    permissions still hold (probed harmlessly first); then a fork bomb is contained and reaped."""
    assert "NOT isolated" in "; ".join(fallback.describe())
    res = _run(f"import os\nprint(os.getuid() >= {sandbox.UID_BASE}, os.environ.get('HOME', ''))", iso=fallback)
    own_user, home = res[0]["stdout"].split()
    assert own_user == "True" and home.startswith("/tmp/varreason-sandbox-")
    res = _run(FORK_40, iso=fallback)
    assert 0 < int(res[0]["stdout"]) < LIMITS.processes, res
    assert _run("import time; time.sleep(60)", iso=fallback)[0]["status"] == "timeout"
    res = _run(f"open({str(REPO / 'pwned.txt')!r}, 'w')", iso=fallback)
    assert res[0]["status"] == "exit" and "PermissionError" in res[0]["stderr"], res
    res = _run("import os; print(os.environ.get('VARREASON_SANDBOX_SECRET'))", iso=fallback)
    assert res[0]["stdout"] == "None\n"
    assert not _clean_host(fallback)
    res = _run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", iso=fallback)
    assert res[0]["status"] == "timeout"
