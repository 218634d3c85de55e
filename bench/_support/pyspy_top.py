"""The top entries of a py-spy profile, as docs/speed.md quotes them: self time (the sampled leaf
frame) and inclusive time, as shares of the samples whose leaf is not a wait (a selector, a sleep,
a lock or a queue), so idle threads do not dilute the shares.

    py-spy record --pid PID --subprocesses -d 10 -r 200 --format raw -o profile.raw --nonblocking
    python bench/_support/pyspy_top.py profile.raw [--top 15]
Native code (grpcio's core, onnxruntime, orjson) has no Python frame: its time lands on the Python
function that called it (grpc.aio's C core on `Handle._run`).
"""

from __future__ import annotations

import argparse
import collections
import re

IDLE_LEAF = re.compile(
    r"^(select|poll|epoll|_poll|wait|sleep|acquire|get|accept|_worker|readline)\b|"
    r"Selector\.select|Condition\.wait|Event\.wait|Queue\.get"
)
FRAME = re.compile(r"(.*) \((.*):\d+\)$")


def short(frame: str) -> str:
    """`function (path)` with the path from site-packages or the repository root."""
    match = FRAME.match(frame)
    if not match:
        return frame
    function, path = match.groups()
    path = path.split("site-packages/")[-1]
    path = re.sub(r"^.*?/(kerasdrop|bench)/", r"\1/", path)
    return f"{function} ({path})"


def top(profile: str, count: int = 15) -> str:
    """The two tables of `profile` (py-spy's raw output) as text."""
    own, inclusive, busy = collections.Counter(), collections.Counter(), 0
    with open(profile) as lines:
        for line in lines:
            stack, _, samples = line.rstrip("\n").rpartition(" ")
            frames = [short(frame) for frame in stack.split(";") if not frame.startswith("process ")]
            if not frames or IDLE_LEAF.search(frames[-1]):
                continue
            busy += int(samples)
            own[frames[-1]] += int(samples)
            for frame in set(frames):
                inclusive[frame] += int(samples)
    lines = [f"{busy} busy samples; self time (leaf frame), top {count}:"]
    lines += [f"  {100 * n / max(busy, 1):5.1f}%  {frame}" for frame, n in own.most_common(count)]
    lines.append(f"inclusive time, top {count} below the threads' entry points:")
    entries = [
        (frame, n)
        for frame, n in inclusive.most_common()
        if not re.search(r"\((threading|asyncio/|runpy|<frozen)", frame)
    ]
    lines += [f"  {100 * n / max(busy, 1):5.1f}%  {frame}" for frame, n in entries[:count]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="py-spy's --format raw output (collapsed stacks)")
    parser.add_argument("--top", type=int, default=15, help="entries per table (default: 15)")
    args = parser.parse_args()
    print(top(args.profile, args.top))


if __name__ == "__main__":
    main()
