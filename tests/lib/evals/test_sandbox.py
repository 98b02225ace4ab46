"""The sandbox holds hostile programs: an infinite loop, a fork bomb, a memory hog, a network
attempt, writes outside its folder, reading the platform's home, and escapes (ptrace, mount,
new namespaces) all end contained, and nothing is left running. The same holds when the
caller is not root and holds no capability (a Kubernetes pod): the tests run a driver as
`nobody` with every capability dropped and `no_new_privs`. Where isolation is impossible the
sandbox refuses, unless the caller explicitly allowed unisolated runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from domainllm.evals.sandbox import Limits, run_sandboxed

FAST = Limits(wall_s=5, cpu_s=3, memory_mb=256, processes=16)


def _sandbox_processes(marker: str, wait_s: float = 3.0) -> list[psutil.Process]:
    """Live processes of the sandbox user whose command line holds `marker` (other tests'
    sandboxes may run beside this one; zombies are dead, their reaping may lag)."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for p in psutil.process_iter(["username", "status", "cmdline"]):
            if p.info["username"] == "nobody" and p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(p.info["cmdline"] or []):
                alive.append(p)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_a_program_runs_in_its_own_folder_with_its_files() -> None:
    out = run_sandboxed(["perl", "main.pl"], {"main.pl": 'open my $f, "<", "data.txt" or die; print <$f>;', "data.txt": "42\n"})
    assert out.passed and out.stdout == "42\n"


def test_an_infinite_loop_is_stopped() -> None:
    t0 = time.monotonic()
    out = run_sandboxed(["python3", "-c", "while True: pass"], {}, Limits(wall_s=2, cpu_s=60))
    assert out.timed_out and not out.passed and time.monotonic() - t0 < 6
    cpu = run_sandboxed(["python3", "-c", "while True: pass"], {}, Limits(wall_s=20, cpu_s=1))
    assert not cpu.passed and not cpu.timed_out and cpu.duration_s < 5  # the CPU-time limit ends it first


def test_a_fork_bomb_is_contained() -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    out = run_sandboxed(["python3", "bomb-a91f.py"], {"bomb-a91f.py": bomb}, FAST)
    assert not out.passed
    assert _sandbox_processes("bomb-a91f.py") == []  # every fork died with the run
    assert psutil.cpu_count() and len(psutil.pids()) < 5000


def test_a_memory_hog_is_refused() -> None:
    out = run_sandboxed(["python3", "-c", "x = bytearray(1024 * 1024 * 1024); print('got it')"], {}, FAST)
    assert not out.passed and "got it" not in out.stdout and "MemoryError" in out.stderr


def test_no_network() -> None:
    code = ("import socket\n"
            "try:\n    s = socket.socket(); s.settimeout(3); s.connect(('1.1.1.1', 80)); print('connected')\n"
            "except OSError as e:\n    print('refused', e)\n"
            "try:\n    socket.getaddrinfo('pypi.org', 443); print('resolved')\nexcept OSError as e:\n    print('no dns', e)\n")  # fmt: skip
    out = run_sandboxed(["python3", "net.py"], {"net.py": code}, FAST)
    assert "refused" in out.stdout and "connected" not in out.stdout and "resolved" not in out.stdout
    assert out.isolation["namespaces"] and out.isolation["seccomp"]


def test_writes_outside_the_folder_fail_and_leave_nothing(tmp_path: Path) -> None:
    denied = [str(tmp_path / "escape.txt"), os.path.expanduser("~/domainllm-escape.txt"), "/etc/domainllm-escape",
              str(Path(__file__).resolve().parent / "escape.txt")]  # fmt: skip
    scratch = ["/tmp/domainllm-escape.txt", "../domainllm-escape.txt", "/dev/shm/domainllm-escape.txt"]
    code = "import sys\nfor t in sys.argv[1:]:\n    try:\n        open(t, 'w').write('x'); print('wrote', t)\n    except OSError as e:\n        print('denied', t, e.errno)\n"
    out = run_sandboxed(["python3", "w.py", *denied, *scratch], {"w.py": code}, FAST)
    assert all(f"denied {t}" in out.stdout for t in denied), out.stdout
    # private scratch folders may be written (programs need temporary files) but vanish with the run
    for t in [*denied, "/tmp/domainllm-escape.txt", "/dev/shm/domainllm-escape.txt"]:
        assert not os.path.exists(t), t
    inside = run_sandboxed(["python3", "-c", "open('ok.txt', 'w').write('x'); print(open('ok.txt').read())"], {}, FAST)
    assert inside.passed and inside.stdout == "x\n"  # its own folder stays writable


