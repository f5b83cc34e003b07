"""The agent's own cost with the server taken out: replay recorded answers.

`bench.run` records every answer of one floor pass (the same requests the agent makes)
and runs this module as a child process. Here the agent's real `Kube` is given a stand-in
`ApiClient` that answers from the recording, and `run_cycle` (observe, resolve, plan; dry
run) is timed, several times, against `json.loads` of the same answers (the client side of
the floor). The difference is what the agent adds per cycle, free of server time and of
the noise other users of the machine cause; min over the repeats is reported.

`--server-seconds-per-mb S` makes each answer take S seconds per MB (a sleep, which frees
the GIL as a socket wait does), to see how the agent overlaps server time with its work.

    python -m bench.replay RECORDING.pkl [--repeat N] [--server-seconds-per-mb S] [--agent-path DIR]
                           [--config FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

Recording = dict[tuple[str, tuple[tuple[str, str], ...]], bytes]


def key(path: str, query: Mapping[str, str] | None) -> tuple[str, tuple[tuple[str, str], ...]]:
    return path, tuple(sorted((query or {}).items()))


class _Answer:
    """Enough of urllib3's HTTPResponse for `Kube`: the body in chunks."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.status = 200

    def stream(self, amt: int = 65536) -> Iterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), amt):
            yield bytes(view[start:start + amt])

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class ReplayApiClient:
    """Enough of `kubernetes.client.ApiClient` for `agent.kube.client.Kube` to read through."""

    class configuration:  # noqa: N801 - mimics the attribute
        host = "https://replay.invalid"

    def __init__(self, recording: Recording, *, seconds_per_mb: float = 0.0) -> None:
        self._recording = recording
        self._seconds_per_mb = seconds_per_mb

    def call_api(self, path: str, method: str, *, query_params: list[tuple[str, str]] | None = None,
                 **_: Any) -> _Answer:
        if method != "GET":
            raise RuntimeError(f"replay: {method} {path} was not recorded (dry runs only)")
        data = self._recording[key(path, dict(query_params or []))]
        if self._seconds_per_mb:
            time.sleep(len(data) / 1e6 * self._seconds_per_mb)
        return _Answer(data)

    def close(self) -> None:
        pass


def measure(recording: Recording, *, repeat: int, seconds_per_mb: float, config: str | None = None) -> dict[str, Any]:
    from agent import logs
    from agent.cycle import run_cycle
    from agent.kube.client import Kube
    from agent.settings import load_settings

    settings = load_settings(config, env={})
    logs.configure(fmt="json", level=settings.logging.level)
    floor_times, cycle_times = [], []
    requests = 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for data in recording.values():
            if seconds_per_mb:
                time.sleep(len(data) / 1e6 * seconds_per_mb)
            json.loads(data)
        floor_times.append(time.perf_counter() - started)
        kube = Kube(ReplayApiClient(recording, seconds_per_mb=seconds_per_mb))  # type: ignore[arg-type]
        gc.collect()
        started = time.perf_counter()
        result = run_cycle(kube, settings, dry_run=True)
        cycle_times.append(time.perf_counter() - started)
        requests = result.requests
    import agent

    floor_s, cycle_s = min(floor_times), min(cycle_times)
    return {"floor_seconds": round(floor_s, 3), "cycle_seconds": round(cycle_s, 3),
            "ratio": round(cycle_s / floor_s, 3), "agent_seconds_over_floor": round(cycle_s - floor_s, 3),
            "requests": requests, "answers": len(recording), "server_seconds_per_mb": seconds_per_mb,
            "floor_samples": [round(t, 3) for t in floor_times], "cycle_samples": [round(t, 3) for t in cycle_times],
            "agent_module": agent.__file__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    parser.add_argument("recording")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--server-seconds-per-mb", type=float, default=0.0)
    parser.add_argument("--agent-path", metavar="DIR", help="import `agent` from DIR/agent")
    parser.add_argument("--config", metavar="FILE", help="the agent's configuration file (its targets)")
    args = parser.parse_args(argv)
    if args.agent_path:  # before the working directory, which `python -m` puts first
        sys.path.insert(0, args.agent_path)
    with open(args.recording, "rb") as fh:
        recording: Recording = pickle.load(fh)
    print(json.dumps(measure(recording, repeat=args.repeat, seconds_per_mb=args.server_seconds_per_mb,
                             config=args.config)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
