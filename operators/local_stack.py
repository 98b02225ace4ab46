"""The embedded Airflow stack on one machine: SQLite, LocalExecutor, SimpleAuthManager.

`python -m domainllm_operators.local_stack up`    start api-server + scheduler + dag-processor + triggerer
`python -m domainllm_operators.local_stack demo`  start, trigger domain_llm, follow it (then, with
    --synopses, one flywheel cycle: demo traffic -> data_flywheel -> the training round it triggers), stop
`python -m domainllm_operators.local_stack dags-test --spec S`  `airflow dags test` in-process, same settings

Everything lives under $DOMAINLLM_HOME/airflow (database, logs, generated secrets).
SIGTERM, SIGHUP and SIGINT stop `up` and `demo` alike: Airflow and everything still running under
it (workers, task and stage processes) is stopped, then the command exits with 128 + the signal's
number (`up` with 0 on Ctrl-C, its normal end). A `demo` stopped so did not finish: its DAG runs
are marked failed (not resumed by the next start), and what it serves stops too (as
`domainllm serve stop --spec`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from domainllm.env import OFFLINE_DEFAULTS, home
from domainllm.serve.supervisor import group_alive

REPO = Path(__file__).resolve().parent.parent
USER = "admin"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Stopped(Exception):
    """A stop signal arrived; raised where the main thread is, so every `finally` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    ignore_stop_signals()
    raise Stopped(signum)


