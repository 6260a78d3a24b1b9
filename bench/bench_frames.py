"""Frame-length sweep for envelope's unsigned committing suite: how DEFAULT_FRAME_LENGTH is chosen.

Run: ``.venv/bin/python bench/bench_frames.py --size 256M --repeat 3``; the same rows as the
sweep section of bench_stream.py, which takes the same flags.
"""

from __future__ import annotations

import sys

import bench_stream

if __name__ == "__main__":
    sys.exit(bench_stream.main(["--only", "^sweep-", *sys.argv[1:]]))
