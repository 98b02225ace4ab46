"""What this machine can run, found out by trying it in a child process, never assumed:
the machine's fingerprint (CPU model and flags, GPU), what a dead child's exit and log say
(signal, the native crash and the Python frame it happened in), and a per-machine cache of
probe outcomes with that evidence."""

from domainllm.capabilities.crash import Crash, crash_in_log, describe_exit, exit_signal
from domainllm.capabilities.machine import machine, machine_key
from domainllm.capabilities.probe import Outcome, Probes

__all__ = ["Crash", "Outcome", "Probes", "crash_in_log", "describe_exit", "exit_signal", "machine", "machine_key"]