def stop_on_signals() -> None:
    """From now on SIGTERM, SIGHUP and SIGINT raise `Stopped` (once: then they are ignored)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stopped)


def ignore_stop_signals() -> None:
    """While stopping: a second signal must not leave things half-stopped."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, session) of every running process (empty without /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _tree_groups(roots: set[int]) -> dict[int, int]:
    """Process group -> session of `roots` and of all their descendants."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups, todo = {}, [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        groups[table[pid][1]] = table[pid][2]
        todo.extend(children.get(pid, []))
    groups.pop(os.getpgrp(), None)
    return groups


def _signal_groups(groups: set[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secret(path: Path, factory) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_env(airflow_home: Path, api_port: int) -> dict[str, str]:
    """Airflow settings for the embedded default (all through environment variables)."""
    passwords = airflow_home / "passwords.json"
    _secret(passwords, lambda: json.dumps({USER: secrets.token_urlsafe(12)}))
    env = {
        **os.environ,
        **{k: os.environ.get(k, v) for k, v in OFFLINE_DEFAULTS.items()},
        "DOMAINLLM_HOME": str(home()),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(airflow_home / ".jwt_secret", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # one machine, one person: a flywheel round rolls out without asking (the Helm chart asks)
        "DOMAINLLM_ROLLOUT_APPROVAL": os.environ.get("DOMAINLLM_ROLLOUT_APPROVAL", "0"),
    }
    return env


def _beat_after(status: dict[str, Any], key: str, since: float) -> bool:
    """Healthy, with a heartbeat after `since` (epoch seconds)."""
    beat = status.get(f"latest_{key}_heartbeat")
    if status.get("status") != "healthy" or not beat:
        return False
    stamp = datetime.datetime.fromisoformat(beat)
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)).timestamp() >= since


class LocalStack:
    def __init__(self, api_port: int | None = None) -> None:
        self.airflow_home = home() / "airflow"
        self.port = api_port or free_port()
        self.env = airflow_env(self.airflow_home, self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None

    @property
    def password(self) -> str:
        return json.loads((self.airflow_home / "passwords.json").read_text())[USER]

    def _airflow(self) -> list[str]:
        return [sys.executable, "-m", "airflow"]

    def components(self) -> dict[str, list[str]]:
        """Airflow's processes by name, each with its command line. The triggerer runs what
        deferred tasks wait on (a stage's pod or job on the Kubernetes launcher)."""
        return {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)], "scheduler": ["scheduler"],
                "dag-processor": ["dag-processor"], "triggerer": ["triggerer"]}  # fmt: skip

    def start(self, timeout: float = 120, only: tuple[str, ...] | None = None) -> None:
        """Starts Airflow and waits for the scheduler's heartbeat (the triggerer's is not waited
        for: a deferred task waits in the database until it runs), or `only` the named components
        (after `stop(only=...)`) and waits until the scheduler or triggerer among them beats."""
        names = tuple(self.components()) if only is None else only
        unknown = sorted(set(names) - set(self.components()))
        if unknown:
            raise ValueError(f"unknown Airflow components {unknown}; known: {sorted(self.components())}")
        if only is None:
            subprocess.run([*self._airflow(), "db", "migrate"], env=self.env, check=True, capture_output=True)
        logs = self.airflow_home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        since = time.time()
        for name in names:
            if name in self.procs:
                raise RuntimeError(f"airflow {name} is running already; stop it first")
            out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            self.procs[name] = subprocess.Popen(
                [*self._airflow(), *self.components()[name]], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        # A restarted component is up once it beats (the health check alone still shows the old one's beat)
        waits = ["scheduler"] if only is None else [name for name in ("scheduler", "triggerer") if name in names]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.get("/api/v2/monitor/health", auth=False)
                if all(_beat_after(health.get(key) or {}, key, since) for key in waits):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Airflow ({', '.join(names)}) did not become healthy within {timeout:.0f}s; logs in {logs}")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}; see {self.airflow_home / 'logs' / (name + '.log')}"
                )

    def stop(self, grace: float = 15, only: tuple[str, ...] | None = None) -> None:
        """Stops Airflow (or `only` the named components) and everything still running under
        it, each in a group of its own: LocalExecutor workers, task processes and the stage
        processes they launched (in sessions of their own). SIGTERM goes to the groups in
        Airflow's sessions (a task process passes it on to its stage through `on_kill`, as
        when a task is killed); SIGKILL to every group left after `grace` (the scheduler can
        hang waiting for workers). `start(only=...)` starts stopped components again: a
        restart, e.g. of the scheduler and the triggerer while tasks are deferred."""
        procs = {name: proc for name, proc in self.procs.items() if only is None or name in only}
        leaders = {proc.pid for proc in procs.values()}
        tree = _tree_groups(leaders)
        groups = leaders | set(tree)
        _signal_groups(leaders | {pgid for pgid, sid in tree.items() if sid in leaders}, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            time.sleep(0.2)
            for proc in procs.values():
                proc.poll()
            groups = {pgid for pgid in groups if group_alive(pgid)}
        _signal_groups(groups | set(_tree_groups(leaders)), signal.SIGKILL)
        for name, proc in procs.items():
            proc.wait()
            del self.procs[name]

    # REST API -------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            body = self._request("POST", "/auth/token", {"username": USER, "password": self.password}, auth=False)
            self._token = body["access_token"]
        return self._token

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True, timeout: float = 30) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def get(self, path: str, auth: bool = True) -> Any:
        return self._request("GET", path, auth=auth)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout:.0f}s (dag-processor log)")

    def unpause(self, dag_id: str) -> None:
        """A paused DAG runs nothing, and takes no Asset events."""
        self.wait_for_dag(dag_id)
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        self.unpause(dag_id)
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def triggered_run(self, dag_id: str, after: str, timeout: float = 300) -> str:
        """The first run of `dag_id` an asset event started after the ISO time `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?run_type=asset_triggered")["dag_runs"]
            for run in runs:
                if run["run_after"] >= after:
                    return run["dag_run_id"]
            time.sleep(2)
        raise TimeoutError(f"no asset-triggered run of {dag_id} started within {timeout:.0f}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task id -> state; mapped tasks (one per shard) as `task_id[map_index]`."""
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {
            ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]": ti["state"]
            for ti in tis
        }

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str, map_index: int = -1) -> Any:
        """Answers a task's human-in-the-loop request (e.g. "Approve") as the UI's admin does."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return self._request("PATCH", path, {"chosen_options": [option], "params_input": {}})

    def follow(self, dag_id: str, run_id: str, timeout: float = 3600, echo=print, on_awaiting=None) -> str:
        """Wait for the DAG run to end, printing task state changes; returns its state.
        `on_awaiting(task_id)` is called once for each task that waits for a person."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for task, state in self.task_states(dag_id, run_id).items():
                if seen.get(task, "?") != state:
                    echo(f"  {task:<24} {state}")
                    seen[task] = state
                    if state == "awaiting_input" and on_awaiting is not None:
                        on_awaiting(task)
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        raise TimeoutError(f"DAG run {run_id} did not finish within {timeout:.0f}s")


