"""The schedule of a folded stage (``hw/folded.py``), in plain Python: which output node each lane
computes in each clock of a pixel, which input channel each of its multipliers reads, and where
each weight lives in the lanes' memories. The hardware takes its tables from here.

A pixel takes ``interval = chunks * folds`` clocks (phases), ``chunks = p / lanes`` and
``folds = s / simd``; phase ``c = chunk * folds + fold``: in it lane ``j`` works on node
``node(j, chunk)`` with its inputs ``fold*simd ... fold*simd + simd - 1``, input ``fold*simd + i``
on slot (multiplier) ``i``. The ``r`` nodes of a factor that read the same inputs (same block and
``u``) go to one lane in consecutive chunks when every size is a power of two (``grouped``), so a
lane reads each of its input channels in one multiplexer input only; otherwise lane ``j`` takes
nodes ``j * chunks ... (j + 1) * chunks - 1``.

Weights: lane ``j`` keeps in memory word ``c`` (one per phase) the ``simd`` weights it uses in
phase ``c``, slot ``i`` the weight ``W[o, j']`` of its node ``o`` and input ``j' = fold*simd + i``,
index ``o*s + j'`` of the register map.
"""

from .connectivity import input_channel, node as factor_node

__all__ = ["FoldSchedule", "is_pow2"]


def is_pow2(v):
    """Whether the positive integer ``v`` is a power of two."""
    return v & (v - 1) == 0


class FoldSchedule:
    """The fold schedule of factor ``factor`` on ``lanes`` lanes of ``simd`` multipliers, a pixel
    every ``interval`` clocks (as :meth:`bfly.hw.config.EngineConfig.stage_fold` gives them)."""

    def __init__(self, factor, lanes, simd, interval):
        f = self.factor = factor
        if not (1 <= lanes <= f.p and f.p % lanes == 0):
            raise ValueError(f"lanes must divide the factor's {f.p} outputs, not {lanes!r}")
        if not (1 <= simd <= f.s and f.s % simd == 0):
            raise ValueError(f"simd must divide the factor's {f.s} inputs per node, not {simd!r}")
        self.lanes, self.simd = lanes, simd
        self.chunks, self.folds = f.p // lanes, f.s // simd
        if interval != self.chunks * self.folds:
            raise ValueError(f"interval {interval!r} is not (p / lanes) * (s / simd) = "
                             f"{self.chunks * self.folds}")
        self.interval = interval
        sizes = (f.r, f.s, f.t, f.b, lanes, self.chunks, simd)
        self.grouped = (all(map(is_pow2, sizes)) and self.chunks % f.r == 0
                        and (f.b * f.t) % lanes == 0 and f.b * f.t > 1)
        self._place = {}
        for lane in range(lanes):
            for chunk in range(self.chunks):
                self._place[self.node(lane, chunk)] = (lane, chunk)

    @classmethod
    def of(cls, cfg, index):
        """The schedule of stage ``index`` of ``cfg``."""
        return cls(cfg.factors[index], *cfg.stage_fold(index))

    def node(self, lane, chunk):
        """The output node that ``lane`` computes in ``chunk``."""
        f = self.factor
        if not self.grouped:
            return lane * self.chunks + chunk
        group_in_lane, i = divmod(chunk, f.r)
        blk, u = divmod(lane * (f.b * f.t // self.lanes) + group_in_lane, f.t)
        return factor_node(f, blk, i, u)

    def lane_chunk(self, o):
        """``(lane, chunk)`` of output node ``o``: the inverse of :meth:`node`."""
        return self._place[o]

    def phase(self, chunk, fold):
        return chunk * self.folds + fold

    def chunk_fold(self, phase):
        """``(chunk, fold)`` of ``phase``."""
        return divmod(phase, self.folds)

    def input_index(self, phase, slot):
        """The input ``j`` (of the node's ``s``) that a slot multiplies in ``phase``."""
        return self.chunk_fold(phase)[1] * self.simd + slot

    def node_at(self, lane, phase):
        return self.node(lane, self.chunk_fold(phase)[0])

    def channel(self, lane, slot, phase):
        """The input channel that ``(lane, slot)`` reads in ``phase``."""
        return input_channel(self.factor, self.node_at(lane, phase), self.input_index(phase, slot))

    def channels(self, lane, slot):
        """The input channels ``(lane, slot)`` reads, phase by phase."""
        return tuple(self.channel(lane, slot, c) for c in range(self.interval))

    def weight(self, lane, word, slot):
        """The weight (index ``o*s + j``) at ``slot`` of memory word ``word`` of ``lane``."""
        return self.node_at(lane, word) * self.factor.s + self.input_index(word, slot)

    def placement(self, index):
        """``(lane, word, slot)`` of weight ``index`` (``o*s + j``): the inverse of :meth:`weight`."""
        o, j = divmod(index, self.factor.s)
        lane, chunk = self.lane_chunk(o)
        fold, slot = divmod(j, self.simd)
        return lane, self.phase(chunk, fold), slot

    def decode_fields(self):
        """How the hardware decodes a weight address into ``(lane, word, slot)``: with ``grouped``,
        the bit positions ``(lt, lr, split)`` of ``connectivity.node_coords`` (``u`` the low
        ``lt`` bits of ``o``, ``i`` the next ``lr``, the block above) and of the lane within
        ``(u, blk)`` (above bit ``split``); None otherwise (``divmod`` by the chunks)."""
        if not self.grouped:
            return None
        f = self.factor
        return ((f.t - 1).bit_length(), (f.r - 1).bit_length(),
                (f.b * f.t // self.lanes - 1).bit_length())

