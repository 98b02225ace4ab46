"""The sandbox holds hostile programs: an infinite loop, a fork bomb, a memory hog, a network
attempt and writes outside its folder all end contained, and nothing is left running."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from domainllm.evals.sandbox import Limits, namespaces_available, run_sandboxed

FAST = Limits(wall_s=5, cpu_s=3, memory_mb=256, processes=16)


def _sandbox_processes(wait_s: float = 3.0) -> list[psutil.Process]:
    """Live processes of the sandbox user (zombies are dead; their reaping may lag)."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in psutil.process_iter(["username", "status"])
                 if p.info["username"] == "nobody" and p.info["status"] != psutil.STATUS_ZOMBIE]  # fmt: skip
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
    out = run_sandboxed(["python3", "bomb.py"], {"bomb.py": bomb}, FAST)
    assert not out.passed
    assert _sandbox_processes() == []  # every fork died with the run
    assert psutil.cpu_count() and len(psutil.pids()) < 5000


def test_a_memory_hog_is_refused() -> None:
    out = run_sandboxed(["python3", "-c", "x = bytearray(1024 * 1024 * 1024); print('got it')"], {}, FAST)
    assert not out.passed and "got it" not in out.stdout and "MemoryError" in out.stderr


@pytest.mark.skipif(not namespaces_available(), reason="no network namespace on this machine")
def test_no_network() -> None:
    code = ("import socket\ns = socket.socket(); s.settimeout(3)\n"
            "try:\n    s.connect(('1.1.1.1', 80)); print('connected')\nexcept OSError as e:\n    print('refused', e)\n"
            "try:\n    socket.getaddrinfo('pypi.org', 443); print('resolved')\nexcept OSError as e:\n    print('no dns', e)\n")  # fmt: skip
    out = run_sandboxed(["python3", "net.py"], {"net.py": code}, FAST)
    assert "refused" in out.stdout and "connected" not in out.stdout and "resolved" not in out.stdout
    assert out.isolation["network"]


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
    code = "import subprocess, sys\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\nprint('left it running')\n"
    out = run_sandboxed(["python3", "bg.py"], {"bg.py": code}, FAST)
    assert out.passed and "left it running" in out.stdout
    assert _sandbox_processes() == []