def test_background_processes_die_with_the_run() -> None:
    code = "import subprocess, sys\nsubprocess.Popen(['sleep', '60.917'], start_new_session=True)\nprint('left it running')\n"
    out = run_sandboxed(["python3", "bg.py"], {"bg.py": code}, FAST)
    assert out.passed and "left it running" in out.stdout
    assert _sandbox_processes("60.917") == []


ESCAPES = r"""
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def tried(name, ok):
    print(name, "ALLOWED" if ok else "refused")
tried("ptrace", libc.ptrace(0, 0, 0, 0) == 0)
tried("unshare-user", libc.unshare(0x10000000) == 0)
tried("mount-tmpfs", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0)
tried("umount-work", libc.umount2(b"/tmp/work", 2) == 0)
tried("remount-root-rw", libc.mount(None, b"/", None, 0x20 | 0x1000, None) == 0)
try:
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); tried("inet6-socket", True)
except OSError:
    tried("inet6-socket", False)
tried("uid-0", os.getuid() == 0)
tried("other-processes", len([p for p in os.listdir("/proc") if p.isdigit()]) > 1 if os.path.isdir("/proc/1") else False)
"""


def test_escapes_are_refused_and_the_home_is_hidden(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "keys.json").write_text("secret-token")
    monkeypatch.setenv("DOMAINLLM_HOME", str(home))
    out = run_sandboxed(["python3", "e.py"], {"e.py": ESCAPES}, FAST)
    assert out.passed and "ALLOWED" not in out.stdout and out.stdout.count("refused") == 8, out.stdout + out.stderr
    peek = run_sandboxed(["sh", "-c", f"cat {home}/keys/keys.json; ls {home}"], {}, FAST)
    assert "secret-token" not in peek.stdout and "keys" not in peek.stdout
    env = run_sandboxed(["sh", "-c", "env"], {}, FAST)
    assert "DOMAINLLM_HOME" not in env.stdout and "PYTHONPATH" not in env.stdout and "PATH=/usr/local/bin:/usr/bin:/bin" in env.stdout


DRIVER = r"""
import json, os, sys
from domainllm.evals.sandbox import Limits, SandboxUnavailable, isolation_problem, run_sandboxed
mode = sys.argv[1]
if mode == "blocked":  # this process (and so its children) may not make namespaces: what a strict container profile does
    from domainllm.evals import seccomp
    seccomp.install()
out = {"uid": os.getuid(), "problem": isolation_problem()}
fast = Limits(wall_s=5, cpu_s=3, memory_mb=256, processes=16)
try:
    r = run_sandboxed(["python3", "e.py"], {"e.py": sys.stdin.read()}, fast)
    out.update(passed=r.passed, stdout=r.stdout, isolation=r.isolation)
except SandboxUnavailable as exc:
    out["refused"] = str(exc)
    r = run_sandboxed(["python3", "-c", "print('ran')"], {}, Limits(wall_s=5, cpu_s=3, allow_unisolated=True))
    out.update(opted_out=r.stdout, isolation=r.isolation)
print(json.dumps(out))
"""


def _driver(mode: str, *, as_nobody: bool) -> dict:
    """Runs DRIVER with a copy of the library anyone can read (the checkout may be under a
    folder closed to `nobody`), as `nobody` without any capability when asked."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    import domainllm
    from domainllm.evals.sandbox import _jail

    lib = tempfile.mkdtemp(prefix="domainllm-lib-")
    try:
        shutil.copytree(Path(domainllm.__file__).parent, Path(lib) / "domainllm", ignore=shutil.ignore_patterns("__pycache__"))
        for root, dirs, files in os.walk(lib):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
        os.chmod(lib, 0o755)
        python = _jail()[0] if as_nobody else sys.executable  # an interpreter `nobody` can run
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--bounding-set=-all", "--inh-caps=-all",
                  "--no-new-privs"] if as_nobody and os.geteuid() == 0 else []  # fmt: skip
        done = subprocess.run([*prefix, python, "-c", DRIVER, mode], input=ESCAPES, capture_output=True, text=True, timeout=120,
                              cwd="/", env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": lib, "DOMAINLLM_HOME": lib + "/home"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(lib, ignore_errors=True)


def test_a_caller_without_root_or_capabilities_is_isolated_too() -> None:
    out = _driver("normal", as_nobody=True)
    assert out["uid"] != 0 and out["problem"] is None, out
    assert out["passed"] and "ALLOWED" not in out["stdout"] and out["stdout"].count("refused") == 8, out
    assert out["isolation"] == {"namespaces": True, "seccomp": True, "unprivileged": True}


def test_without_isolation_it_refuses_unless_the_caller_opted_out() -> None:
    out = _driver("blocked", as_nobody=False)
    assert out["problem"], out
    assert "generated code runs only isolated" in out["refused"] and "allow_unisolated" in out["refused"], out
    assert out["opted_out"] == "ran\n" and out["isolation"]["namespaces"] is False  # recorded as unisolated
