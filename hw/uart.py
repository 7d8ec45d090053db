"""8N1 UART receiver and transmitter with a fixed divisor (clocks per bit)."""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx"]


class _UART(wiring.Component):
    def __init__(self, divisor):
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor (clocks per bit) must be an integer >= 4, not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor


class UARTRx(_UART):
    """Receives bytes on ``rx`` (idle high). Each byte is offered on ``o_stream`` for one cycle
    (``valid`` only: a UART cannot be held back); ``error`` pulses on a missing stop bit."""

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8, always_ready=True))
    error: Out(1)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        rx_s = Signal(init=1)
        rx_ss = Signal(init=1)
        m.d.sync += [rx_s.eq(self.rx), rx_ss.eq(rx_s)]      # two-flop synchronizer
        timer = Signal(range(div + div // 2 + 1))
        bit = Signal(range(10))
        shreg = Signal(8)
        m.d.sync += [self.o_stream.valid.eq(0), self.error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx_ss):
                    m.d.sync += [timer.eq(div + div // 2 - 1), bit.eq(0)]   # to the middle of bit 0
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx_ss)), timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx_ss):
                        m.d.sync += [self.o_stream.payload.eq(shreg), self.o_stream.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(_UART):
    """Sends the bytes of ``i_stream`` on ``tx`` (idle high)."""

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        shreg = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.i_stream.ready.eq(bits == 0), self.tx.eq(shreg[0])]
        with m.If(bits == 0):
            with m.If(self.i_stream.valid):
                m.d.sync += [shreg.eq(Cat(0, self.i_stream.payload, 1)), bits.eq(10), timer.eq(div - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1), timer.eq(div - 1)]
        return m