def _demo(args: argparse.Namespace) -> int:
    from domainllm_operators.demo_cycle import flywheel_cycle, quantized_summary

    stop_on_signals()
    stack = LocalStack(args.port)
    print(f"starting Airflow (SQLite, LocalExecutor) in {stack.airflow_home} ...", flush=True)
    spec_path = str(Path(args.spec).resolve())
    cycle, stopped, failed_runs = None, None, []
    try:
        stack.start()
        conf = {"spec": spec_path, "run_id": args.run_id, "force": args.force}
        dag_run = stack.trigger("domain_llm", conf)
        print(f"triggered domain_llm, Airflow run {dag_run}; following it:", flush=True)
        state = stack.follow("domain_llm", dag_run)
        if state == "success" and args.synopses:
            cycle = flywheel_cycle(stack, spec_path, Path(args.synopses))
    except Stopped as exc:
        stopped = exc
        ignore_stop_signals()
        # the scheduler first (and the tasks under it): else it can write a run it holds back
        # as running after the API marked it failed; the API server stays up to mark them
        stack.stop(only=("scheduler", "dag-processor", "triggerer"))
        failed_runs = fail_unfinished_runs(stack)
    finally:
        ignore_stop_signals()
        stack.stop()
    if stopped is not None:
        served = stop_serving(spec_path)
        with contextlib.suppress(OSError):  # a hung-up terminal
            print(f"\ndemo stopped by {stopped} before it finished: Airflow is stopped, and so is what the run "
                  f"served ({', '.join(served) or 'nothing was serving'}); marked failed: "
                  f"{', '.join(failed_runs) or 'no DAG run'}", flush=True)  # fmt: skip
        return 128 + stopped.signum
    h = home()
    if cycle is not None:
        print(cycle.summary())
    if state == "success":
        print("\n" + quantized_summary(spec_path, args.run_id))
    print(
        f"\ndomain_llm finished: {state}\n"
        f"  artifacts:   {h / 'artifacts' / args.run_id}\n"
        f"  MLflow:      sqlite:///{h / 'mlflow' / 'mlflow.db'}  (browse: make mlflow-ui -> http://127.0.0.1:5000)\n"
        f"  Airflow:     make airflow-ui -> http://127.0.0.1:8080 (user {USER}, password in "
        f"{stack.airflow_home / 'passwords.json'})\n"
        f"  task logs:   {stack.airflow_home / 'logs'}"
    )
    return 0 if state == "success" and (cycle is None or cycle.ok) else 1


UNFINISHED_TASKS = ("none", "scheduled", "queued", "running", "up_for_retry", "up_for_reschedule", "deferred",
                    "restarting", "awaiting_input")  # fmt: skip


