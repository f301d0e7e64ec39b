// DATA framing: the end is found exactly once, memory stays bounded, the
// input decodes the same in pieces and all at once, and what is decoded
// re-encodes to a stream that decodes to the same content. NUL octets never
// move the end (every NUL mode finds it at the same byte); refused, none is
// in an accepted message; stripped, the content is the kept content without
// them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/data_decoder.hpp"
#include "proto/dot_stuffer.hpp"

namespace {
struct Sink : smtplb::proto::BodySink {
    std::string text;
    void append(std::string_view b) override { text.append(b); }
};
struct WireSink : Sink {
    smtplb::proto::BodyForm form() const override { return smtplb::proto::BodyForm::Transmission; }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    using namespace smtplb::proto;
    auto mode = data[0] & 1 ? BareLineEndings::Normalise : BareLineEndings::Reject;
    const NulBytes nul_modes[] = {NulBytes::Reject, NulBytes::Strip, NulBytes::Keep,
                                  NulBytes::Reject};
    auto nul = nul_modes[(data[0] >> 1) & 3];
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    Sink sink;
    DataDecoder d({1 << 16, 1000, mode, nul}, &sink);
    // Feed in uneven pieces, as the network would.
    std::size_t used = 0, step = 1 + (data[0] >> 3) % 7;
    while (used < in.size() && !d.done())
        used += d.feed(in.substr(used, step));
    if (sink.text.size() > (1 << 16)) __builtin_trap();
    // All at once (the fast path for whole lines) must decode exactly as
    // the pieces did: same end, outcome, size and content.
    Sink whole_sink;
    DataDecoder whole({1 << 16, 1000, mode, nul}, &whole_sink);
    std::size_t whole_used = whole.feed(in);
    // (What a failed message left in the sink differs, and is thrown away.)
    if (whole_used != used || whole.done() != d.done() || whole.outcome() != d.outcome() ||
        whole.size() != d.size() ||
        (d.outcome() == DataDecoder::Outcome::Ok && whole_sink.text != sink.text))
        __builtin_trap();
    // Kept in transmission form, as the balancer stores a message: the
    // same content, stuffed, and the same counted size.
    WireSink wire_sink;
    DataDecoder framed({1 << 16, 1000, mode, nul}, &wire_sink);
    if (framed.feed(in) != used || framed.outcome() != d.outcome() || framed.size() != d.size())
        __builtin_trap();
    if (d.outcome() == DataDecoder::Outcome::Ok) {
        std::string expected;
        DotStuffer s;
        s.encode(sink.text, expected);
        if (wire_sink.text != expected) __builtin_trap();
        std::string back;
        DotUnstuffer u;
        u.decode(wire_sink.text, back);
        if (back != sink.text) __builtin_trap();
    }
    // The same stream with NUL octets kept as content: the same end, and
    // the same outcome unless a NUL was refused.
    Sink kept_sink;
    DataDecoder kept({1 << 16, 1000, mode, NulBytes::Keep}, &kept_sink);
    if (kept.feed(in) != used) __builtin_trap();
    const bool has_nul = in.substr(0, used).find('\0') != std::string_view::npos;
    if (nul == NulBytes::Reject) {
        if (d.outcome() == DataDecoder::Outcome::Ok && has_nul) __builtin_trap();
        if (!has_nul && d.outcome() != kept.outcome()) __builtin_trap();
        if (has_nul && kept.outcome() == DataDecoder::Outcome::Ok &&
            d.outcome() != DataDecoder::Outcome::NulByte)
            __builtin_trap();
    } else if (nul == NulBytes::Strip) {
        if (sink.text.find('\0') != std::string::npos) __builtin_trap();
        if (d.outcome() != kept.outcome()) __builtin_trap();
        if (d.outcome() == DataDecoder::Outcome::Ok) {
            std::string without = kept_sink.text;
            without.erase(std::remove(without.begin(), without.end(), '\0'), without.end());
            if (without != sink.text) __builtin_trap();
        }
    }
    if (d.done() && d.outcome() == DataDecoder::Outcome::Ok) {
        std::string wire;
        DotStuffer s;
        s.encode(sink.text, wire);
        s.finish(wire);
        Sink again;
        DataDecoder d2({1 << 17, 1 << 17, BareLineEndings::Reject, NulBytes::Keep}, &again);
        if (d2.feed(wire) != wire.size() || !d2.done() || again.text != sink.text) __builtin_trap();
    }
    return 0;
}
