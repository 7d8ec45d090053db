// DPI side of the fast stream harness (bfly.sim.harness): the source reads the pixels NumPy
// wrote, the sink and the accept log collect in memory and are written when the stream ends.
//
// Files (little-endian 32-bit pieces, as bfly.sim.harness reads and writes them):
//   source:   per pixel, in_words pieces of the pixel word, then one piece holding `last`
//   accepted: per accepted pixel, the 64-bit clock of its handshake
//   sink:     per delivered pixel, the 64-bit clock, one piece holding `last`, out_words pieces

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "svdpi.h"

namespace {
std::vector<uint32_t> src, acc, out;
size_t src_pos;
int in_words, out_words;
std::string acc_path, out_path;

void fail(const char *what, const std::string &path) {
    std::fprintf(stderr, "bfly harness: cannot %s %s\n", what, path.c_str());
    std::exit(2);
}

void write_all(const std::string &path, const std::vector<uint32_t> &v) {
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(v.data(), 4, v.size(), f) != v.size() || std::fclose(f) != 0)
        fail("write", path);
}
}  // namespace

extern "C" void bfly_stream_open(const char *src_path, const char *acc_file, const char *out_file,
                                 int in_w, int out_w) {
    in_words = in_w;
    out_words = out_w;
    acc_path = acc_file;
    out_path = out_file;
    FILE *f = std::fopen(src_path, "rb");
    if (!f) fail("read", src_path);
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    src.assign(size / 4, 0);
    if (std::fread(src.data(), 4, src.size(), f) != src.size()) fail("read", src_path);
    std::fclose(f);
    src_pos = 0;
    acc.clear();
    out.clear();
}

extern "C" void bfly_stream_next(svBitVecVal *data, svBit *last) {
    if (src_pos + in_words + 1 > src.size()) fail("read past the end of", "the source file");
    for (int i = 0; i < in_words; i++) data[i] = src[src_pos + i];
    *last = src[src_pos + in_words] & 1;
    src_pos += in_words + 1;
}

extern "C" void bfly_stream_accepted(long long cycle) {
    acc.push_back(uint32_t(cycle));
    acc.push_back(uint32_t(uint64_t(cycle) >> 32));
}

extern "C" void bfly_stream_put(long long cycle, svBit last, const svBitVecVal *data) {
    out.push_back(uint32_t(cycle));
    out.push_back(uint32_t(uint64_t(cycle) >> 32));
    out.push_back(last);
    for (int i = 0; i < out_words; i++) out.push_back(data[i]);
}

extern "C" void bfly_stream_close() {
    write_all(acc_path, acc);
    write_all(out_path, out);
}
