// Cycle loop around a Verilated convhw core (the AXI4-Stream top of convhw.export.to_verilog).
//
// It mirrors convhw.harness.pysim cycle for cycle: the same producer (coefficient writes, then
// pixels, stalls drawn only while no pixel is offered), the same consumer (a stall drawn every
// cycle), the same SplitMix64 stall patterns as convhw.stalls, the same cycle counting and the
// same protocol checks (valid following ready, payload changing before its transfer). In cycle c the inputs are set and the design settles with the
// clock low (that is what pysim samples at the edge), then the clock rises.
//
//   usage: Vdut JOB OUT [VCD]
//
// JOB (little-endian): 16 uint64 header words (see kHeader), then n_frames * pixels * IN_WORDS
// uint32 words (row-major beats, least significant word first, already masked), then
// n_frames * taps coefficient writes of two uint32 each (address, value masked to coeff_bits).
// OUT: 8 int64 header words (status, outputs, first_in, last_out, cycles, n_errors, words, 0),
// then n_errors int64 errors (2 * cycle + ErrorKind, in pysim's order), outputs * words uint32
// data words (least significant first), outputs uint8 markers (bit 0 first, bit 1 last).
// Status 0: done; 1: the cycle limit passed.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "Vdut.h"
#include "verilated.h"
#ifdef CONVHW_TRACE
#include "verilated_vcd_c.h"
#endif

#ifndef OUT_WORDS
#error "OUT_WORDS (32-bit words of m_axis_tdata) must be defined"
#endif
#ifndef IN_WORDS
#define IN_WORDS 1
#endif

namespace {

enum Header {
    kMagic, kFrames, kPixels, kRowWidth, kOutSize, kTaps, kInKey, kInThreshold,
    kOutKey, kOutThreshold, kLimit, kHeader = 16
};
const uint64_t kJobMagic = 0x314d495348564e43ull;  // "CNVHSIM1"
// An error is reported as 2 * cycle + kind.
enum ErrorKind { kValidFollowsReady = 0, kUnstablePayload = 1 };

uint64_t splitmix64(uint64_t value) {
    value += 0x9E3779B97F4A7C15ull;
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
    value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
    return value ^ (value >> 31);
}

struct Stall {
    uint64_t key, threshold;
    bool operator()(uint64_t cycle) const {
        return threshold > 0 && splitmix64(key ^ cycle) < threshold;
    }
};

// m_axis_tdata is an integer of 8 to 64 bits, or a VlWide above 64 bits.
template <typename T>
void read_words(const T &value, uint32_t *out) {
    uint64_t bits = static_cast<uint64_t>(value);
    out[0] = static_cast<uint32_t>(bits);
    if (OUT_WORDS > 1) out[1] = static_cast<uint32_t>(bits >> 32);
}
template <std::size_t N>
void read_words(const VlWide<N> &value, uint32_t *out) {
    for (std::size_t i = 0; i < N; i++) out[i] = value.at(i);
}

// s_axis_tdata likewise.
template <typename T>
void write_words(T &value, const uint32_t *in) {
    uint64_t bits = in[0];
    if (IN_WORDS > 1) bits |= static_cast<uint64_t>(in[1]) << 32;
    value = static_cast<T>(bits);
}
template <std::size_t N>
void write_words(VlWide<N> &value, const uint32_t *in) {
    for (std::size_t i = 0; i < N; i++) value.at(i) = in[i];
}

bool read_file(const char *path, std::vector<uint8_t> &bytes) {
    FILE *file = std::fopen(path, "rb");
    if (!file) return false;
    std::fseek(file, 0, SEEK_END);
    long size = std::ftell(file);
    std::fseek(file, 0, SEEK_SET);
    bytes.resize(size);
    bool ok = std::fread(bytes.data(), 1, size, file) == static_cast<size_t>(size);
    std::fclose(file);
    return ok;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s JOB OUT [VCD]\n", argv[0]);
        return 2;
    }
    std::vector<uint8_t> job;
    if (!read_file(argv[1], job) || job.size() < kHeader * 8) {
        std::fprintf(stderr, "cannot read job file %s\n", argv[1]);
        return 2;
    }
    uint64_t header[kHeader];
    std::memcpy(header, job.data(), sizeof header);
    const uint64_t frames = header[kFrames], pixels = header[kPixels];
    const uint64_t row_width = header[kRowWidth], taps = header[kTaps];
    const uint64_t expected = frames * header[kOutSize], limit = header[kLimit];
    if (header[kMagic] != kJobMagic ||
        job.size() != (kHeader * 2 + frames * pixels * IN_WORDS + frames * taps * 2) * 4) {
        std::fprintf(stderr, "malformed job file %s\n", argv[1]);
        return 2;
    }
    const uint32_t *pixel_data = reinterpret_cast<const uint32_t *>(job.data() + kHeader * 8);
    const uint32_t *coef_data = pixel_data + frames * pixels * IN_WORDS;
    const Stall stall_in{header[kInKey], header[kInThreshold]};
    const Stall stall_out{header[kOutKey], header[kOutThreshold]};

    auto context = std::make_unique<VerilatedContext>();
    auto dut = std::make_unique<Vdut>(context.get());
#ifdef CONVHW_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
    if (argc > 3) {
        context->traceEverOn(true);
        vcd = std::make_unique<VerilatedVcdC>();
        dut->trace(vcd.get(), 99);
        vcd->open(argv[3]);
    }
#endif

