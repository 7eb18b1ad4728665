"""A command tool for lacre's tests: does what its `mode` argument says.

ok        print the arguments back, with the caller's LACRE_* variables
fail      write to stderr and exit 3
sleep     sleep `seconds`, then answer
big       print more than any sane output cap
large     print one 300 000-character string (past the request limits, within the cap)
garbage   print something that is not a JSON object
progress  report progress on fd 3 (`steps` steps, `seconds` apart), then answer
env       print the environment it was given

With `pid_file`, it first writes its process id there.
"""
import json
import os
import sys
import time

args = json.load(sys.stdin)
mode = args["mode"]
if "pid_file" in args:
    with open(args["pid_file"], "w") as f:
        f.write(str(os.getpid()))
lacre = {k: v for k, v in os.environ.items() if k.startswith("LACRE_")}
if mode == "ok":
    json.dump({"args": args, "lacre": lacre}, sys.stdout)
elif mode == "fail":
    sys.stderr.write("first line\nsecond line: it went wrong\x1b[0m\n")
    sys.exit(3)
elif mode == "sleep":
    time.sleep(float(args.get("seconds", 1)))
    json.dump({"slept": args.get("seconds", 1)}, sys.stdout)
elif mode == "big":
    sys.stdout.write('{"x": "' + "a" * (4 << 20) + '"}')
elif mode == "large":
    json.dump({"x": "a" * 300_000}, sys.stdout)
elif mode == "garbage":
    sys.stdout.write("[1, 2, 3]")
elif mode == "progress":
    steps = int(args.get("steps", 3))
    out = os.fdopen(int(os.environ["LACRE_PROGRESS_FD"]), "w", buffering=1)
    for i in range(steps):
        out.write(json.dumps({"progress": (i + 1) / steps, "message": f"step {i + 1} of {steps}"}) + "\n")
        time.sleep(float(args.get("seconds", 0.2)))
    out.close()
    json.dump({"steps": steps, "pid": os.getpid()}, sys.stdout)
elif mode == "env":
    json.dump({"env": dict(os.environ)}, sys.stdout)
