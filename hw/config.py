"""The engine configuration: the single source of truth for the chain, widths and modes.

Every room (``hw``, ``gen``, ``sim``, ``sw``) takes an :class:`EngineConfig` as it is; it is
validated once, here, when it is made. Invalid input raises :class:`ConfigError` with a message
that a user can act on (the command line prints it on one line and exits with code 2).

The arithmetic the configuration describes is ``docs/spec.md`` §1-2.
"""

import hashlib
import json
import math
from dataclasses import dataclass

from .regmap import Rounding, Overflow, MAX_SHIFT, MAX_STAGES, MAX_CHANNELS, MAX_RADIX

__all__ = [
    "ConfigError", "Factor", "EngineConfig", "stream_bits", "radix_factorization",
    "ROUNDING_MODES", "OVERFLOW_MODES", "WIDTH_RANGE", "MAX_SHIFT", "MAX_STAGES", "DERIVED_KEYS",
    "loads_json",
]

# the modes are CONFIG0's codes; the limits are the room the register map's fields have (a shift
# is SHIFT[l]'s field, channel counts CONFIG1/2's, r - 1 and s - 1 FACTOR's, the stages the
# FACTOR array's words)
ROUNDING_MODES = tuple(m.name for m in Rounding)
OVERFLOW_MODES = tuple(m.name for m in Overflow)
WIDTH_RANGE = (2, 18)   # data_bits and weight_bits: one ECP5/Xilinx DSP operand at most


class ConfigError(ValueError):
    """A configuration that cannot be built; the message says what to change."""


