"""Load test of ``initlab playground`` on loopback: N sessions train at once, each watched by an SSE
stream, while every client keeps sending control requests; prints the control latency (p50, p95,
max), the training rate, and the server's memory before, during and after. Every other session trains
on its own uploaded CSV (400 rows, ``--custom-every 2``), as a user's own data would be: uploaded once
before the timed window and uploaded again (other points) in its middle, so that the latency measured
includes what uploads (parsing, a fresh start and its diagnosis) do to everyone else's requests.

    .venv/bin/python benchmarks/playground_load.py [--sessions 20] [--seconds 30] [--custom-every 2]

Bounded: the server is started here on 127.0.0.1 (a free port), the run stops by itself after
``--seconds`` plus a few seconds of setup, and the server is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np

SETTINGS = "depth=4&width=16&n=400&speed=30&scheme=xavier_uniform&scheme=constant(value=0.05)"


def custom_csv(rows: int = 400, seed: int = 0) -> str:
    """A user's CSV: two rings on their own scale, a header and ``rows`` rows."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0, 2, rows)
    t = rng.uniform(0, 2 * np.pi, rows)
    lines = [f"{50 + 10 * a * np.cos(b):.3f},{-3 + a * np.sin(b):.4f},{int(a < 1)}" for a, b in zip(r, t)]
    return "x1,x2,label\n" + "\n".join(lines) + "\n"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def watch(client: httpx.AsyncClient, sid: str, counts: dict, stop: asyncio.Event) -> None:
    """Read a session's SSE stream until told to stop, counting its state events."""
    try:
        async with client.stream("GET", f"/api/sessions/{sid}/stream", timeout=None) as r:
            async for line in r.aiter_lines():
                if line.startswith("event: state"):
                    counts[sid] = counts.get(sid, 0) + 1
                if stop.is_set():
                    break
    except (httpx.HTTPError, asyncio.CancelledError):
        pass


async def controller(client: httpx.AsyncClient, sid: str, until: float, latencies: list, errors: list,
                     reupload: tuple[float, str] | None = None, uploads: list | None = None) -> None:
    """Every ~0.5 s two control requests, pause and play (so training goes on), each timed; with
    ``reupload`` = (when, csv), one upload of ``csv`` at monotonic time ``when``, timed into ``uploads``."""
    while time.monotonic() < until:
        if reupload is not None and time.monotonic() >= reupload[0]:
            t = time.perf_counter()
            r = await client.post(f"/api/sessions/{sid}/data", json={"csv": reupload[1]})
            uploads.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(r.status_code)
            reupload = None
        for action in ("pause", "play"):
            t = time.perf_counter()
            r = await client.post(f"/api/sessions/{sid}/{action}")
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(r.status_code)
        await asyncio.sleep(0.5)


