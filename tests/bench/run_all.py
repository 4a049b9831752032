"""Run every benchmark in tests/bench (each ``bench_*.py``) and print one summary.

    .venv/bin/python tests/bench/run_all.py            # all of them, a few minutes
    .venv/bin/python tests/bench/run_all.py -k wsgi    # only those whose name contains "wsgi"

Each benchmark runs as its own process (its own process group, killed on timeout or
Ctrl-C), its output streams to the terminal, and the block it prints between
``=== SUMMARY ===`` and ``=== END SUMMARY ===`` is collected; a benchmark that prints no
such block is summarised by its last lines. Exit status is non-zero if any benchmark failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "=== SUMMARY ===", "=== END SUMMARY ==="


def run_one(path: Path, timeout: float) -> tuple[int | None, float, list[str]]:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(path)], cwd=HERE.parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, bufsize=1,
    )
    out: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"  {line}")
            sys.stdout.flush()
            out.append(line.rstrip("\n"))
            if time.monotonic() - t0 > timeout:
                print(f"  !! {path.name} exceeded {timeout:.0f} s, stopping it")
                break
        if proc.poll() is None:
            try:
                proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            # SIGINT first so the benchmark's own cleanup (finally/atexit) stops its servers.
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
    return proc.returncode, time.monotonic() - t0, out


def summary_of(lines: list[str]) -> list[str]:
    if START in lines:
        i = lines.index(START)
        j = lines.index(END, i) if END in lines[i:] else len(lines)
        return lines[i + 1:j]
    return lines[-15:]


def main() -> int:
    ap = argparse.ArgumentParser(description="Run all hub benchmarks (tests/bench/bench_*.py) and print a summary.")
    ap.add_argument("-k", dest="pattern", default="", help="only benchmarks whose file name contains this")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per benchmark")
    args = ap.parse_args()
    benches = sorted(p for p in HERE.glob("bench_*.py") if args.pattern in p.name)
    if not benches:
        print("no benchmarks matched")
        return 2
    results = []
    t_all = time.monotonic()
    for path in benches:
        print(f"\n##### {path.name}", flush=True)
        rc, secs, lines = run_one(path, args.timeout)
        results.append((path.name, rc, secs, summary_of(lines)))
    print("\n" + "#" * 100)
    print(f"# SUMMARY of {len(results)} benchmark(s), {time.monotonic() - t_all:.0f} s, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print("#" * 100)
    failed = 0
    for name, rc, secs, lines in results:
        state = "ok" if rc == 0 else f"FAILED (exit {rc})"
        failed += rc != 0
        print(f"\n## {name}: {state}, {secs:.0f} s")
        for line in lines:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
