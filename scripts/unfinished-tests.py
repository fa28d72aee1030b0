#!/usr/bin/env python3
"""Lists the tests a Swift Testing log shows as started but never finished: after a hung or
killed `swift test`, the place to look. Usage: unfinished-tests.py LOG"""
import re
import sys

started, finished = [], set()
for line in open(sys.argv[1], errors="replace"):
    if m := re.match(r"◇ Test (.+?) started\.", line):
        if m.group(1) != "run" and not m.group(1).startswith("case passing"):  # cases end with their test
            started.append(m.group(1))
    elif m := re.match(r"[✔✘] Test (.+?) (?:with \d+ test cases? )?(?:passed|failed)", line):
        finished.add(m.group(1))
unfinished = [name for name in dict.fromkeys(started) if name not in finished]
print("tests started but not finished:" if unfinished else "every started test finished")
for name in unfinished:
    print("  " + name)
