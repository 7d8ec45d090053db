"""The fast stream harness: a Verilog top around the engine with a file-fed pixel source and a
file-writing sink, so that a long stream runs in the simulator without Python in every clock.

The harness (``bfly_harness``, generated here from the engine top's own port list) passes every
engine port through (cocotb's clock drives ``clk``) and adds:

- a **source**: after a ``start`` pulse it reads ``n_pixels`` pixels from ``SOURCE_FILE`` (in
  the simulator's working directory) and offers them on the engine's
  ``s_axis``, idle in a clock with probability ``idle_level / 2**16`` from its own xorshift32
  generator (seed ``src_seed``); it logs the clock of every accepted pixel to ``ACCEPT_FILE``;
- a **sink**: not ready in a clock with probability ``stall_level / 2**16`` (generator seed
  ``sink_seed``); it logs every delivered pixel (clock, ``last``, data) to ``SINK_FILE``;
- ``running`` (from the ``start`` it took until the last pixel left), ``cycle`` (clocks since
  time 0), ``in_count``, ``out_count``, ``at_mark`` (high once
  ``in_count >= mark``: a test awaits it to act at a chosen point of the stream) and ``done``
  (every pixel delivered and the files closed).

With ``ext`` high the engine's stream ports are the harness's own ``s_axis_*`` / ``m_axis_*``
ports instead, which a cocotb bus model drives clock by clock (the protocol tests).

The files move through DPI functions (``harness.cpp``, compiled into the simulator), whose
comment gives their formats; :func:`write_source`, :func:`read_accepts` and :func:`read_sink`
are the NumPy side.
"""

from pathlib import Path

import numpy as np

from .words import pack_u32, unpack_u32, stream_bits

__all__ = ["HARNESS_NAME", "SOURCE_FILE", "ACCEPT_FILE", "SINK_FILE", "CLOCK_NS", "CHUNK_PIXELS",
           "DPI_SOURCE", "harness_verilog", "write_source", "read_sink", "read_accepts", "level"]

HARNESS_NAME = "bfly_harness"
SOURCE_FILE = "stream_in.bin"
ACCEPT_FILE = "stream_accepted.bin"
SINK_FILE = "stream_out.bin"
DPI_SOURCE = Path(__file__).with_name("harness.cpp")
CLOCK_NS = 10                 # the period of the clock the testbench drives
CHUNK_PIXELS = 1 << 16        # pixels per harness run: bounds the files and the arrays in memory
CYCLE_BITS = 64
LEVEL_BITS = 16
STREAM_PREFIXES = ("s_axis_", "m_axis_")    # the engine top's stream ports: the harness muxes them


def level(prob):
    """A probability as the harness's 16-bit threshold."""
    return min(int(round(prob * (1 << LEVEL_BITS))), (1 << LEVEL_BITS) - 1)


def _pieces(width):
    """32-bit pieces of a ``width``-bit word (a DPI bit vector's ``svBitVecVal`` count)."""
    return (width + 31) // 32


def _decl(direction, width, name):
    return f"{direction} wire {'[%d:0] ' % (width - 1) if width > 1 else ''}{name}"


def harness_verilog(top, engine_name):
    """The harness's Verilog around the engine module ``engine_name`` whose ports are those of
    the component ``top`` (a :class:`bfly.hw.top.BflyTop`)."""
    from amaranth.hdl import Shape
    members = top.signature.members
    width = {name: Shape.cast(m.shape).width for name, m in members.items()}
    iw, ow = width["s_axis_tdata"], width["m_axis_tdata"]
    through = [n for n in members if not n.startswith(STREAM_PREFIXES)]
    ports = [_decl("input" if members[n].flow.name == "In" else "output", width[n], n) for n in through]
    ports += [_decl("input", 1, "rst"), _decl("input", 1, "ext"),
              _decl("input", iw, "s_axis_tdata"), _decl("input", 1, "s_axis_tvalid"),
              _decl("input", 1, "s_axis_tlast"), _decl("output", 1, "s_axis_tready"),
              _decl("output", ow, "m_axis_tdata"), _decl("output", 1, "m_axis_tvalid"),
              _decl("output", 1, "m_axis_tlast"), _decl("input", 1, "m_axis_tready"),
              _decl("input", 1, "start"), _decl("input", 32, "n_pixels"),
              _decl("input", 32, "src_seed"), _decl("input", 32, "sink_seed"),
              _decl("input", LEVEL_BITS, "idle_level"), _decl("input", LEVEL_BITS, "stall_level"),
              _decl("input", 32, "mark"), _decl("output", 1, "at_mark"), _decl("output", 1, "done"),
              _decl("input", 1, "clk"), "output reg running", f"output reg [{CYCLE_BITS - 1}:0] cycle",
              "output reg [31:0] in_count", "output reg [31:0] out_count"]
    conns = [f".{n}({n})" for n in through] + [
        ".clk(clk)", ".rst(rst)",
        ".s_axis_tdata(e_s_data)", ".s_axis_tvalid(e_s_valid)", ".s_axis_tlast(e_s_last)",
        ".s_axis_tready(e_s_ready)", ".m_axis_tdata(e_m_data)", ".m_axis_tvalid(e_m_valid)",
        ".m_axis_tlast(e_m_last)", ".m_axis_tready(e_m_ready)"]
    sep = ",\n    "
    return _TEMPLATE.format(
        name=HARNESS_NAME, engine=engine_name, ports=sep.join(ports), conns=sep.join(conns),
        iw_hi=iw - 1, ow_hi=ow - 1, lb_hi=LEVEL_BITS - 1,
        in_words=_pieces(iw), out_words=_pieces(ow),
        source=SOURCE_FILE, accept=ACCEPT_FILE, sink=SINK_FILE)


