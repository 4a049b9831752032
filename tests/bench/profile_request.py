"""The hub's fixed CPU cost per request, in-process, without an HTTP server or test client.

    .venv/bin/python tests/bench/profile_request.py [--n 1500] [--mode get,404,422,answer] [--profile get]

Builds the real app (``edge.app.create_app``) on a seeded demo classroom (as
``profile_quiz.py`` does), then calls the app's WSGI callable with a pre-built environ, the
way gunicorn does, so the figures hold only Flask/APIFlask, the hooks, auth, JSON and the
view: no socket, no HTTP parsing, no test client. Prints process CPU per request (min and
every run of three) for:
- ``get``: ``GET /api/v1/me``, the trivial authenticated GET (a signed-in student tablet);
- ``404``: an unknown path (the fixed cost with no auth and no view);
- ``422``: an answer refused by the input schema (auth, body parsing, validation, problem+json);
- ``answer``: ``POST /api/v1/quiz/answers``, one after another (each its own group commit
  and fsync, so this includes the writer thread and is not the burst cost);
then ``GET /api/v1/me`` from 1, 8 and 55 threads at once on a second pass (the threads'
database connections already open): what the GIL and cache contention of many request
threads add. ``--profile MODE`` prints a cProfile table (process CPU timer) of that mode.
Compare two trees by running it with ``PYTHONPATH=<other checkout>``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import profile_quiz


def environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8080",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    for key, value in headers.items():
        env["HTTP_" + key.upper().replace("-", "_")] = value
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1500, help="requests per run (three runs per mode)")
    ap.add_argument("--mode", default="get,404,422,answer")
    ap.add_argument("--profile", default="", help="a mode to profile")
    args = ap.parse_args()
    app, teacher, class_id, clients = profile_quiz.build(45)
    session, items = profile_quiz.new_session(app.test_client(), teacher, class_id, 20)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status[:3])

    def call(env: dict[str, Any]) -> None:
        out = app(env, start_response)
        b"".join(out)
        if hasattr(out, "close"):
            out.close()

    counter = [0]

    def one(mode: str) -> None:
        k = counter[0]
        counter[0] += 1
        sid, h = clients[k % len(clients)]
        if mode == "get":
            call(environ("GET", "/api/v1/me", h))
        elif mode == "404":
            call(environ("GET", "/api/v1/nothing-here", h))
        elif mode == "422":
            call(environ("POST", "/api/v1/quiz/answers", h, b'{"client_id": 5}'))
        else:
            body = json.dumps({"client_id": str(uuid.uuid4()), "session_id": session, "item_id": items[(k // len(clients)) % len(items)],
                               "student_id": sid, "response": {"choices": [1]}, "answered_at": time.time()}).encode()
            call(environ("POST", "/api/v1/quiz/answers", h, body))

    expected = {"get": {"200"}, "404": {"404"}, "422": {"422"}, "answer": {"200", "201"}}
    modes = args.mode.split(",")
    for mode in modes:  # warm-up: imports, first-use caches, the writer thread
        for _ in range(200):
            one(mode)
    runs: dict[str, list[float]] = {m: [] for m in modes}
    prof = cProfile.Profile(time.process_time) if args.profile else None
    for _ in range(3):
        for mode in modes:
            statuses.clear()
            t0 = time.process_time()
            if prof is not None and mode == args.profile:
                prof.enable()
            for _ in range(args.n):
                one(mode)
            if prof is not None and mode == args.profile:
                prof.disable()
            runs[mode].append((time.process_time() - t0) / args.n * 1000)
            wrong = set(statuses) - expected[mode]
            assert not wrong, f"{mode}: unexpected status {wrong}"
    for mode, values in runs.items():
        print(f"{mode:7s}: {min(values):.3f} ms CPU per request (runs {', '.join(f'{v:.3f}' for v in values)})")

    for n_threads in (1, 8, 55):
        per = args.n // n_threads
        barrier = threading.Barrier(n_threads + 1)

        def loop(i: int, barrier: threading.Barrier = barrier, per: int = per) -> None:
            for _ in range(2):  # the first pass opens each thread's database connection
                barrier.wait()
                for j in range(per):
                    call(environ("GET", "/api/v1/me", clients[(i + j) % len(clients)][1]))
                barrier.wait()

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(n_threads)]
        for th in threads:
            th.start()
        cpu: Callable[[], float] = time.process_time
        for _ in range(2):
            t0 = cpu()
            barrier.wait()
            barrier.wait()
            second = (cpu() - t0) / (per * n_threads) * 1000
        for th in threads:
            th.join()
        print(f"GET /api/v1/me from {n_threads:2d} threads at once: {second:.3f} ms CPU per request")
    if prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
