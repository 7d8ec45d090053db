"""The accelerator driver: the same code for a real board on a serial port and for the simulated
board on a TCP socket (pyserial URLs: ``/dev/ttyUSB0``, ``socket://127.0.0.1:4321``).

``Accelerator(transport)`` reads ``ID`` and ``CONFIG`` on connect and knows the engine it talks
to (``engine=e``: engine ``e`` of a board with several; :class:`Board` finds them all); ``load(image)`` refuses an image made for another configuration before writing anything,
writes the shadow bank, reads it back, then commits; ``run(fmap)`` streams an integer ``(C, H, W)``
feature map and returns ``(P, H, W)``; ``infer(x)`` does the same from floats with the image's
scales. Commands go out several at a time (:meth:`Link.pipeline`, up to the bridge's
``WINDOW``), each tagged; every reply is CRC-checked and matched to its command by its tag;
lost or damaged ones are retried, and nothing is returned that the board did not confirm.

A transport has ``write(data)``, ``read(n)``, ``drain(quiet, limit)``, ``timeout`` (the longest
wait for a byte, seconds) and ``byte_time`` (seconds a byte takes on the link): a
:class:`SerialTransport`, or :class:`bfly.sw.simboard.SimulatedBoard` in process.
"""

import time
from collections import deque

import numpy as np

from bfly.hw.boards import BOARDS, DEFAULT_BOARD
from bfly.hw.config import ConfigError
from bfly.hw.hostlink import (CMD, MAX_PAYLOAD, MAX_READ_WORDS, MAX_WRITE_WORDS, MAX_ENGINES, WORD,
                              WINDOW, TAGS, HEAD_BYTES, CRC, stream_batch, reply_frame_bytes,
                              engine_base, command_byte)
from bfly.hw.regmap import (BFLY_ID, ID, CONFIG0, CONFIG1, CONFIG2, CONFIG3, FACTOR, CTRL, STATUS,
                            register_map, config_from_words)
from bfly.sim.model import BlockParams, Epilogue
from bfly.sim.words import pack_pixels, unpack_pixels, load_plan, params_from_registers, stream_bits
from .link import (LinkError, read_request, write_request, stream_request, read_reply,
                   check_reply)

__all__ = ["SerialTransport", "Link", "Accelerator", "Board", "DriverError", "LinkError", "stream_frames"]

RETRYABLE = (None, "BAD_CRC", "TIMEOUT")      # lost or damaged on the way: send again
QUIET = 0.05              # seconds without a byte that make the link quiet (drain)
MAX_REPLY_BYTES = reply_frame_bytes(MAX_PAYLOAD)
COMMIT_POLLS = 100        # STATUS reads before a commit counts as stuck (it takes a few hundred
                          # clocks; one read over the link takes far longer)


class DriverError(RuntimeError):
    """The board or the image is not what the driver needs; the message says why."""


