"""Where the CPU of one quiz answer goes, inside the hub (a profiling aid, not a benchmark).

    .venv/bin/python tests/bench/profile_quiz.py [--answers 600] [--top 30] [--sort tottime] [--no-profile]

Builds the real app (``edge.app.create_app``) on a seeded demo classroom in this
process, signs in students on enrolled tablets through the API, and prints, all as CPU
time (not wall time, so the figures mean something on a busy machine; Flask's test client
is included in every figure):
- a burst: every student answers the same question at once, in threads, for several rounds
  (the writer commits batches, as in class): CPU per answer, and the writer thread's share;
- ``GET /api/v1/me`` (the trivial authenticated GET) one after another: CPU per request;
- answers one after another: CPU per answer (batches of one) and the request thread's part;
- cProfile tables (timer: thread CPU) of the request thread for sequential answers, and of
  the writer thread during a second burst.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
import uuid
from typing import Any

import _benchlib as b


def build(n_students: int) -> tuple[Any, dict[str, str], int, list[tuple[int, dict[str, str]]]]:
    from edge.app import create_app
    from edge.config import load_config

    data = b.tmpdir("profile-quiz-")
    room = b.seed_classroom(data)
    config = load_config(environ={}, overrides={"hub": {"data_dir": str(data)}, "discovery": {"enabled": False}})
    app = create_app(config)
    c = app.test_client()
    r = c.post("/api/v1/auth/login", json={"username": room.teacher_user, "password": room.teacher_password})
    teacher = {"Authorization": f"Bearer {r.get_json()['token']}"}
    class_id = c.get("/api/v1/classes", headers=teacher).get_json()["classes"][0]["id"]
    import json

    pins = json.loads((data / "demo-credentials.json").read_text(encoding="utf-8"))["student_pins"]
    students = [(s["id"], pins[s["number"]]) for s in c.get(f"/api/v1/classes/{class_id}/students", headers=teacher).get_json()["students"]
                if s["number"] in pins][:n_students]
    code = c.post("/api/v1/pairing-codes", json={"class_id": class_id, "kind": "student", "max_uses": 60}, headers=teacher).get_json()["code"]
    clients = []
    for i, (sid, pin) in enumerate(students):
        dev = c.post("/api/v1/devices/enrol", json={"code": code, "name": f"prof-{i:02d}"}).get_json()
        sess = c.post("/api/v1/signin", json={"student_id": sid, "pin": pin}, headers={"X-Device-Token": dev["device_token"]}).get_json()
        clients.append((sid, {"Authorization": f"Bearer {sess['token']}", "X-Device-Token": dev["device_token"]}))
    return app, teacher, class_id, clients


def new_session(c: Any, teacher: dict[str, str], class_id: int, n_items: int) -> tuple[int, list[int]]:
    items = []
    for i in range(n_items):
        r = c.post("/api/v1/quiz/items", json={"type": "single", "stem": f"第{i + 1}题 {uuid.uuid4().hex[:8]}", "options": ["A", "B", "C", "D"],
                                               "key": {"choices": [i % 4]}, "knowledge_points": ["bench"]}, headers=teacher)
        items.append(r.get_json()["id"])
    r = c.post("/api/v1/quiz/sessions", json={"class_id": class_id, "item_ids": items, "grace_s": 600}, headers=teacher)
    return r.get_json()["id"], items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=int, default=600)
    ap.add_argument("--students", type=int, default=45)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--sort", default="cumulative", help="pstats order: cumulative or tottime")
    args = ap.parse_args()
    app, teacher, class_id, clients = build(args.students)
    c = app.test_client()
    n_items = 2 * (-(-args.answers // len(clients))) + 4
    session, items = new_session(c, teacher, class_id, n_items)
    plan = [(clients[k % len(clients)], items[k // len(clients)]) for k in range(args.answers)]

    def answers(p: list[Any]) -> None:
        for (sid, h), item in p:
            r = c.post("/api/v1/quiz/answers", headers=h, json={"client_id": str(uuid.uuid4()), "session_id": session, "item_id": item,
                                                                 "student_id": sid, "response": {"choices": [1]}, "answered_at": time.time()})
            assert r.status_code == 201, r.get_json()

    def gets(n: int) -> None:
        for k in range(n):
            r = c.get("/api/v1/me", headers=clients[k % len(clients)][1])
            assert r.status_code == 200

    # warm-up (imports, the writer thread, first-use caches): last two items
    warm = [(cl, items[-1]) for cl in clients] + [(cl, items[-2]) for cl in clients]
    answers(warm)
    gets(100)
    base_c, base_w = time.process_time(), time.perf_counter()
    gets(args.answers)
    get_cpu, get_wall = (time.process_time() - base_c) / args.answers * 1000, (time.perf_counter() - base_w) / args.answers * 1000
    half = args.answers // 2
    t0c, t0w, t0t = time.process_time(), time.perf_counter(), time.thread_time()
    answers(plan[:half])
    ans_cpu, ans_wall = (time.process_time() - t0c) / half * 1000, (time.perf_counter() - t0w) / half * 1000
    ans_req = (time.thread_time() - t0t) / half * 1000
    # bursts: every student answers the same question at once (the writer then commits batches)
    import threading

    rounds = max(1, (len(items) - 2) // 2)
    bar = threading.Barrier(len(clients))
    session_ref = [session]

    def burst_client(k: int) -> None:
        sid, h = clients[k]
        for r in range(rounds):
            bar.wait()
            rr = c.post("/api/v1/quiz/answers", headers=h, json={"client_id": str(uuid.uuid4()), "session_id": session_ref[0],
                                                                  "item_id": items[len(items) - 3 - r], "student_id": sid,
                                                                  "response": {"choices": [2]}, "answered_at": time.time()})
            assert rr.status_code == 201, rr.get_json()

    from edge.context import Hub
    from edge.quiz.writer import writer_for

    hub: Hub = app.extensions["classroom_hub"]
    wthread = writer_for(hub)._thread
    assert wthread is not None and wthread.ident is not None
    wclock = time.pthread_getcpuclockid(wthread.ident)

    def burst() -> tuple[float, int]:
        ths = [threading.Thread(target=burst_client, args=(k,)) for k in range(len(clients))]
        t, w = time.process_time(), time.clock_gettime(wclock)
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        burst.writer_s = time.clock_gettime(wclock) - w  # type: ignore[attr-defined]
        return (time.process_time() - t), rounds * len(clients)

    bcpu, bn = burst()
    print(f"burst of {len(clients)} x {rounds}: {bcpu / bn * 1000:.3f} ms CPU per answer, test client included; "
          f"of which the writer thread {burst.writer_s / bn * 1000:.3f} ms")  # type: ignore[attr-defined]
    print(f"GET  /api/v1/me           : {get_cpu:.3f} ms CPU per request ({get_wall:.3f} ms wall), test client included")
    print(f"POST /api/v1/quiz/answers : {ans_cpu:.3f} ms CPU per answer  ({ans_wall:.3f} ms wall), test client included; "
          f"ratio {ans_cpu / get_cpu:.2f}x; the request thread alone {ans_req:.3f} ms")
    if args.no_profile:
        return 0
    from edge.quiz.writer import GroupWriter

    writer_prof = cProfile.Profile(time.thread_time)
    learn_prof = cProfile.Profile(time.thread_time)
    orig, orig_learn = GroupWriter._commit, GroupWriter._learn

    def profiled_commit(self: Any, *a: Any) -> Any:
        writer_prof.enable()
        try:
            return orig(self, *a)
        finally:
            writer_prof.disable()

    def profiled_learn(self: Any, *a: Any) -> None:
        learn_prof.enable()
        try:
            orig_learn(self, *a)
        finally:
            learn_prof.disable()

    req_prof = cProfile.Profile(time.thread_time)
    req_prof.enable()
    answers(plan[half:])
    req_prof.disable()
    # the writer, profiled during bursts on a fresh session (batches as in a classroom)
    s2, items2 = new_session(c, teacher, class_id, rounds + 3)
    session_ref[0], items[:] = s2, items2
    GroupWriter._commit, GroupWriter._learn = profiled_commit, profiled_learn  # type: ignore[method-assign]
    _, bn = burst()
    time.sleep(0.3)  # the burst's last mastery updates
    GroupWriter._commit, GroupWriter._learn = orig, orig_learn  # type: ignore[method-assign]
    for name, prof in (("request thread", req_prof), ("writer thread (_commit)", writer_prof), ("writer thread (_learn: mastery updates)", learn_prof)):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
        out.write(f"total CPU {pstats.Stats(prof).total_tt * 1000 / (args.answers - half if prof is req_prof else bn):.3f} ms per answer\n")
        print(f"\n==== {name} ====\n{out.getvalue()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