def fail_unfinished_runs(stack: LocalStack, timeout: float = 3) -> list[str]:
    """Marks the DAG runs still queued or running in the stack's Airflow failed (`dag_id/run_id`
    of each), with their unfinished tasks. For a demo stopped midway, before Airflow stops under
    them: a run left "running" in the database is resumed by the next start, beside the new one.
    Best-effort and quick: a dead or hung API server must not delay the stop."""
    if stack._token is None:
        return []  # nothing triggered yet; and no 30 s token request to a hung server
    failed = []
    try:
        runs = stack._request("GET", "/api/v2/dags/~/dagRuns?state=queued&state=running", timeout=timeout)
        for run in runs["dag_runs"]:
            path = f"/api/v2/dags/{run['dag_id']}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
            try:
                if stack._request("PATCH", path, {"state": "failed"}, timeout=timeout)["state"] != "failed":
                    # Airflow keeps the run going for its teardowns (domain_llm's run_finish), which
                    # the stop would kill anyway: fail them, then the run.
                    query = "&".join(f"state={state}" for state in UNFINISHED_TASKS)
                    tis = stack._request("GET", f"{path}/taskInstances?{query}", timeout=timeout)
                    for ti in tis["task_instances"]:
                        index = f"/{ti['map_index']}" if ti["map_index"] >= 0 else ""
                        stack._request("PATCH", f"{path}/taskInstances/{ti['task_id']}{index}", {"new_state": "failed"},
                                       timeout=timeout)  # fmt: skip
                    stack._request("PATCH", path, {"state": "failed"}, timeout=timeout)
            except urllib.error.HTTPError as exc:  # it answered: this run only (e.g. its DAG is gone)
                print(f"could not mark {run['dag_id']}/{run['dag_run_id']} failed: {exc}", flush=True)
                continue
            failed.append(f"{run['dag_id']}/{run['dag_run_id']}")
    except (OSError, ValueError, KeyError) as exc:  # no answer (URLError, timeouts are OSErrors), or no JSON
        with contextlib.suppress(OSError):
            print(f"could not mark the unfinished DAG runs failed: {exc}", flush=True)
    return failed


def stop_serving(spec_path: str) -> list[str]:
    """Stops the local gateway and every deployment of the spec's pipeline; returns what ran."""
    from domainllm.serve.local import LocalDeployments
    from domainllm.serve.local_gateway import LocalGateway
    from domainllm.spec import SpecError, load_spec

    try:
        spec = load_spec(spec_path)
    except SpecError:
        return []  # the run could not have served it
    if not (home() / "serve" / spec.name).is_dir():
        return []
    deployments = LocalDeployments(spec.name, spec.serving)
    gateway = LocalGateway(spec.name)
    served = [f"deployment {name}" for name in deployments.all()] + (["gateway"] if gateway.get() else [])
    for name in deployments.all():
        deployments.stop(name)
    gateway.stop()
    return served


def _dags_test(args: argparse.Namespace) -> int:
    stack = LocalStack()
    subprocess.run([*stack._airflow(), "db", "migrate"], env=stack.env, check=True, capture_output=True)
    conf = {"spec": str(Path(args.spec).resolve()), "run_id": args.run_id, "force": args.force}
    return subprocess.run([*stack._airflow(), "dags", "test", "domain_llm", "-c", json.dumps(conf)], env=stack.env).returncode


def _up(args: argparse.Namespace) -> int:
    stop_on_signals()
    stack = LocalStack(args.port)
    try:
        stack.start()
        print(f"Airflow UI: {stack.url}  user {USER}, password {stack.password}  (Ctrl-C stops it)", flush=True)
        while True:
            stack._check_alive()
            time.sleep(2)
    except Stopped as stopped:
        return 0 if stopped.signum == signal.SIGINT else 128 + stopped.signum
    finally:
        ignore_stop_signals()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m domainllm_operators.local_stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="run the stack until Ctrl-C (or SIGTERM, SIGHUP)")
    up.add_argument("--port", type=int, default=8080)
    up.set_defaults(func=_up)
    demo = sub.add_parser("demo", help="start, trigger domain_llm, follow it, stop")
    demo.add_argument("--spec", required=True)
    demo.add_argument("--run-id", default="demo")
    demo.add_argument("--force", action="store_true")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--synopses", help="then one flywheel cycle: demo users ask about these modules (perl-synopses.jsonl)")
    demo.set_defaults(func=_demo)
    dags_test = sub.add_parser("dags-test", help="run domain_llm with `airflow dags test` (no scheduler)")
    dags_test.add_argument("--spec", required=True)
    dags_test.add_argument("--run-id", default="demo")
    dags_test.add_argument("--force", action="store_true")
    dags_test.set_defaults(func=_dags_test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