class SerialTransport:
    """A pyserial URL: a real port, or ``socket://host:port`` for the simulated board; ``baud``
    (bits per second, a real port's only) defaults to the rate ``bfly build`` gives its default
    board's UART; ``timeout`` in seconds: the longest wait for a byte."""

    def __init__(self, url, baud=BOARDS[DEFAULT_BOARD].baud, timeout=2.0):
        import serial
        if not timeout > 0:
            raise LinkError(f"the timeout must be positive, not {timeout}")
        self._serial = serial
        self.url, self.baud, self.timeout = url, baud, timeout
        self.byte_time = 10 / baud if baud and baud > 0 else 0.0     # 8N1: 10 bits a byte
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=timeout)
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"cannot open {url}: {e}")

    def write(self, data):
        try:
            self.port.write(data)
            self.port.flush()
        except (self._serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: {e}")

    def read(self, n):
        """Up to ``n`` bytes; fewer when no byte came for ``timeout`` or ``n`` bytes' worth of
        time (at the baud rate) plus ``timeout`` has passed."""
        out = bytearray()
        deadline = time.monotonic() + self.timeout + n * self.byte_time
        try:
            while len(out) < n and time.monotonic() < deadline:
                got = self.port.read(n - len(out))
                if not got:
                    break
                out += got
        except (self._serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: {e}")
        return bytes(out)

    def drain(self, quiet=QUIET, limit=None):
        """Discard input until the link has been quiet for ``quiet`` seconds (0: discard what
        has arrived); give up after ``limit`` seconds (default: ``timeout`` plus the time the
        longest reply takes, after ``quiet``). Returns whether the link went quiet."""
        if limit is None:
            limit = quiet + self.timeout + MAX_REPLY_BYTES * self.byte_time
        end = time.monotonic() + limit
        old = self.port.timeout
        try:
            self.port.timeout = quiet
            while self.port.read(4096):
                if time.monotonic() > end:
                    return False
            return True
        except (self._serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: {e}")
        finally:
            self.port.timeout = old

    def reopen(self):
        self.close()
        self.__init__(self.url, self.baud, self.timeout)

    def close(self):
        self.port.close()


def stream_frames(cfg, pixels, engine=0):
    """The STREAM commands that carry ``(N, n_in)`` integer pixels, one frame of a feature map,
    to the engine of ``cfg`` (engine number ``engine`` of its board): ``[(request, pixels in
    it)]`` (:class:`~bfly.sw.link.Request`; ``request.frame(tag)`` is its frame), as many
    pixels in each as one STREAM takes (:func:`bfly.hw.hostlink.stream_batch`); the last one
    ends the frame."""
    in_bytes = stream_bits(cfg.n_in, cfg.data_bits) // 8
    out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8
    batch = stream_batch(in_bytes, out_bytes)
    frames = []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start:start + batch]
        data = b"".join(v.to_bytes(in_bytes, "little") for v in pack_pixels(chunk, cfg.data_bits))
        frames.append((stream_request(data, len(chunk), start + batch >= len(pixels), engine, out_bytes),
                       len(chunk)))
    return frames


class Link:
    """The transactions of one host link, shared by the engines of a board: ``retries`` attempts
    after the first; ``window`` commands in flight at most (None: as many as the bridge holds,
    ``WINDOW``, or 1 with a bridge that predates tags, found on the first command); and
    ``stats``: ``retries`` (commands sent again), ``resent_streams`` (STREAMs sent again that
    the board may have run already: a reply lost on the way back; SAT_COUNT counts their pixels
    twice) and ``most_in_flight`` (commands)."""

    def __init__(self, transport, retries=4, window=None):
        if window is not None and not 1 <= window <= WINDOW:
            raise ValueError(f"the window is 1 to {WINDOW} commands, not {window}")
        self.transport = transport
        self.retries = retries
        self.max_window = window or WINDOW
        self.window = None               # known from the first reply
        self.tagged = None
        self.stats = {"retries": 0, "resent_streams": 0, "most_in_flight": 0}
        self._tag = 0
        self._unsettled = "reply"        # leftovers of an earlier client may still be arriving

    def _next_tag(self):
        if self.tagged is False:
            return 0
        self._tag = self._tag % (TAGS - 1) + 1      # 1 .. TAGS-1: an old bridge refuses any
        return self._tag

    def pipeline(self, requests, on_reply=None):
        """Send ``requests`` (:class:`~bfly.sw.link.Request`, commands whose order among
        themselves does not matter once each has been done) with up to ``window`` in flight, and
        return their replies' payloads in order; ``on_reply(i)`` after the ``i``-th is
        confirmed. Each frame carries a tag, which the reply echoes; the bridge answers in order
        and never answers a frame it did not take, so:

        - a reply with a good CRC and the tag of a later command shows that the commands before
          it were not taken: they are sent again;
        - a ``BAD_CRC`` or ``TIMEOUT`` reply (its tag is the damaged frame's, so not trusted)
          answers the oldest unanswered command: it is sent again;
        - no reply in time, or a reply damaged on the way back: the link is left to go quiet
          and every unanswered command is sent again (a STREAM among them may have run:
          ``resent_streams``);
        - a reply whose tag is no unanswered command's (stale) is dropped.

        Each command is tried ``retries + 1`` times at most; every wait is bounded, so the call
        ends with the replies or one :class:`LinkError`, never with data the board did not
        confirm. Other statuses (BAD_CMD, BAD_LEN, AXI_ERROR, NO_ENGINE) are raised at once."""
        t = self.transport
        results, attempts = [None] * len(requests), [0] * len(requests)
        todo, flight = deque(range(len(requests))), deque()     # flight: (tag, index), oldest first
        self._settle()

        def requeue(items):
            """``items`` (from ``flight``) to the front of ``todo``, in their order."""
            todo.extendleft(reversed([i for _, i in items]))

        def again(items, why, maybe_ran=False):
            for _, i in items:
                attempts[i] += 1
                if attempts[i] > self.retries:
                    raise why
                self.stats["retries"] += 1
                if maybe_ran and requests[i].cmd == CMD["STREAM"]:
                    self.stats["resent_streams"] += 1
            requeue(items)

        while todo or flight:
            while todo and len(flight) < (self.window or 1):
                i = todo.popleft()
                tag = self._next_tag()
                self._unsettled = "pending"
                t.write(requests[i].frame(tag))
                flight.append((tag, i))
                self.stats["most_in_flight"] = max(self.stats["most_in_flight"], len(flight))
            head = requests[flight[0][1]]
            reply_bytes = reply_frame_bytes(MAX_PAYLOAD if head.reply_len is None else head.reply_len)
            budget = t.timeout + (HEAD_BYTES + len(head.payload) + CRC.size + reply_bytes) * t.byte_time
            try:
                reply = read_reply(t.read, deadline=time.monotonic() + budget)
            except LinkError as e:
                self._unsettled = "reply" if e.complete else "pending"
                self._settle()
                again(list(flight), e, maybe_ran=True)
                flight.clear()
                continue
            if self.tagged is None:
                self._learn(reply, flight[0][0], requests[flight[0][1]].cmd)
                if self.tagged is False:             # an old bridge refused the tag: untagged, one at a time
                    requeue(flight)
                    flight.clear()
                    continue
            if reply.status in RETRYABLE:            # (a reply's status is a name, never None)
                again([flight.popleft()], LinkError(f"the board answered {reply.status}",
                                                    status=reply.status, complete=True))
                continue
            pos = next((k for k, (tag, i) in enumerate(flight)
                        if tag == reply.tag and requests[i].cmd == reply.cmd), None)
            if pos is None:
                continue                                  # stale: a reply to no command in flight
            skipped = [flight.popleft() for _ in range(pos)]
            if skipped:
                again(skipped, LinkError("no reply: the board did not take the command (its frame "
                                         "was lost on the way)"))
            tag, i = flight.popleft()
            try:
                results[i] = check_reply(reply, requests[i].cmd, requests[i].reply_len)
            except LinkError as e:
                if e.status is not None:                  # the board refused it: not retried
                    self._unsettled = "pending" if flight else None
                    raise
                again([(tag, i)], e, maybe_ran=True)      # a malformed reply: the command ran
                continue
            if on_reply:
                on_reply(i)
        self._unsettled = None
        return results

    def _learn(self, reply, tag, cmd):
        """From the first reply (to the only command in flight): does the bridge take tags? One
        that predates them answers a tagged command byte with BAD_CMD, echoing it."""
        self.tagged = not (reply.status == "BAD_CMD" and reply.byte == command_byte(cmd, tag))
        self.window = self.max_window if self.tagged else 1

    def _settle(self):
        """Before a command: drop the bytes that arrived since the last reply (stale: no command
        was in flight). After a failed exchange, wait until the link is quiet: for ``QUIET``
        seconds after a whole reply (a bad one), for a whole timeout when the reply did not come
        or came in part (a late reply is still waited out). A :class:`LinkError` if the link
        does not go quiet in time (a device sending without pause, such as a port at the wrong
        baud rate)."""
        quiet = {None: 0, "reply": QUIET, "pending": max(QUIET, self.transport.timeout)}
        if not self.transport.drain(quiet[self._unsettled]):
            raise LinkError("the device keeps sending and the link never goes quiet "
                            "(is the baud rate right?)")
        self._unsettled = None

    def read(self, addr, count):
        """``count`` words from byte address ``addr``."""
        reqs = [read_request(addr + WORD.size * start, min(MAX_READ_WORDS, count - start))
                for start in range(0, count, MAX_READ_WORDS)]
        return [w for payload in self.pipeline(reqs) for (w,) in WORD.iter_unpack(payload)]

    def write(self, addr, words, bar=None):
        """``words`` to consecutive words from byte address ``addr``."""
        chunks = [words[start:start + MAX_WRITE_WORDS] for start in range(0, len(words), MAX_WRITE_WORDS)]
        reqs = [write_request(addr + WORD.size * k * MAX_WRITE_WORDS, chunk) for k, chunk in enumerate(chunks)]
        self.pipeline(reqs, on_reply=(lambda i: bar.update(len(chunks[i]))) if bar else None)


class Accelerator:
    """Engine ``engine`` (0 on a single-engine board) behind ``link`` (a :class:`Link`, or a
    transport to make one with ``retries``): its ``config`` and ``latency`` read on connect."""

    def __init__(self, link, retries=4, progress=None, commit_polls=COMMIT_POLLS, engine=0, window=None):
        self.link = link if isinstance(link, Link) else Link(link, retries, window)
        self.transport = self.link.transport
        self.engine = engine
        self.base = engine_base(engine)
        self.progress = progress
        self.commit_polls = commit_polls
        self.image = self.params = None      # the image last loaded and committed, its parameters
        ident = self.read(ID.offset, 1)[0]
        if ident != BFLY_ID:
            raise DriverError(f"the device answers ID 0x{ident:08X} at engine {engine}, not a bfly "
                              f"engine (0x{BFLY_ID:08X})")
        c0, c1, c2, c3 = (self.read(r.offset, 1)[0] for r in (CONFIG0, CONFIG1, CONFIG2, CONFIG3))
        factors = self.read(FACTOR.offset, CONFIG1.unpack(c1)["n_stages"])
        try:
            self.config, self.latency = config_from_words(c0, c1, c2, factors, config3=c3)
        except ConfigError as e:
            raise DriverError(f"the device's CONFIG words are inconsistent: {e}")
        self.regs = {r.name: r for r in register_map(self.config)}

    @property
    def stats(self):
        return self.link.stats

    def read(self, addr, count):
        """``count`` words from this engine's register byte address ``addr``."""
        return self.link.read(self.base + addr, count)

    def write(self, addr, words, bar=None):
        """``words`` to this engine's registers from byte address ``addr``."""
        self.link.write(self.base + addr, words, bar)

    def reg(self, name, index=0):
        return self.regs[name].offset + WORD.size * index

    # --- parameters

    def load(self, image):
        """Write ``image`` (a :class:`bfly.sw.image.WeightImage`) to the shadow bank, verify, commit."""
        from .image import ImageError
        try:
            image.check_engine({"config": self.config.to_dict()})
        except ImageError as e:
            raise DriverError(f"refused before writing anything: {e}")
        params = self.bank_params(image)
        plan = load_plan(self.config, params)
        self.image = self.params = None
        bar = self._bar(sum(len(words) for _, words in plan), "load", "word")
        for name, words in plan:
            self.write(self.reg(name), words, bar)
        if bar:
            bar.close()
        for name, words in plan:
            back = self.read(self.reg(name), len(words))
            if back != words:
                first = next(i for i, (a, b) in enumerate(zip(back, words)) if a != b)
                raise DriverError(f"read-back of {name}[{first}] differs from what was written")
        self.write(self.reg(CTRL.name), [CTRL.pack(commit=1)])
        self._wait_commit()
        self.image, self.params = image, params

    def selftest(self, pixels, seed=1, timeout=60.0, poll=0.05):
        """Run the board's self-test on this engine: ``pixels`` pseudo-random pixels from
        ``seed`` at full clock (``hw/selftest_map.py``), with the active bank. Returns
        ``{"pixels", "out", "cycles", "checksum"}`` as the board counted them; a
        :class:`DriverError` if the board has no self-test or the run does not end within
        ``timeout`` seconds."""
        from bfly.hw.selftest_map import (SELFTEST_BASE, ST_CTRL, ST_STATUS, ST_SEED, ST_PIXELS,
                                          ST_OUT, ST_CYCLES, ST_CHECKSUM)
        if not 0 <= pixels < 1 << 32 or not 0 <= seed < 1 << 32:
            raise DriverError(f"pixels and seed are 32-bit counts, not {pixels} and {seed}")
        try:
            self.link.write(SELFTEST_BASE + ST_SEED.offset, [seed, pixels])
        except LinkError as e:
            if e.status == "AXI_ERROR":
                raise DriverError("this board has no self-test (built before it existed)")
            raise
        assert ST_PIXELS.offset == ST_SEED.offset + 4
        self.link.write(SELFTEST_BASE + ST_CTRL.offset, [ST_CTRL.pack(start=1, engine=self.engine)])
        deadline = time.monotonic() + timeout
        while not ST_STATUS.unpack(self.link.read(SELFTEST_BASE + ST_STATUS.offset, 1)[0])["done"]:
            if time.monotonic() > deadline:
                raise DriverError(f"the self-test of {pixels} pixels did not finish in {timeout:g} s")
            time.sleep(poll)
        out, cycles, checksum = self.link.read(SELFTEST_BASE + ST_OUT.offset, 3)
        assert [ST_CYCLES.offset, ST_CHECKSUM.offset] == [ST_OUT.offset + 4, ST_OUT.offset + 8]
        return {"pixels": pixels, "out": out, "cycles": cycles, "checksum": checksum}

    def bank_params(self, image):
        """The parameters :meth:`load` writes for ``image``: what the engine computes with once
        it is committed (an epilogue the image lacks is the identity)."""
        params = image.params
        if self.config.epilogue and params.epilogue is None:
            params = BlockParams(params.weights, params.shifts, Epilogue.identity(self.config))
        return params

    def _wait_commit(self):
        """Poll STATUS until commit_busy clears; :class:`DriverError` after ``commit_polls``."""
        for _ in range(self.commit_polls):
            if not STATUS.unpack(self.read(self.reg(STATUS.name), 1)[0])["commit_busy"]:
                return
        raise DriverError(f"the commit did not finish: STATUS.commit_busy was still set after "
                          f"{self.commit_polls} reads")

    def read_params(self):
        """The shadow bank as the device holds it: what the next commit makes active. The active
        bank cannot be read; it equals this only if nothing was written since the last commit
        (``self.params`` is what this driver last committed)."""
        return params_from_registers(self.config, lambda name, n: self.read(self.reg(name), n))

    # --- streaming

    def run(self, fmap):
        """Integer feature map ``(C, H, W)`` -> ``(P, H, W)`` (one frame)."""
        cfg = self.config
        fmap = np.asarray(fmap)
        if fmap.ndim != 3 or fmap.shape[0] != cfg.n_in:
            raise DriverError(f"the feature map must be shaped ({cfg.n_in}, H, W), not {fmap.shape}")
        if fmap.size == 0:
            raise DriverError(f"the feature map {fmap.shape} has no pixels")
        if not np.issubdtype(fmap.dtype, np.integer) or fmap.min() < cfg.data_min or fmap.max() > cfg.data_max:
            raise DriverError(f"the feature map must hold integers in [{cfg.data_min}, {cfg.data_max}]")
        _, h, w = fmap.shape
        pixels = fmap.reshape(cfg.n_in, -1).T
        out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8
        bar = self._bar(len(pixels), "run", "pixel")
        frames = stream_frames(cfg, pixels, self.engine)
        replies = self.link.pipeline([req for req, _ in frames],
                                     on_reply=(lambda i: bar.update(frames[i][1])) if bar else None)
        if bar:
            bar.close()
        data = b"".join(replies)
        words = [int.from_bytes(data[i:i + out_bytes], "little") for i in range(0, len(data), out_bytes)]
        return unpack_pixels(words, cfg.n_out, cfg.data_bits).T.reshape(cfg.n_out, h, w)

    def infer(self, x):
        """Float feature map ``(C, H, W)`` -> float ``(P, H, W)`` with the loaded image's scales."""
        from .quantize import quantize_input
        if self.image is None:
            raise DriverError("infer needs the scales of a loaded image: call load(image) first")
        x = np.asarray(x, dtype=np.float64)
        q = quantize_input(x.reshape(x.shape[0], -1).T, self.image.input_scale, self.config)
        y = self.run(q.T.reshape(x.shape))
        return y * self.image.output_scale

    def _bar(self, total, desc, unit):
        if not self.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, leave=False)


class Board:
    """Every engine of a board behind one link: ``engines[e]`` is an :class:`Accelerator` for
    engine ``e``. They are found by reading each engine's ``ID`` in turn until an address is
    refused (``AXI_ERROR``: a single-engine board, or one built before boards had several,
    refuses engine 1's)."""

    def __init__(self, transport, retries=4, progress=None, commit_polls=COMMIT_POLLS, window=None):
        self.link = Link(transport, retries, window)
        self.transport = transport
        self.engines = [Accelerator(self.link, progress=progress, commit_polls=commit_polls)]
        for e in range(1, MAX_ENGINES):
            try:
                self.engines.append(Accelerator(self.link, progress=progress,
                                                commit_polls=commit_polls, engine=e))
            except LinkError as err:
                if err.status != "AXI_ERROR":
                    raise
                break

    @property
    def stats(self):
        return self.link.stats
