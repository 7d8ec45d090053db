// Verilator harness of the board top for `bfly sim-board`: clocks the real RTL (UART, host
// bridge, engine) and connects its UART to a TCP socket on 127.0.0.1, bit by bit, so the same
// driver that talks to a board over a serial port talks to this over socket://.
//
//   board_sim --port N --divisor D [--once]
//
// Bytes from the client are sent into uart_rx at D clocks per bit; bytes that the board sends on
// uart_tx go back to the client. Built with BYTE_LINK_CLOCKS defined, the top is the bridge and
// engines without the UART: a byte from the client goes into rx_data with rx_valid every
// BYTE_LINK_CLOCKS clocks, and tx_data bytes are taken as tx_valid shows them (tx_ready
// always high). The engines run in a clock domain of their own (engine_clk, a half period of
// ENGINE_HALF_PS picoseconds against the link clock's LINK_HALF_PS), as on a board with a PLL:
// every edge of either clock is evaluated in time order. Ctrl-C (SIGINT/SIGTERM) stops it cleanly; with --once it also stops when the
// first client disconnects. When a client leaves, it prints the clocks its session lasted and
// the bytes that went each way ("session: C clocks, I bytes in, O bytes out"), so a benchmark
// can measure the link in simulated time.

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "Vboard.h"
#include "verilated.h"

static volatile std::sig_atomic_t stop_requested = 0;
static void on_signal(int) { stop_requested = 1; }

int main(int argc, char **argv) {
    int port = 4321, divisor = 4;
    bool once = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--divisor") && i + 1 < argc) divisor = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--once")) once = true;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    int srv = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(srv, (sockaddr *)&addr, sizeof addr) != 0 || listen(srv, 1) != 0) {
        fprintf(stderr, "bfly sim-board: error: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    fcntl(srv, F_SETFL, O_NONBLOCK);
#ifdef BYTE_LINK_CLOCKS
    printf("listening on 127.0.0.1:%d (byte link, a byte every %d clocks)\n", port, BYTE_LINK_CLOCKS);
#else
    printf("listening on 127.0.0.1:%d (UART %d clocks per bit)\n", port, divisor);
#endif
    fflush(stdout);

    VerilatedContext ctx;
    Vboard top(&ctx);
    // one half period of the link clock, with the engine clock's edges that fall in it first
    unsigned long long now_ps = 0, next_engine_ps = ENGINE_HALF_PS;
    auto half_cycle = [&](int level) {
        now_ps += LINK_HALF_PS;
        while (next_engine_ps <= now_ps) {
            top.engine_clk = !top.engine_clk;
            top.eval();
            next_engine_ps += ENGINE_HALF_PS;
        }
        top.clk = level;
        top.eval();
    };
#ifdef BYTE_LINK_CLOCKS
    top.rx_valid = 0;
    top.tx_ready = 1;
#else
    top.uart_rx = 1;
#endif
    top.rst = 1;
    top.engine_rst = 1;
    for (int i = 0; i < 8; i++) { half_cycle(0); half_cycle(1); }
    top.rst = 0;
    top.engine_rst = 0;

    int client = -1;
    std::deque<unsigned char> to_board;
    int tx_bits = 0, tx_timer = 0;        // bits of the byte being sent into uart_rx
    unsigned tx_frame = 0;
    int rx_state = 0, rx_timer = 0, rx_bit = 0;
    unsigned rx_byte = 0;
    unsigned char out[4096];
    int out_len = 0;
    unsigned long idle = 0;
    unsigned long cycle = 0, session_start = 0, bytes_in = 0, bytes_out = 0;
    auto leave = [&]() {
        close(client);
        client = -1;
        to_board.clear();
        printf("session: %lu clocks, %lu bytes in, %lu bytes out\n", cycle - session_start, bytes_in, bytes_out);
        fflush(stdout);
    };

    while (!stop_requested) {
        if (client < 0) {
            client = accept(srv, nullptr, nullptr);
            if (client < 0) { usleep(2000); continue; }
            fcntl(client, F_SETFL, O_NONBLOCK);
            setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
            session_start = cycle;
            bytes_in = bytes_out = 0;
        }
#ifdef BYTE_LINK_CLOCKS
        // host -> board: a byte every BYTE_LINK_CLOCKS clocks; board -> host: every byte shown
        top.rx_valid = 0;
        if (tx_timer > 0) tx_timer--;
        if (tx_timer == 0 && !to_board.empty()) {
            top.rx_data = to_board.front();
            top.rx_valid = 1;
            to_board.pop_front();
            tx_timer = BYTE_LINK_CLOCKS;
        }
        half_cycle(0);
        if (top.tx_valid) out[out_len++] = top.tx_data;
        half_cycle(1);
        bool busy = !to_board.empty();
#else
        // host -> board: start the next byte on uart_rx
        if (tx_bits == 0 && !to_board.empty()) {
            tx_frame = (1u << 9) | ((unsigned)to_board.front() << 1);   // start 0, data, stop 1
            to_board.pop_front();
            tx_bits = 10;
            tx_timer = divisor;
        }
        top.uart_rx = tx_bits ? (tx_frame >> (10 - tx_bits)) & 1 : 1;
        half_cycle(0);
        half_cycle(1);
        if (tx_bits && --tx_timer == 0) { tx_bits--; tx_timer = divisor; }
        // board -> host: sample uart_tx in the middle of each bit
        switch (rx_state) {
        case 0: if (!top.uart_tx) { rx_state = 1; rx_timer = divisor + divisor / 2; rx_bit = 0; rx_byte = 0; } break;
        case 1:
            if (--rx_timer == 0) {
                rx_byte |= (unsigned)top.uart_tx << rx_bit;
                rx_timer = divisor;
                if (++rx_bit == 8) rx_state = 2;
            }
            break;
        case 2:
            if (--rx_timer == 0) { out[out_len++] = rx_byte; rx_state = 0; }
            break;
        }
        bool busy = tx_bits || rx_state || !to_board.empty();
#endif
        if ((++cycle & 255) == 0 || out_len == (int)sizeof out) {
            if (out_len && (rx_state == 0 || out_len == (int)sizeof out)) {
                if (send(client, out, out_len, 0) < 0 && errno != EAGAIN) { leave(); out_len = 0; if (once) break; continue; }
                bytes_out += out_len;
                out_len = 0;
            }
            unsigned char buf[4096];
            ssize_t n = recv(client, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                leave();
                if (once) break;
                continue;
            }
            if (n > 0) { to_board.insert(to_board.end(), buf, buf + n); bytes_in += n; }
            if (n > 0 || busy) idle = 0;
            else if (++idle > 4000) usleep(200);      // nothing to do for a while: do not spin
        }
    }
    if (client >= 0) close(client);
    close(srv);
    top.final();
    printf("bfly sim-board: stopped\n");
    return 0;
}
