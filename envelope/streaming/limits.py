"""Every size cap and batch size of the streaming drivers, in one place, with the reason for it.

The sync driver (sync.py, fileobj.py), its threaded pipeline (pipeline.py), the async driver
(envelope.aio), ranged decryption (ranged.py), rewrap (rewrap.py) and the decryptor's read hint
(decryptor.py) all read from here, so that a cap that guards against a hostile header
(format-spec/message.md §9) cannot drift between them.

Two kinds of number live here:

- **Caps that bound allocation.** A header may claim any frame length up to 2^32 - 1 (§5.2);
  what a driver allocates must follow the bytes that actually arrive, so reads and buffers
  sized by a claimed frame length stop at `MAX_TRUSTED_FRAME` (the decryptor gathers bigger
  frames from capped reads), and the zero-copy encrypt paths, where the frame length is our
  own, stop at `MAX_ZERO_COPY_FRAME`.
- **Batch sizes that trade hand-offs for memory**, measured with bench/bench_stream.py,
  bench/bench_parallel.py and bench/bench_async.py (2 cores, tmpfs, 1 MiB frames: the
  default until issue 15 made it 256 KiB, as fast in the same benchmarks).
"""

from __future__ import annotations

from ..format.body import FRAME_OVERHEAD

__all__ = [
    "ASYNC_BATCH_BYTES",
    "ASYNC_DECRYPT_BATCH_BYTES",
    "ASYNC_PIPE_DEPTH",
    "DECOMPRESSED_PIECE_ASYNC",
    "HANDOFF_BYTES",
    "MAX_ALIGNED_UNIT",
    "MAX_READ_HINT",
    "MAX_READ_SIZE",
    "MAX_TRUSTED_FRAME",
    "MAX_ZERO_COPY_FRAME",
    "MIN_HEADER_READ",
    "PIPELINE_MIN_FRAME",
    "POOL_DEPTH",
    "RANGE_BATCH_BYTES",
    "SCRATCH_KEEP_BYTES",
    "READ_SIZE",
    "UNFRAMED_READ",
    "WRITE_BATCH_BYTES",
    "nearest_units",
    "whole_units",
]

# -- caps against hostile headers (format-spec/message.md §9) -----------------------------------

# The largest frame length a driver trusts to size a read or a buffer before any of that frame
# has arrived: the decryptor's read hint, the threaded pipeline's buffers and the async driver's
# frame-aligned reads all stop here. Larger frames still decrypt, gathered by the decryptor from
# reads of at most this size, so memory follows the bytes that arrive, not the header's claim.
MAX_TRUSTED_FRAME = 4 * 1024 * 1024
# The decryptor's `size_hint` never asks for more than this at once (the same cap, in bytes read).
MAX_READ_HINT = MAX_TRUSTED_FRAME
# A regular frame on the wire (§5.3) up to which reads are aligned to frame boundaries.
MAX_ALIGNED_UNIT = MAX_TRUSTED_FRAME + FRAME_OVERHEAD
# The largest frame (our own choice when encrypting) sealed from reused whole-frame buffers;
# larger frames take the session's general path, which holds one frame whatever its size.
MAX_ZERO_COPY_FRAME = 64 * 1024 * 1024
# The largest read the async driver makes for a batch of whole frames.
MAX_READ_SIZE = 64 * 1024 * 1024

# -- reads, batches and hand-offs ---------------------------------------------------------------

# Reads of the general (non-aligned) paths: sync iterables and file objects, AsyncDecryptor;
# and the batch of whole frames the sync one-thread decrypt and `Decryptor` read at once (so a
# Decryptor holds about this much plaintext after a read).
READ_SIZE = 1024 * 1024
# The decryptor's `size_hint` while the header is incomplete asks for at least this much, so a
# small message arrives in one read and the first frames come with the header.
MIN_HEADER_READ = 4096
# ... and for a non-framed body (§5.1), which it gathers itself whatever the read size.
UNFRAMED_READ = 64 * 1024
# Frames at least this large go through the threaded pipeline, given a second CPU to run on
# (pipeline.usable_cpus); below it, thread hand-offs cost more than they save (bench_stream.py).
PIPELINE_MIN_FRAME = 16 * 1024
# Bytes of whole frames per hand-off between the pipeline's threads: each hand-off costs tens of
# microseconds, so small frames travel several to a buffer (bench/README.md, frame sweep).
HANDOFF_BYTES = 2 * 1024 * 1024
# Buffers per pool of the threaded pipeline: enough to keep every stage busy, few enough to
# bound memory at a few hand-offs.
POOL_DEPTH = 3
# Bytes per batch of frames gathered from chunks (one sink write each): the async driver's
# stream path and the sync driver over an iterable. An async sink's write costs a thread hop of
# its own (anyio's AsyncFile: ~0.2 ms of CPU on asyncio, a little more on trio, against ~0.6 ms
# to write 1 MiB to tmpfs), so batches are 4 MiB: 2 MiB ones measured ~8 ms more loop CPU per
# 256 MiB (bench_async.py, 256 MiB). Peak traced memory ~35 MiB an async stream with an
# AsyncFile source (three read buffers, a few output batches), ~25 MiB otherwise.
WRITE_BATCH_BYTES = 4 * 1024 * 1024
ASYNC_BATCH_BYTES = WRITE_BATCH_BYTES
ASYNC_DECRYPT_BATCH_BYTES = WRITE_BATCH_BYTES
# Items each pipe between the event loop and the async driver's worker thread holds.
ASYNC_PIPE_DEPTH = 2
# Decompressed pieces handed to the event loop: 1 MiB, not the sync default of 256 KiB
# (compression.DEFAULT_PIECE_SIZE), measured 2-5% faster (aio.decrypt_stream, zstd level 3).
DECOMPRESSED_PIECE_ASYNC = 1024 * 1024
# Regular frames fetched in one read when a decrypted range spans many (bounds the read buffer;
# format-spec/operations.md §1).
RANGE_BATCH_BYTES = 8 * 1024 * 1024
# Idle buffers kept between ranged reads (buffers.Scratch), in bytes: enough for a range of up
# to a frame over two 1 MiB frames (ciphertext and plaintext), which then touches no fresh page.
# Fresh memory costs a page fault per 4 KiB at first touch, here ~1 us each: a 1 MiB range
# across two frames took 2.4 ms with fresh buffers and 0.65 ms with kept ones (bench_messages.py).
SCRATCH_KEEP_BYTES = 8 * 1024 * 1024


def whole_units(unit: int, budget: int) -> int:
    """Whole units (frames) that fit in ``budget`` bytes, at least one."""
    return max(1, budget // unit)


def nearest_units(unit: int, budget: int) -> int:
    """Whole units closest to ``budget`` bytes (rounded to the nearest), at least one."""
    return max(1, (budget + unit // 2) // unit)
