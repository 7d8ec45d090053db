"""The accelerator driver: the same code for a real board on a serial port and for the simulated
board on a TCP socket (pyserial URLs: ``/dev/ttyUSB0``, ``socket://127.0.0.1:4321``).

``Accelerator(transport)`` reads ``ID`` and ``CONFIG`` on connect and knows the engine it talks
to; ``load(image)`` refuses an image made for another configuration before writing anything,
writes the shadow bank, reads it back, then commits; ``run(fmap)`` streams an integer ``(C, H, W)``
feature map and returns ``(P, H, W)``; ``infer(x)`` does the same from floats with the image's
scales. Every reply is CRC-checked; damaged or lost replies are retried after resynchronizing, and
nothing is returned that the board did not confirm.
"""

import time

import numpy as np

from bfly.hw.boards import BOARDS, DEFAULT_BOARD
from bfly.hw.config import ConfigError
from bfly.hw.hostlink import CMD, MAX_READ_WORDS, MAX_WRITE_WORDS, WORD, stream_batch
from bfly.hw.regmap import (BFLY_ID, ID, CONFIG0, CONFIG1, CONFIG2, CONFIG3, FACTOR, CTRL, STATUS,
                            register_map, config_from_words)
from bfly.sim.model import BlockParams, Epilogue
from bfly.sim.words import pack_pixels, unpack_pixels, load_plan, params_from_registers, stream_bits
from .link import LinkError, read_cmd, write_cmd, stream_cmd, decode_reply

__all__ = ["SerialTransport", "Accelerator", "DriverError", "LinkError", "stream_frames"]

RETRYABLE = (None, "BAD_CRC", "TIMEOUT")      # lost or damaged on the way: send again
COMMIT_POLLS = 100        # STATUS reads before a commit counts as stuck (it takes a few hundred
                          # clocks; one read over the link takes far longer)


class DriverError(RuntimeError):
    """The board or the image is not what the driver needs; the message says why."""


class SerialTransport:
    """A pyserial URL: a real port, or ``socket://host:port`` for the simulated board; ``baud``
    (bits per second, a real port's only) defaults to the rate ``bfly build`` gives its default
    board's UART; ``timeout`` in seconds."""

    def __init__(self, url, baud=BOARDS[DEFAULT_BOARD].baud, timeout=2.0):
        import serial
        self.url, self.baud, self.timeout = url, baud, timeout
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=timeout)
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"cannot open {url}: {e}")

    def write(self, data):
        self.port.write(data)
        self.port.flush()

    def read(self, n):
        out = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(out) < n and time.monotonic() < deadline:
            out += self.port.read(n - len(out))
        return bytes(out)

    def drain(self, quiet=0.05):
        """Discard input until the link has been quiet for ``quiet`` seconds."""
        old = self.port.timeout
        self.port.timeout = quiet
        try:
            while self.port.read(4096):
                pass
        finally:
            self.port.timeout = old

    def reopen(self):
        self.close()
        self.__init__(self.url, self.baud, self.timeout)

    def close(self):
        self.port.close()


def stream_frames(cfg, pixels):
    """The STREAM commands that carry ``(N, n_in)`` integer pixels, one frame of a feature map,
    to the engine of ``cfg``: ``[(command frame, pixels in it)]``, as many pixels in each as one
    STREAM takes (:func:`bfly.hw.hostlink.stream_batch`); the last one ends the frame."""
    in_bytes = stream_bits(cfg.n_in, cfg.data_bits) // 8
    batch = stream_batch(in_bytes, stream_bits(cfg.n_out, cfg.data_bits) // 8)
    frames = []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start:start + batch]
        data = b"".join(v.to_bytes(in_bytes, "little") for v in pack_pixels(chunk, cfg.data_bits))
        frames.append((stream_cmd(data, len(chunk), start + batch >= len(pixels)), len(chunk)))
    return frames