    std::vector<uint32_t> out_words;
    std::vector<uint8_t> markers;
    std::vector<int64_t> errors;
    out_words.reserve(expected * OUT_WORDS);
    markers.reserve(expected);

    // Producer state: frame, then its coefficient writes (coef < taps), then its pixels.
    uint64_t frame = 0, coef = 0, pixel = 0;
    bool offering = false, producing = frames > 0;
    // Consumer state: the payload offered but not taken in the previous cycle.
    bool waiting = false;
    uint32_t waiting_words[OUT_WORDS] = {0};
    uint8_t waiting_marker = 0;
    int64_t first_in = -1, last_out = 0;
    uint64_t cycle = 0, outputs = 0;
    int status = 0;

    dut->clk = 0;
    dut->rst = 0;
    dut->eval();
    while (outputs < expected) {
        // Inputs of this cycle.
        bool coef_write = false;
        if (producing) {
            if (taps && coef < taps) {
                dut->s_axis_tvalid = 0;
#ifdef CONVHW_COEF
                dut->coef_addr = coef_data[(frame * taps + coef) * 2];
                dut->coef_data = coef_data[(frame * taps + coef) * 2 + 1];
                dut->coef_we = 1;
#endif
                coef_write = true;
            } else {
#ifdef CONVHW_COEF
                dut->coef_we = 0;
#endif
                if (!offering) {
                    if (stall_in(cycle)) {
                        dut->s_axis_tvalid = 0;
                    } else {
                        uint64_t x = pixel % row_width;
                        write_words(dut->s_axis_tdata,
                                    pixel_data + (frame * pixels + pixel) * IN_WORDS);
                        dut->s_axis_tuser = pixel == 0;
                        dut->s_axis_tlast = x == row_width - 1;
                        dut->s_axis_tvalid = 1;
                        offering = true;
                    }
                }
            }
        }
        // The consumer runs after the producer in a cycle; like pysim, it checks that changing
        // ready does not change valid (not on the first cycle, where ready is first set).
        const bool ready = !stall_out(cycle);
        dut->clk = 0;
        if (cycle > 0 && ready != static_cast<bool>(dut->m_axis_tready)) {
            dut->eval();
            const bool valid_before = dut->m_axis_tvalid;
            dut->m_axis_tready = ready;
            dut->eval();
            if (static_cast<bool>(dut->m_axis_tvalid) != valid_before) {
                errors.push_back(static_cast<int64_t>(cycle) * 2 + kValidFollowsReady);
            }
        } else {
            dut->m_axis_tready = ready;
            dut->eval();
        }
#ifdef CONVHW_TRACE
        if (vcd) vcd->dump(cycle * 10);
#endif

        // What pysim samples at the edge.
        const bool in_ready = dut->s_axis_tready;
        const bool valid = dut->m_axis_tvalid;
        uint32_t words[OUT_WORDS];
        read_words(dut->m_axis_tdata, words);
        const uint8_t marker = (dut->m_axis_tuser ? 1 : 0) | (dut->m_axis_tlast ? 2 : 0);

        dut->clk = 1;
        dut->eval();
#ifdef CONVHW_TRACE
        if (vcd) vcd->dump(cycle * 10 + 5);
#endif

        // Producer after the edge.
        if (coef_write) {
            coef++;
        } else if (offering && in_ready) {
            offering = false;
            if (first_in < 0) first_in = static_cast<int64_t>(cycle);
            if (++pixel == pixels) {
                pixel = 0;
                coef = 0;
                if (++frame == frames) {
                    producing = false;
                    dut->s_axis_tvalid = 0;
                }
            }
        }
        // Consumer after the edge.
        if (waiting && (!valid || marker != waiting_marker ||
                        std::memcmp(words, waiting_words, sizeof words) != 0)) {
            errors.push_back(static_cast<int64_t>(cycle) * 2 + kUnstablePayload);
        }
        waiting = valid && !ready;
        if (waiting) {
            std::memcpy(waiting_words, words, sizeof words);
            waiting_marker = marker;
        }
        if (valid && ready) {
            out_words.insert(out_words.end(), words, words + OUT_WORDS);
            markers.push_back(marker);
            outputs++;
            last_out = static_cast<int64_t>(cycle);
        }
        cycle++;
        if (cycle > limit) {
            status = 1;
            break;
        }
    }
#ifdef CONVHW_TRACE
    if (vcd) vcd->close();
#endif
    dut->final();

    FILE *file = std::fopen(argv[2], "wb");
    if (!file) {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    int64_t result[8] = {status, static_cast<int64_t>(outputs), first_in, last_out,
                         static_cast<int64_t>(cycle), static_cast<int64_t>(errors.size()),
                         OUT_WORDS, 0};
    bool ok = std::fwrite(result, sizeof result, 1, file) == 1;
    ok &= std::fwrite(errors.data(), sizeof(int64_t), errors.size(), file) == errors.size();
    ok &= std::fwrite(out_words.data(), sizeof(uint32_t), out_words.size(), file) ==
          out_words.size();
    ok &= std::fwrite(markers.data(), 1, markers.size(), file) == markers.size();
    ok &= std::fclose(file) == 0;
    return ok ? 0 : 2;
}