async def run(base: str, pid: int, sessions: int, seconds: float, custom_every: int) -> dict:
    limits = httpx.Limits(max_connections=4 * sessions + 10)
    # the playground takes state changes only as JSON requests (a guard against other web pages)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                 headers={"Content-Type": "application/json"}) as client:
        # warm-up: one session created and closed, so lazy imports and allocations count as the start
        sid = (await client.post(f"/api/sessions?{SETTINGS}")).json()["session"]
        await client.delete(f"/api/sessions/{sid}")
        await asyncio.sleep(1)
        before = rss_mib(pid)
        t = time.perf_counter()
        docs = [(await client.post(f"/api/sessions?{SETTINGS}")) for _ in range(sessions)]
        sids = [d.json()["session"] for d in docs]
        custom = {s: k for k, s in enumerate(sids) if custom_every and k % custom_every == custom_every - 1}
        uploads = []
        for s, k in custom.items():
            u = time.perf_counter()
            r = await client.post(f"/api/sessions/{s}/data", json={"csv": custom_csv(seed=k)})
            uploads.append(time.perf_counter() - u)
            if r.status_code != 200:
                raise RuntimeError(f"upload refused: {r.text}")
        create_s = time.perf_counter() - t
        counts, stop = {}, asyncio.Event()
        watchers = [asyncio.create_task(watch(client, s, counts, stop)) for s in sids]
        for s in sids:
            await client.post(f"/api/sessions/{s}/play")
        latencies, errors, timed_uploads = [], [], []
        begin = time.monotonic()
        until = begin + seconds
        peak = before
        # each custom session uploads again (other points) in the middle fifth of the window, spread out
        again = {s: (begin + seconds * (0.4 + 0.2 * j / len(custom)), custom_csv(seed=1000 + k))
                 for j, (s, k) in enumerate(custom.items())}
        controllers = [asyncio.create_task(controller(client, s, until, latencies, errors, again.get(s), timed_uploads))
                       for s in sids]
        while time.monotonic() < until:
            await asyncio.sleep(1)
            peak = max(peak, rss_mib(pid))
        await asyncio.gather(*controllers)
        states = [(await client.get(f"/api/sessions/{s}")).json() for s in sids]
        stop.set()
        for s in sids:
            await client.delete(f"/api/sessions/{s}")
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await asyncio.sleep(3)
        after = rss_mib(pid)
    lat = sorted(latencies)
    steps = [s["step"] for s in states]
    customs = sum(s["settings"]["dataset"] == "custom" for s in states)
    everything = sorted(latencies + timed_uploads)
    return {"sessions": sessions, "seconds": seconds, "create_s": create_s, "custom": customs,
            "upload_ms": 1000 * max(uploads) if uploads else None, "timed_uploads": len(timed_uploads),
            "timed_upload_p50_ms": 1000 * statistics.median(timed_uploads) if timed_uploads else None,
            "timed_upload_max_ms": 1000 * max(timed_uploads) if timed_uploads else None,
            "all_p95_ms": 1000 * everything[int(0.95 * (len(everything) - 1))],
            "control_requests": len(lat), "errors": len(errors),
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "max_ms": 1000 * lat[-1], "steps_mean": statistics.mean(steps), "steps_min": min(steps),
            "events_per_session_per_s": statistics.mean(counts.get(s, 0) for s in sids) / seconds,
            "rss_before_mib": before, "rss_peak_mib": peak, "rss_after_mib": after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--custom-every", type=int, default=2, help="every k-th session uploads its own CSV (0: none)")
    args = ap.parse_args()
    if not (1 <= args.sessions <= 32 and 1 <= args.seconds <= 120):
        sys.exit("keep it bounded: 1-32 sessions, 1-120 seconds")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen([sys.executable, "-m", "initlab", "playground", "--host", "127.0.0.1", "--port",
                               str(port), "--no-open", "--max-sessions", "32"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/catalog", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
        start_rss = rss_mib(server.pid)
        r = asyncio.run(asyncio.wait_for(run(base, server.pid, args.sessions, args.seconds, args.custom_every), args.seconds + 120))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"initlab playground on 127.0.0.1, {r['sessions']} sessions x 2 models ({SETTINGS}), "
          f"{r['seconds']:g} s, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs")
    print(f"  created {r['sessions']} sessions in {r['create_s']:.1f} s; {r['custom']} of them train on an uploaded "
          f"CSV of 400 rows" + (f" (slowest upload {r['upload_ms']:.0f} ms)" if r["upload_ms"] else ""))
    print(f"  custom sessions: {r['custom']} of {r['sessions']}; {r['timed_uploads']} uploads made again during the "
          f"timed window" + (f" (p50 {r['timed_upload_p50_ms']:.0f} ms, max {r['timed_upload_max_ms']:.0f} ms)"
                             if r["timed_uploads"] else ""))
    print(f"  control requests: {r['control_requests']}, errors {r['errors']}; latency p50 {r['p50_ms']:.1f} ms, "
          f"p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms (p95 with the uploads counted in: "
          f"{r['all_p95_ms']:.1f} ms)")
    ok = (r["p95_ms"] <= 200 and 2 * r["custom"] >= r["sessions"] and r["timed_uploads"] == r["custom"]
          and not r["errors"])
    print(f"  done when p95 <= 200 ms with custom data in half the sessions: "
          f"{'yes' if ok else 'NO'}")
    print(f"  training: {r['steps_mean'] / r['seconds']:.1f} steps/s per session on average (asked 30), "
          f"slowest session {r['steps_min']} steps; {r['events_per_session_per_s']:.1f} snapshots/s per stream")
    print(f"  server memory (RSS): at start {start_rss:.0f} MiB, after warm-up {r['rss_before_mib']:.0f} MiB, "
          f"peak {r['rss_peak_mib']:.0f} MiB, after the sessions closed {r['rss_after_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