# Verilog braces are doubled for str.format
_TEMPLATE = """\
// bfly fast stream harness (generated by bfly.sim.harness; simulation only). The source and
// the sink move pixels between the engine and the files through the DPI functions of
// harness.cpp.
module {name} (
    {ports}
);
    import "DPI-C" function void bfly_stream_open(input string src, input string acc,
        input string out, input int in_words, input int out_words);
    import "DPI-C" function void bfly_stream_next(output bit [{iw_hi}:0] data, output bit last);
    import "DPI-C" function void bfly_stream_accepted(input longint cycle);
    import "DPI-C" function void bfly_stream_put(input longint cycle, input bit last,
        input bit [{ow_hi}:0] data);
    import "DPI-C" function void bfly_stream_close();

    wire [{iw_hi}:0] e_s_data; wire e_s_valid, e_s_last, e_s_ready;
    wire [{ow_hi}:0] e_m_data; wire e_m_valid, e_m_last, e_m_ready;
    {engine} engine (
    {conns}
    );

    reg [{iw_hi}:0] src_data;
    reg src_last, src_valid;
    reg [31:0] src_sent, src_rnd, sink_rnd;
    wire sink_ready = running && sink_rnd[{lb_hi}:0] >= stall_level;
    wire src_idle = src_rnd[{lb_hi}:0] < idle_level;
    assign e_s_data = ext ? s_axis_tdata : src_data;
    assign e_s_last = ext ? s_axis_tlast : src_last;
    assign e_s_valid = ext ? s_axis_tvalid : src_valid;
    assign s_axis_tready = e_s_ready;
    assign m_axis_tdata = e_m_data;
    assign m_axis_tvalid = e_m_valid;
    assign m_axis_tlast = e_m_last;
    assign e_m_ready = ext ? m_axis_tready : sink_ready;
    assign at_mark = in_count >= mark;
    assign done = !running && out_count == n_pixels;

    function [31:0] xorshift(input [31:0] x);
        reg [31:0] a;
        begin
            a = x ^ (x << 13);
            a = a ^ (a >> 17);
            xorshift = a ^ (a << 5);
        end
    endfunction

    initial begin
        cycle = 0; running = 0; src_valid = 0; in_count = 0; out_count = 0;
    end

    bit [{iw_hi}:0] next_data;
    bit next_last;
    always @(posedge clk) begin
        cycle <= cycle + 1;
        if (start) begin
            bfly_stream_open("{source}", "{accept}", "{sink}", {in_words}, {out_words});
            running <= n_pixels != 0;
            src_valid <= 0; src_sent <= 0; in_count <= 0; out_count <= 0;
            src_rnd <= src_seed == 0 ? 32'h1 : src_seed;
            sink_rnd <= sink_seed == 0 ? 32'h1 : sink_seed;
        end else if (running && !ext) begin
            src_rnd <= xorshift(src_rnd);
            sink_rnd <= xorshift(sink_rnd);
            if (src_valid && e_s_ready) begin
                bfly_stream_accepted(cycle);
                in_count <= in_count + 1;
            end
            if (!src_valid || e_s_ready) begin
                if (src_sent != n_pixels && !src_idle) begin
                    bfly_stream_next(next_data, next_last);
                    src_data <= next_data;
                    src_last <= next_last;
                    src_valid <= 1;
                    src_sent <= src_sent + 1;
                end else
                    src_valid <= 0;
            end
            if (e_m_valid && sink_ready) begin
                bfly_stream_put(cycle, e_m_last, e_m_data);
                out_count <= out_count + 1;
                if (out_count + 1 == n_pixels) begin
                    bfly_stream_close();
                    running <= 0;
                end
            end
        end
    end
endmodule
"""


def write_source(path, cfg, pixels, last):
    """Write the source file: ``pixels`` (``(N, n_in)`` integers) packed into the engine's input
    words (``cfg``'s layout), and their ``last`` flags."""
    words = pack_u32(pixels, cfg.data_bits, _pieces(stream_bits(cfg.n_in, cfg.data_bits)))
    rec = np.concatenate([words, np.asarray(last, dtype=np.uint32)[:, None]], axis=1)
    rec.astype("<u4").tofile(path)


def read_accepts(path):
    """The clock of every accepted pixel, in order (``int64``)."""
    return np.fromfile(path, dtype="<u8").astype(np.int64)


def read_sink(path, cfg):
    """``(cycles, last, pixels)`` of every pixel the engine of ``cfg`` delivered, in order."""
    rec = np.fromfile(path, dtype="<u4").reshape(-1, 3 + _pieces(stream_bits(cfg.n_out, cfg.data_bits)))
    cycles = (rec[:, 0].astype(np.int64) | (rec[:, 1].astype(np.int64) << 32))
    return cycles, rec[:, 2].astype(bool), unpack_u32(rec[:, 3:], cfg.n_out, cfg.data_bits)
