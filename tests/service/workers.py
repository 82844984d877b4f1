"""Start and kill `essc worker` processes for the crash and scale-out tests."""
import os
import signal
import subprocess
import sys
import time

from essc.service import states


def worker_env(tmp_path, mock_url, **extra):
    env = dict(os.environ)
    env.update({"ESSC_DATA_DIR": str(tmp_path / "data"), "ESSC_CITY_BASE_URL": mock_url,
                "ESSC_SECRET_KEY": "test-secret", "ESSC_LEASE_S": "3", "ESSC_SWEEP_INTERVAL_S": "0.5",
                "ESSC_RETRY_BASE_S": "0.2", "ESSC_RETRY_CAP_S": "1",
                # one API process: these tests follow the process they signal (test_processes.py: several)
                "ESSC_API_PROCESSES": "1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_essc(env, log_path, *args):
    """`essc <args>` in its own process group (so kill -9 takes all of it)."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed by the process owner via stop()
    proc = subprocess.Popen([sys.executable, "-c", "from essc.cli import main; main()", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc._essc_log = log  # type: ignore[attr-defined]
    return proc


def start_worker(env, log_path, threads=2):
    return start_essc(env, log_path, "worker", "--workers", str(threads))


def kill9(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc._essc_log.close()


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill9(proc)
            return
    proc._essc_log.close()


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def unsettled(store):
    counts = store.counts()
    return sum(n for status, n in counts.items() if status in states.RUNNABLE)
