"""The driver against a faulty board on 127.0.0.1 (``tests/fakeboard.py``, over pyserial's
``socket://``): silent, late, damaged, short, long and stale replies, a wrong sync byte, a slow
drip, a device that never stops sending. Each exchange ends with the right answer or one
:class:`LinkError` in bounded time; a command is never sent while a reply is on its way."""

import time

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.hw.regmap import BFLY_ID, ID
from bfly.sim.model import engine_forward, random_params
from bfly.sim.words import stream_bits
from bfly.sw.driver import Accelerator, SerialTransport, LinkError
from bfly.sw.image import WeightImage
from bfly.sw.simboard import SimulatedBoard
from bfly.hw.hostlink import SYNC_REPLY, WINDOW

from fakeboard import FakeBoard

CFG = EngineConfig.bft(16, 4)
OUT_BYTES = stream_bits(CFG.n_out, CFG.data_bits) // 8
TIMEOUT = 0.2
CONNECT_READS = 6                       # ID, CONFIG0..3, FACTOR


def _only(name, k, mode):
    return lambda n, i: mode if (n, i) == (name, k) else None


def _connect(board, **kw):
    return Accelerator(SerialTransport(board.url, timeout=TIMEOUT), **kw)


def _image(seed=3):
    return WeightImage(CFG, random_params(CFG, np.random.default_rng(seed)), 0.1, 0.1)


def _fmap(seed=4, h=3, w=30):                   # 90 pixels: two STREAM commands
    return np.random.default_rng(seed).integers(CFG.data_min, CFG.data_max + 1, size=(CFG.n_in, h, w))


def _want(params, fmap):
    return engine_forward(CFG, params, fmap.reshape(CFG.n_in, -1).T).y.T.reshape(CFG.n_out, *fmap.shape[1:])


# --- item 1: retries while connecting

@pytest.mark.parametrize("mode", ["silent", "late", "short", "wrong_sync"])
def test_connect_retries_a_failed_first_read(mode):
    with FakeBoard(CFG, fault=lambda n, k: mode if n == "READ" and k < 2 else None, late=0.3) as board:
        acc = _connect(board)
        assert acc.config.id == CFG.id and acc.stats["retries"] == 2
        acc.transport.close()


# --- item 2: every exchange ends in bounded time

def test_a_device_sending_junk_forever_fails_connect_in_bounded_time():
    with FakeBoard(CFG, on_connect="junk") as board:
        t0 = time.monotonic()
        with pytest.raises(LinkError, match="never goes quiet"):
            _connect(board)
        assert time.monotonic() - t0 < 3


def test_junk_starting_mid_session_fails_the_call_in_bounded_time():
    with FakeBoard(CFG, fault=_only("READ", CONNECT_READS, "junk_after")) as board:
        acc = _connect(board)
        acc.read(ID.offset, 1)                                    # answered, then junk
        t0 = time.monotonic()
        with pytest.raises(LinkError, match="never goes quiet"):
            acc.read(ID.offset, 1)
        assert time.monotonic() - t0 < 3


def test_a_reply_that_drips_for_ever_is_given_up_in_bounded_time():
    """A reply sent one byte at a time, each within the quiet time: the reply's deadline
    passes, the drain's limit passes, one LinkError."""
    drip = FakeBoard(CFG, fault=lambda n, k: "drip" if n == "STREAM" else None, drip=0.01)
    with drip as board:
        acc = _connect(board)
        t0 = time.monotonic()
        with pytest.raises(LinkError):
            acc.run(_fmap())
        assert time.monotonic() - t0 < 6


def test_junk_before_the_reply_sync_is_bounded_by_the_deadline():
    """A read that keeps returning bytes without the sync byte stops at the reply deadline
    (before, the decoder looped for as long as bytes came)."""
    from bfly.sw.link import decode_reply
    from fakeboard import junk
    t0 = time.monotonic()
    with pytest.raises(LinkError, match="without a reply's sync byte"):
        decode_reply(lambda n: junk(n + 8)[:n] or b"\0", 1, deadline=time.monotonic() + 0.2)
    assert time.monotonic() - t0 < 1


# --- item 4: reply lengths and stale replies

LENGTH_FAULTS = [("READ", "short"), ("READ", "long"), ("STREAM", "pixel_short"),
                 ("STREAM", "pixel_long"), ("STREAM", "cut3")]


@pytest.mark.parametrize("name, mode", LENGTH_FAULTS)
def test_a_reply_of_the_wrong_length_is_a_failed_attempt(name, mode):
    image, fmap = _image(), _fmap()
    k = CONNECT_READS if name == "READ" else 1
    with FakeBoard(CFG, fault=_only(name, k, mode), out_bytes=OUT_BYTES) as board:
        acc = _connect(board)
        if name == "READ":
            assert acc.read(ID.offset, 1) == [BFLY_ID]
        else:
            acc.load(image)
            assert np.array_equal(acc.run(fmap), _want(image.params, fmap))
        assert acc.stats["retries"] == 1
        # the board ran the STREAM whose reply came back damaged: its batch counts twice
        assert acc.stats["resent_streams"] == (name == "STREAM")
        acc.transport.close()


@pytest.mark.parametrize("name, mode", LENGTH_FAULTS)
def test_a_board_that_always_answers_the_wrong_length_is_a_link_error(name, mode):
    first = CONNECT_READS if name == "READ" else 0
    fault = (lambda n, k: mode if n == name and k >= first else None)
    with FakeBoard(CFG, fault=fault, out_bytes=OUT_BYTES) as board:
        acc = _connect(board, retries=2)
        with pytest.raises(LinkError, match="a reply of .* bytes, expected"):
            acc.read(ID.offset, 1) if name == "READ" else acc.run(_fmap())
        # each command in flight (one READ; the two STREAMs of the map) was sent again twice
        assert acc.stats["retries"] == 2 * (1 if name == "READ" else 2)
        acc.transport.close()