class Accelerator:
    def __init__(self, transport, retries=4, progress=None, commit_polls=COMMIT_POLLS):
        self.transport = transport
        self.retries = retries
        self.progress = progress
        self.commit_polls = commit_polls
        self.image = None
        self.stats = {"retries": 0}
        ident = self.read(ID.offset, 1)[0]
        if ident != BFLY_ID:
            raise DriverError(f"the device answers ID 0x{ident:08X}, not a bfly engine (0x{BFLY_ID:08X})")
        c0, c1, c2, c3 = (self.read(r.offset, 1)[0] for r in (CONFIG0, CONFIG1, CONFIG2, CONFIG3))
        factors = self.read(FACTOR.offset, CONFIG1.unpack(c1)["n_stages"])
        try:
            self.config, self.latency = config_from_words(c0, c1, c2, factors, config3=c3)
        except ConfigError as e:
            raise DriverError(f"the device's CONFIG words are inconsistent: {e}")
        self.regs = {r.name: r for r in register_map(self.config)}

    # --- transactions

    def _transact(self, frame, cmd):
        for attempt in range(self.retries + 1):
            self.transport.write(frame)
            try:
                return decode_reply(self.transport.read, cmd)
            except LinkError as e:
                if e.status not in RETRYABLE or attempt == self.retries:
                    raise
                self.stats["retries"] += 1
                self.transport.drain()

    def read(self, addr, count):
        words = []
        for start in range(0, count, MAX_READ_WORDS):
            n = min(MAX_READ_WORDS, count - start)
            payload = self._transact(read_cmd(addr + WORD.size * start, n), CMD["READ"])
            words += [w for (w,) in WORD.iter_unpack(payload)]
        return words

    def write(self, addr, words, bar=None):
        for start in range(0, len(words), MAX_WRITE_WORDS):
            chunk = words[start:start + MAX_WRITE_WORDS]
            self._transact(write_cmd(addr + WORD.size * start, chunk), CMD["WRITE"])
            if bar:
                bar.update(len(chunk))

    def reg(self, name, index=0):
        return self.regs[name].offset + 4 * index

    # --- parameters

    def load(self, image):
        """Write ``image`` (a :class:`bfly.sw.image.WeightImage`) to the shadow bank, verify, commit."""
        from .image import ImageError
        try:
            image.check_engine({"config": self.config.to_dict()})
        except ImageError as e:
            raise DriverError(f"refused before writing anything: {e}")
        params = image.params
        if self.config.epilogue and params.epilogue is None:
            params = BlockParams(params.weights, params.shifts, Epilogue.identity(self.config))
        plan = load_plan(self.config, params)
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
        self.image = image

    def _wait_commit(self):
        """Poll STATUS until commit_busy clears; :class:`DriverError` after ``commit_polls``."""
        for _ in range(self.commit_polls):
            if not STATUS.unpack(self.read(self.reg(STATUS.name), 1)[0])["commit_busy"]:
                return
        raise DriverError(f"the commit did not finish: STATUS.commit_busy was still set after "
                          f"{self.commit_polls} reads")

    def read_params(self):
        """The bank as the device holds it (the shadow registers, which a commit made active)."""
        return params_from_registers(self.config, lambda name, n: self.read(self.reg(name), n))

    # --- streaming

    def run(self, fmap):
        """Integer feature map ``(C, H, W)`` -> ``(P, H, W)`` (one frame)."""
        cfg = self.config
        fmap = np.asarray(fmap)
        if fmap.ndim != 3 or fmap.shape[0] != cfg.n_in:
            raise DriverError(f"the feature map must be shaped ({cfg.n_in}, H, W), not {fmap.shape}")
        if not np.issubdtype(fmap.dtype, np.integer) or fmap.min() < cfg.data_min or fmap.max() > cfg.data_max:
            raise DriverError(f"the feature map must hold integers in [{cfg.data_min}, {cfg.data_max}]")
        _, h, w = fmap.shape
        pixels = fmap.reshape(cfg.n_in, -1).T
        out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8
        bar = self._bar(len(pixels), "run", "pixel")
        out = []
        for frame, count in stream_frames(cfg, pixels):
            reply = self._transact(frame, CMD["STREAM"])
            words = [int.from_bytes(reply[i:i + out_bytes], "little") for i in range(0, len(reply), out_bytes)]
            out.append(unpack_pixels(words, cfg.n_out, cfg.data_bits))
            if bar:
                bar.update(count)
        if bar:
            bar.close()
        return np.concatenate(out).T.reshape(cfg.n_out, h, w)

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