@dataclass(frozen=True)
class Factor:
    """One sparse butterfly factor ``(r, s, t)`` with ``b`` blocks (docs/spec.md §1).

    It reads ``q = b*s*t`` inputs and writes ``p = b*r*t`` outputs; each output is a dot product
    of ``s`` inputs.
    """
    b: int
    r: int
    s: int
    t: int

    @property
    def p(self):
        return self.b * self.r * self.t

    @property
    def q(self):
        return self.b * self.s * self.t

    @property
    def n_weights(self):
        return self.p * self.s

    def as_row(self):
        """DeBut notation ``[p, q, r, s, t]``."""
        return [self.p, self.q, self.r, self.s, self.t]

    @classmethod
    def from_row(cls, row, index=0):
        """Build a factor from DeBut's ``[p, q, r, s, t]``, checking that the sizes agree."""
        if len(row) != 5 or not all(isinstance(v, int) and not isinstance(v, bool) for v in row):
            raise ConfigError(f"factor {index}: expected five integers [p, q, r, s, t], not {row!r}")
        p, q, r, s, t = row
        if min(row) < 1:
            raise ConfigError(f"factor {index}: sizes must be positive, not {row!r}")
        if p % (r * t) or q % (s * t) or p // (r * t) != q // (s * t):
            raise ConfigError(
                f"factor {index}: [p={p}, q={q}, r={r}, s={s}, t={t}] is not a butterfly factor "
                f"(need p = b*r*t and q = b*s*t for one block count b)")
        return cls(b=p // (r * t), r=r, s=s, t=t)


def _check_int(name, value, lo, hi, flag=None):
    flag = flag or name
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{flag} must be an integer from {lo} to {hi}, not {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """A butterfly engine: its chain of factors (input to output), widths and modes.

    Build one with :meth:`bft`, :meth:`mixed_radix` or :meth:`from_chain`.
    """
    factors: tuple
    data_bits: int = 8
    weight_bits: int = 8
    rounding: str = "half_even"
    overflow: str = "saturate"
    name: str = ""
    epilogue: bool = False      # docs/spec.md §3 in hardware: residual, multiplier and bias, ReLU
    lanes: int = 0              # folding: output nodes per clock in the widest stage (0: all)
    simd: int = 0               # folding: inputs per node per clock (0: all s; the dense MVAU's SIMD)

    def __post_init__(self):
        factors = tuple(self.factors)
        object.__setattr__(self, "factors", factors)
        if not factors:
            raise ConfigError("the chain has no factors")
        if len(factors) > MAX_STAGES:
            raise ConfigError(f"the chain has {len(factors)} factors; at most {MAX_STAGES} are supported")
        for i, f in enumerate(factors):
            if not isinstance(f, Factor):
                raise ConfigError(f"factor {i} is not a Factor: {f!r}")
            if f.r > MAX_RADIX or f.s > MAX_RADIX:
                raise ConfigError(f"factor {i}: r and s must be at most {MAX_RADIX}, not r={f.r}, s={f.s}")
            if f.p > MAX_CHANNELS or f.q > MAX_CHANNELS:
                raise ConfigError(f"factor {i}: at most {MAX_CHANNELS} channels, not {f.q} -> {f.p}")
        for i in range(1, len(factors)):
            if factors[i - 1].p != factors[i].q:
                raise ConfigError(
                    f"factor {i - 1} writes {factors[i - 1].p} channels but factor {i} reads "
                    f"{factors[i].q}: {factors[i - 1].as_row()} -> {factors[i].as_row()}")
        _check_int("data_bits", self.data_bits, *WIDTH_RANGE, "--data-bits")
        _check_int("weight_bits", self.weight_bits, *WIDTH_RANGE, "--weight-bits")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"--rounding must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ConfigError(f"--overflow must be one of {', '.join(OVERFLOW_MODES)}, not {self.overflow!r}")
        if not isinstance(self.epilogue, bool):
            raise ConfigError(f"epilogue must be true or false, not {self.epilogue!r}")
        if not isinstance(self.name, str):
            raise ConfigError(f"--name must be a string, not {self.name!r}")
        if self.name and not (self.name.isidentifier() and self.name.isascii()):
            raise ConfigError(f"--name must be a Verilog identifier (letters, digits, _), not {self.name!r}")
        self._check_folding()
        if not self.name:
            object.__setattr__(self, "name", "bfly_" + self.id)

    def _check_folding(self):
        max_p = max(f.p for f in self.factors)
        max_s = max(f.s for f in self.factors)
        _check_int("lanes", self.lanes, 0, MAX_CHANNELS, "--lanes")
        _check_int("simd", self.simd, 0, MAX_CHANNELS, "--simd")
        if self.lanes >= max_p:              # as many lanes as nodes: the fully parallel engine
            object.__setattr__(self, "lanes", 0)
        if self.simd >= max_s:
            object.__setattr__(self, "simd", 0)
        if self.lanes:
            if max_p % self.lanes:
                raise ConfigError(f"--lanes {self.lanes} must divide the widest stage's {max_p} outputs")
            rounds = max_p // self.lanes
            for i, f in enumerate(self.factors):
                if f.p % rounds:
                    raise ConfigError(
                        f"--lanes {self.lanes}: stage {i} has {f.p} outputs, not a multiple of the "
                        f"{rounds} clocks per pixel that the widest stage takes")
        if self.simd:
            for i, f in enumerate(self.factors):
                if f.s > self.simd and f.s % self.simd:
                    raise ConfigError(f"--simd {self.simd} must divide stage {i}'s {f.s} inputs per node")

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def bft(cls, n, k, **kwargs):
        """The paper's ``BFT(n, k)``: ``log_k n`` square factors, stage ``l = (k, k, n // k**(l+1))``."""
        _check_int("k", k, 2, MAX_RADIX, "--k")
        _check_int("n", n, 2, MAX_CHANNELS, "--n")
        levels = round(math.log(n, k))
        if k ** levels != n:
            radices = radix_factorization(n, k)
            hint = ""
            if len(radices) > 1 and max(radices) <= k:
                hint = "; use --radices, e.g. " + ",".join(map(str, radices))
            raise ConfigError(f"{n} is not a power of {k}{hint}")
        return cls._from_radices([k] * levels, **kwargs)

    @classmethod
    def dense(cls, n, n_out=None, **kwargs):
        """The dense ``n_out x n`` pointwise baseline: one factor ``[n_out, n, n_out, n, 1]`` (every
        output reads every input); with ``lanes`` (PE) and ``simd`` it is FINN's MVAU shape."""
        _check_int("n", n, 1, MAX_RADIX, "--n")
        n_out = n if n_out is None else n_out
        _check_int("n_out", n_out, 1, MAX_RADIX, "--n-out")
        return cls(factors=(Factor(b=1, r=n_out, s=n, t=1),), **kwargs)

    @classmethod
    def mixed_radix(cls, radices, **kwargs):
        """``n = k_0 * k_1 * ...``: stage ``l = (k_l, k_l, prod(k_m for m > l))``."""
        radices = list(radices)
        if not radices:
            raise ConfigError("--radices needs at least one radix")
        for k in radices:
            _check_int("radix", k, 2, MAX_RADIX, "each radix")
        return cls._from_radices(radices, **kwargs)

    @classmethod
    def _from_radices(cls, radices, **kwargs):
        n = math.prod(radices)
        if n > MAX_CHANNELS:
            raise ConfigError(f"n = {n} channels; at most {MAX_CHANNELS} are supported")
        return cls(factors=_radix_factors(radices), **kwargs)

    @classmethod
    def from_chain(cls, rows, **kwargs):
        """Any chain of DeBut factors ``[p, q, r, s, t]``, listed from input to output."""
        rows = list(rows)
        factors = tuple(Factor.from_row(list(row), i) for i, row in enumerate(rows))
        return cls(factors=factors, **kwargs)

    @classmethod
    def from_chain_text(cls, text, source="chain", **kwargs):
        """Parse a chain file: JSON (a list of rows, or an object with ``"chain"``), or text with
        one factor per line (``p q r s t``, commas or brackets allowed, ``#`` comments)."""
        stripped = text.strip()
        if not stripped:
            raise ConfigError(f"{source}: the file is empty")
        if stripped[0] in "[{":
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                data = None  # one [p, q, r, s, t] per line also starts with '['
            except RecursionError:
                raise ConfigError(f"{source}: the JSON is nested too deeply")
            if isinstance(data, dict):
                if "chain" not in data:
                    raise ConfigError(f"{source}: a JSON object needs a \"chain\" list of [p, q, r, s, t] rows")
                data = data["chain"]
            if data is not None:
                if isinstance(data, list) and data and not any(isinstance(r, list) for r in data):
                    data = [data]               # one factor: [p, q, r, s, t]
                if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
                    raise ConfigError(f"{source}: expected a list of [p, q, r, s, t] rows, not {data!r:.60}")
                return cls.from_chain(data, **kwargs)
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0]
            for ch in "[],":
                line = line.replace(ch, " ")
            if not line.strip():
                continue
            try:
                rows.append([int(v) for v in line.split()])
            except ValueError:
                raise ConfigError(f"{source}:{lineno}: expected five integers p q r s t, not {line.strip()!r}")
        if not rows:
            raise ConfigError(f"{source}: no factors found")
        return cls.from_chain(rows, **kwargs)

    @classmethod
    def from_dict(cls, d):
        """The inverse of :meth:`to_dict` (as written in ``manifest.json``). The derived entries
        (``id``, ``n_in``, ``n_out``, ``interval``, ``multipliers``) are optional, but where present
        they must be what the chain and options give; unknown entries are refused."""
        if not isinstance(d, dict) or "chain" not in d:
            raise ConfigError("a configuration needs a \"chain\" of [p, q, r, s, t] rows")
        chain = d["chain"]
        if not isinstance(chain, list) or not all(isinstance(row, list) for row in chain):
            raise ConfigError(f"\"chain\" must be a list of [p, q, r, s, t] rows, not {chain!r:.60}")
        unknown = sorted(str(k) for k in d if k not in _OPTION_KEYS + DERIVED_KEYS + ("chain",))
        if unknown:
            raise ConfigError(f"unknown configuration entries: {', '.join(unknown)}")
        cfg = cls.from_chain(chain, **{k: d[k] for k in _OPTION_KEYS if k in d})
        derived = cfg.to_dict()
        for key in DERIVED_KEYS:
            if key in d and not _same(d[key], derived[key]):
                raise ConfigError(f"\"{key}\" is {d[key]!r}, but the chain and options give {derived[key]!r}")
        return cfg

    # --- derived facts ------------------------------------------------------------------------

    @property
    def n_in(self):
        return self.factors[0].q

    @property
    def n_out(self):
        return self.factors[-1].p

    @property
    def n_stages(self):
        return len(self.factors)

    @property
    def has_residual(self):
        """The epilogue's residual path exists only where input and output widths are equal."""
        return self.epilogue and self.n_in == self.n_out

    @property
    def n_weights(self):
        return sum(f.n_weights for f in self.factors)

    def stage_fold(self, stage):
        """``(lanes, simd, interval)`` of stage ``stage``: output nodes per clock, inputs per node
        per clock, and clocks per pixel (``p / lanes * s / simd``; 1 when fully parallel)."""
        f = self.factors[stage]
        lanes = f.p
        if self.lanes:
            lanes = f.p // (max(g.p for g in self.factors) // self.lanes)
        simd = min(f.s, self.simd) if self.simd else f.s
        return lanes, simd, (f.p // lanes) * (f.s // simd)

    @property
    def interval(self):
        """Clocks per pixel: the engine accepts one pixel every ``interval`` clocks."""
        return max(self.stage_fold(l)[2] for l in range(self.n_stages))

    @property
    def is_dense(self):
        return len(self.factors) == 1 and self.factors[0].b == 1 and self.factors[0].t == 1

    @property
    def multipliers(self):
        """``lanes * simd`` multipliers per stage (one per weight when fully parallel), plus one per
        output channel for the epilogue's multiplier."""
        stages = sum(lanes * simd for lanes, simd, _ in map(self.stage_fold, range(self.n_stages)))
        return stages + (self.n_out if self.epilogue else 0)

    @property
    def data_min(self):
        return -(1 << (self.data_bits - 1))

    @property
    def data_max(self):
        return (1 << (self.data_bits - 1)) - 1

    @property
    def weight_min(self):
        return -(1 << (self.weight_bits - 1))

    @property
    def weight_max(self):
        return (1 << (self.weight_bits - 1)) - 1

    def acc_bits(self, stage):
        """Width of stage ``stage``'s exact accumulator (sum of ``s`` products)."""
        s = self.factors[stage].s
        return self.data_bits + self.weight_bits + max(0, (s - 1).bit_length())

    def param_blocks(self):
        """``[(first word, words)]`` of each block of the parameter window, in window order
        (docs/spec.md §4): stage ``l``'s ``(p, s)`` weights row-major (``p*s`` words, word
        ``o*s + j`` of its block), then with an epilogue one block of ``A_0 .. A_{n_out-1}``
        followed by ``Bias_0 .. Bias_{n_out-1}`` (``2*n_out`` words)."""
        sizes = [f.n_weights for f in self.factors] + ([2 * self.n_out] if self.epilogue else [])
        blocks, first = [], 0
        for size in sizes:
            blocks.append((first, size))
            first += size
        return blocks

    @property
    def n_params(self):
        """Words in the parameter window (weights, then ``A_c`` and ``Bias_c``)."""
        first, size = self.param_blocks()[-1]
        return first + size

    @property
    def id(self):
        """A short name for builds and test cases, e.g. ``n64_k4_d8w8``."""
        radices = [f.r for f in self.factors]
        square = all(f.r == f.s for f in self.factors)
        if self.is_dense:
            base = f"dense{self.n_in}" + (f"to{self.n_out}" if self.n_out != self.n_in else "")
        elif square and self.factors == _radix_factors(radices):
            if len(set(radices)) == 1:
                base = f"n{self.n_in}_k{radices[0]}"
            else:
                base = f"n{self.n_in}_r" + "x".join(map(str, radices))
        else:
            digest = _short_hash(json.dumps(self.chain_rows()))
            base = f"c{self.n_in}to{self.n_out}_{digest}"
        tag = f"{base}_d{self.data_bits}w{self.weight_bits}"
        if self.rounding != "half_even":
            tag += "_" + self.rounding.replace("_", "")
        if self.overflow != "saturate":
            tag += "_" + self.overflow
        if self.epilogue:
            tag += "_epi"
        if self.lanes:
            tag += f"_l{self.lanes}"
        if self.simd:
            tag += f"_s{self.simd}"
        return tag

    def chain_rows(self):
        return [f.as_row() for f in self.factors]

    def to_dict(self):
        return {
            "name": self.name,
            "id": self.id,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "data_bits": self.data_bits,
            "weight_bits": self.weight_bits,
            "rounding": self.rounding,
            "overflow": self.overflow,
            "epilogue": self.epilogue,
            "lanes": self.lanes,
            "simd": self.simd,
            "interval": self.interval,
            "multipliers": self.multipliers,
            "chain": self.chain_rows(),
        }


_OPTION_KEYS = ("data_bits", "weight_bits", "rounding", "overflow", "name", "epilogue", "lanes", "simd")
DERIVED_KEYS = ("id", "n_in", "n_out", "interval", "multipliers")


def _same(a, b):
    """Equal and of the same JSON type (``1``, ``1.0`` and ``true`` differ)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def loads_json(text):
    """``json.loads`` of JSON proper, for the project's files (manifests, weight-image headers):
    ``NaN`` and ``Infinity``, which Python's ``json`` reads, are a ``ValueError``."""
    def refuse(name):
        raise ValueError(f"{name} is not a JSON number")
    return json.loads(text, parse_constant=refuse)


def stream_bits(channels, data_bits):
    """Width of an AXI4-Stream ``tdata`` carrying one pixel: rounded up to whole bytes
    (docs/spec.md §4)."""
    return -(-channels * data_bits // 8) * 8


def _radix_factors(radices):
    """Stage ``l = (k_l, k_l, prod(k_m for m > l))`` of docs/spec.md §1 (mixed radix)."""
    n = math.prod(radices)
    factors = []
    for l, k in enumerate(radices):
        t = math.prod(radices[l + 1:])
        factors.append(Factor(b=n // (k * t), r=k, s=k, t=t))
    return tuple(factors)


def radix_factorization(n, k):
    """Factor ``n >= 1`` into radices no larger than ``k`` where it can, largest first (48, 4 ->
    4, 4, 3); each prime factor larger than ``k`` is a radix of its own (14, 4 -> 2, 7). 1 gives
    no radices. The product of the list is ``n``."""
    radices, rest = [], n
    for f in range(k, 1, -1):
        while rest % f == 0:
            radices.append(f)
            rest //= f
    p = k + 1                            # what is left has only prime factors above k
    while rest > 1:
        while rest % p == 0:
            radices.append(p)
            rest //= p
        p += 1
    return radices


def _short_hash(text):
    return hashlib.sha256(text.encode()).hexdigest()[:6]