def test_leftover_replies_of_an_earlier_client_are_not_taken():
    with FakeBoard(CFG, on_connect="leftovers") as board:
        acc = _connect(board)
        assert acc.config.id == CFG.id and acc.read(ID.offset, 1) == [BFLY_ID]
        acc.transport.close()


def test_a_stale_complete_reply_is_not_the_next_commands_reply():
    """After the reply to CONFIG0 the board also sends a copy of the one to ID, of the same
    command and length: the read of CONFIG1 must not take it."""
    with FakeBoard(CFG, fault=_only("READ", 1, "stale")) as board:
        acc = _connect(board)
        assert acc.config.id == CFG.id and acc.stats["retries"] == 0
        image, fmap = _image(), _fmap()
        acc.load(image)
        assert np.array_equal(acc.run(fmap), _want(image.params, fmap))
        acc.transport.close()


# --- item 6: one command in flight

def test_no_command_is_sent_while_a_reply_is_still_arriving():
    """A reply dripping in slower than the timeout: the read gives up, and the next command
    (a retry, or the caller's next call after the last attempt failed) waits until the link
    has gone quiet."""
    with FakeBoard(CFG, fault=_only("READ", CONNECT_READS, "drip"), drip=0.03) as board:
        acc = _connect(board, retries=0)
        with pytest.raises(LinkError, match="cut short"):
            acc.read(ID.offset, 1)
        assert acc.read(ID.offset, 1) == [BFLY_ID]
        assert board.early == 0
        acc.transport.close()
    with FakeBoard(CFG, fault=_only("READ", CONNECT_READS, "drip"), drip=0.03) as board:
        acc = _connect(board)
        assert acc.read(ID.offset, 1) == [BFLY_ID] and acc.stats["retries"] == 1
        assert board.early == 0
        acc.transport.close()


def test_a_late_reply_is_waited_out_before_the_retry():
    with FakeBoard(CFG, fault=_only("READ", CONNECT_READS, "late"), late=TIMEOUT + 0.02) as board:
        acc = _connect(board)
        assert acc.read(ID.offset, 1) == [BFLY_ID]
        assert board.early == 0
        acc.transport.close()


def test_a_board_that_goes_away_is_a_link_error():
    board = FakeBoard(CFG)
    acc = _connect(board, retries=1)
    board.close()
    with pytest.raises(LinkError):
        acc.read(ID.offset, 1)


# --- issue 22 item 5: faults with several commands in flight

class CountingTransport(SerialTransport):
    """Counts the frames written and the replies begun: ``most_ahead`` is the most frames that
    were out before their replies came."""
    written = headers = most_ahead = 0

    def write(self, data):
        self.written += 1
        self.most_ahead = max(self.most_ahead, self.written - self.headers)
        super().write(data)

    def read(self, n):
        data = super().read(n)
        if n == 1 and data == bytes([SYNC_REPLY]):      # how the driver starts a reply
            self.headers += 1
        return data


@pytest.mark.parametrize("mode", ["silent", "wrong_sync", "short", "stale", "late", "cut3"])
def test_a_fault_in_the_middle_of_a_window_loses_and_repeats_nothing(mode):
    """A map of 8 batches with WINDOW in flight; the reply to the 4th is lost, damaged, too
    short, followed by a stale one, late or cut: every output pixel is the model's, in order."""
    image, fmap = _image(), _fmap(h=8, w=64)
    with FakeBoard(CFG, fault=_only("STREAM", 3, mode), out_bytes=OUT_BYTES, late=TIMEOUT + 0.05) as board:
        t = CountingTransport(board.url, timeout=TIMEOUT)
        acc = Accelerator(t)
        acc.load(image)
        assert np.array_equal(acc.run(fmap), _want(image.params, fmap))
        assert acc.link.window == WINDOW and acc.stats["most_in_flight"] == WINDOW
        assert t.most_ahead >= WINDOW          # several frames really were out at once
        assert acc.stats["retries"] >= (mode != "stale")
        t.close()


def test_a_board_built_before_tags_is_driven_one_command_at_a_time():
    """An older bridge answers a tagged command byte with BAD_CMD: the driver learns it from
    the first reply and goes on untagged, one command in flight."""
    board = SimulatedBoard(CFG, 31, untagged=True)
    acc = Accelerator(board)
    assert acc.link.window == 1 and acc.link.tagged is False
    image, fmap = _image(), _fmap()
    acc.load(image)
    assert np.array_equal(acc.run(fmap), _want(image.params, fmap))
    new = Accelerator(SimulatedBoard(CFG, 31))
    assert new.link.window == WINDOW and new.link.tagged is True


def test_the_link_bound_is_what_whole_frames_take():
    """bench-link's bound: a full batch's command and reply frames, as the driver and the
    (in-process) board make them, at ten bits a byte."""
    from bfly.sw.bench_link import link_bound
    from bfly.sw.driver import stream_frames
    board = SimulatedBoard(CFG, 31)
    pixels = np.zeros((1000, CFG.n_in), dtype=np.int64)
    req, n = stream_frames(CFG, pixels)[0]
    board.write(req.frame())
    reply = board.read(1 << 20)
    assert link_bound(CFG, 1e6) == pytest.approx(1e5 * n / max(len(req.frame()), len(reply)))
