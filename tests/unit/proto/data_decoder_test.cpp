#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

#include "base/text.hpp"

#include "proto/data_decoder.hpp"
#include "proto/dot_stuffer.hpp"

using namespace smtplb::proto;

namespace {
std::string base_printable(std::string_view s) {
    return smtplb::base::printable(s, 200);
}
}  // namespace

namespace {
struct StringSink : BodySink {
    std::string text;
    void append(std::string_view b) override { text.append(b); }
};

struct TransmissionSink : StringSink {
    BodyForm form() const override { return BodyForm::Transmission; }
};

// Canonical content: up to 7 CRLF lines of dots and letters.
std::string random_lines(std::mt19937& rng, unsigned max_length) {
    const char alphabet[] = {'.', 'a'};
    std::string content;
    unsigned lines = rng() % 8;
    for (unsigned l = 0; l < lines; ++l) {
        unsigned length = rng() % (max_length + 1);
        for (unsigned i = 0; i < length; ++i)
            content += alphabet[rng() % 2];
        content += "\r\n";
    }
    return content;
}

// Hands `text` to `take` in pieces of 1 to 4 bytes, as a network might.
template <typename Take>
void in_random_pieces(std::string_view text, std::mt19937& rng, Take take) {
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t n = 1 + rng() % 4;
        take(text.substr(pos, n));
        pos += n;
    }
}

std::string stuffed(std::string_view content) {
    DotStuffer s;
    std::string out;
    s.encode(content, out);
    return out;
}

struct Decoded {
    bool done;
    DataDecoder::Outcome outcome;
    std::string body;
    std::size_t used;
};

Decoded decode(std::string_view in, BareLineEndings mode = BareLineEndings::Reject,
               bool byte_by_byte = false, std::uint64_t max_size = 1 << 20) {
    StringSink sink;
    DataDecoder d({max_size, 1000, mode}, &sink);
    std::size_t used = 0;
    if (byte_by_byte) {
        while (used < in.size() && !d.done())
            used += d.feed(in.substr(used, 1));
    } else {
        used = d.feed(in);
    }
    return {d.done(), d.outcome(), sink.text, used};
}
}  // namespace

TEST(DataDecoder, EndsOnlyAtCrLfDotCrLf) {
    auto r = decode("Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b>\r\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok);
    EXPECT_EQ(r.body, "Subject: x\r\n\r\nbody\r\n");
    EXPECT_EQ(r.used, std::string("Subject: x\r\n\r\nbody\r\n.\r\n").size());
}

TEST(DataDecoder, RemovesStuffingDots) {
    auto r = decode("..leading\r\n...\r\n.x\r\n.\r\n");
    EXPECT_EQ(r.body, ".leading\r\n..\r\nx\r\n");
}

// The SMTP smuggling end-of-data variants: none may end the message, in
// either mode; only the final <CRLF>.<CRLF> does.
class Smuggling : public ::testing::TestWithParam<const char*> {};

TEST_P(Smuggling, VariantNeverEndsTheMessage) {
    std::string variant = GetParam();
    std::string stream = "Subject: a\r\n\r\nfirst" + variant +
                         "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
                         "Subject: smuggled\r\n\r\nhello\r\n.\r\n";
    for (bool bytewise : {false, true}) {
        auto rejected = decode(stream, BareLineEndings::Reject, bytewise);
        EXPECT_TRUE(rejected.done);
        EXPECT_EQ(rejected.used, stream.size()) << "ended early";
        auto normalised = decode(stream, BareLineEndings::Normalise, bytewise);
        EXPECT_TRUE(normalised.done);
        EXPECT_EQ(normalised.used, stream.size()) << "ended early";
        EXPECT_NE(normalised.body.find("Subject: smuggled"), std::string::npos);
        // Everything the backend will get is CRLF-only.
        for (std::size_t i = 0; i < normalised.body.size(); ++i) {
            if (normalised.body[i] == '\n') {
                ASSERT_GT(i, 0u);
                EXPECT_EQ(normalised.body[i - 1], '\r');
            }
            if (normalised.body[i] == '\r') {
                ASSERT_LT(i + 1, normalised.body.size());
                EXPECT_EQ(normalised.body[i + 1], '\n');
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(EndOfDataVariants, Smuggling,
                         ::testing::Values("\n.\n", "\r.\r", "\r.\n", "\n.\r", "\n.\r\n", "\r\n.\n",
                                           "\r.\r\n", "\r\n.\r", "\r\r\n.\r\r\n", "\n.\n\n",
                                           "\r\n.\r\r\n"));

TEST(DataDecoder, NulDotIsNotTheEnd) {
    std::string stream("a\r\n\0.\r\nb\r\n.\r\n", 13);
    auto r = decode(stream);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.used, stream.size());
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::NulByte);
}

namespace {
using namespace std::string_literals;

// Decodes `in` with `nul` in every way a network could cut it: whole, byte
// by byte, and in two pieces at each position; all must agree, and the
// Transmission form must be the stuffed content. Returns the whole decode.
Decoded decode_everyhow(const std::string& in, NulBytes nul,
                        BareLineEndings bare = BareLineEndings::Reject) {
    auto run = [&](BodySink& sink, const std::vector<std::size_t>& cuts) {
        DataDecoder d({1 << 20, 1000, bare, nul}, &sink);
        std::size_t used = 0;
        for (std::size_t cut : cuts) {
            while (used < cut && !d.done())
                used += d.feed(std::string_view(in).substr(used, cut - used));
        }
        return std::tuple{d.done(), d.outcome(), used, d.size()};
    };
    StringSink whole_sink;
    auto whole = run(whole_sink, {in.size()});
    std::vector<std::vector<std::size_t>> ways;
    std::vector<std::size_t> bytewise;
    for (std::size_t i = 1; i <= in.size(); ++i)
        bytewise.push_back(i);
    ways.push_back(bytewise);
    for (std::size_t cut = 1; cut < in.size(); ++cut)
        ways.push_back({cut, in.size()});
    for (const auto& cuts : ways) {
        StringSink sink;
        TransmissionSink wire;
        auto pieces = run(sink, cuts);
        auto framed = run(wire, cuts);
        EXPECT_EQ(pieces, whole) << base_printable(in) << " cut at " << cuts.front();
        EXPECT_EQ(framed, whole) << base_printable(in) << " cut at " << cuts.front();
        if (std::get<1>(whole) == DataDecoder::Outcome::Ok) {
            EXPECT_EQ(sink.text, whole_sink.text)
                << base_printable(in) << " cut at " << cuts.front();
            EXPECT_EQ(wire.text, stuffed(whole_sink.text))
                << base_printable(in) << " cut at " << cuts.front();
        }
    }
    return {std::get<0>(whole), std::get<1>(whole), whole_sink.text, std::get<2>(whole)};
}

struct NulCase {
    std::string in;        // the DATA stream, end of data included
    std::string stripped;  // the content in strip mode
};

// NUL octets where a line starts, inside one, alone on the line before the
// final dot, beside the dots that a NUL-blind backend would take for the end,
// and in runs across the 16-byte scan.
const std::vector<NulCase> kNulCases = {
    {"a\r\n\0b\r\n.\r\n"s, "a\r\nb\r\n"},
    {"a\0b\r\nc\0\r\n.\r\n"s, "ab\r\nc\r\n"},
    {"a\r\n\0.\r\n.\r\n"s, "a\r\n.\r\n"},
    {"a\r\n\0\r\n.\r\n"s, "a\r\n\r\n"},
    {"a\r\n.\0\r\n.\r\n"s, "a\r\n\r\n"},
    {"a\r\n\0.\0\r\n.\r\n"s, "a\r\n.\r\n"},
    {"\0..x\r\n.\0.y\r\n.\r\n"s, "..x\r\n.y\r\n"},
    {"\0\r\n.\r\n"s, "\r\n"},
    {"0123456789abcdefghij\0\0\0klmnopqrstuvwxyz0123456789\0\r\n.\r\n"s,
     "0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n"},
    {"Subject: a\r\n\r\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0.\r\nMAIL FROM:<e@x>\r\n.\r\n"s,
     "Subject: a\r\n\r\n.\r\nMAIL FROM:<e@x>\r\n"},
};
}  // namespace

TEST(DataDecoder, NulBytesAreRefusedByDefaultWhereverTheyAre) {
    for (const auto& c : kNulCases) {
        auto r = decode_everyhow(c.in, NulBytes::Reject);
        EXPECT_TRUE(r.done) << base_printable(c.in);
        EXPECT_EQ(r.used, c.in.size()) << base_printable(c.in) << ": ended early";
        EXPECT_EQ(r.outcome, DataDecoder::Outcome::NulByte) << base_printable(c.in);
    }
    // The default limits refuse them too.
    StringSink sink;
    DataDecoder d({}, &sink);
    d.feed("a\0\r\n.\r\n"s);
    EXPECT_EQ(d.outcome(), DataDecoder::Outcome::NulByte);
}

TEST(DataDecoder, NulBytesAreStrippedAfterFraming) {
    for (const auto& c : kNulCases) {
        auto r = decode_everyhow(c.in, NulBytes::Strip);
        EXPECT_TRUE(r.done) << base_printable(c.in);
        EXPECT_EQ(r.used, c.in.size()) << base_printable(c.in) << ": ended early";
        EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok) << base_printable(c.in);
        EXPECT_EQ(r.body, c.stripped) << base_printable(c.in);
    }
}

TEST(DataDecoder, KeptNulBytesAreOrdinaryContent) {
    for (const auto& c : kNulCases) {
        auto r = decode_everyhow(c.in, NulBytes::Keep);
        EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok) << base_printable(c.in);
        EXPECT_EQ(r.used, c.in.size()) << base_printable(c.in);
        auto nuls = [](const std::string& t) { return std::count(t.begin(), t.end(), '\0'); };
        EXPECT_EQ(nuls(r.body), nuls(c.in)) << base_printable(c.in);
    }
}

TEST(DataDecoder, FirstProblemDecidesBetweenNulAndBareLineEnding) {
    EXPECT_EQ(decode_everyhow("a\0\nb\r\n.\r\n"s, NulBytes::Reject).outcome,
              DataDecoder::Outcome::NulByte);
    EXPECT_EQ(decode_everyhow("a\nb\0\r\n.\r\n"s, NulBytes::Reject).outcome,
              DataDecoder::Outcome::BareLineEnding);
    // Stripped and normalised: "<CR><NUL><LF>" is a bare CR, then a bare LF.
    auto r = decode_everyhow("a\r\0\nb\r\n.\r\n"s, NulBytes::Strip, BareLineEndings::Normalise);
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok);
    EXPECT_EQ(r.body, "a\r\n\r\nb\r\n");
}

TEST(DataDecoder, StrippedNulBytesCountAgainstTheLimits) {
    StringSink sink;
    DataDecoder line({1 << 20, 1000, BareLineEndings::Reject, NulBytes::Strip}, &sink);
    std::string long_line = "x" + std::string(1500, '\0') + "\r\n.\r\n";
    EXPECT_EQ(line.feed(long_line), long_line.size());
    EXPECT_EQ(line.outcome(), DataDecoder::Outcome::LineTooLong);
    std::string many;
    for (int i = 0; i < 50; ++i)
        many += std::string(98, '\0') + "\r\n";
    many += ".\r\nNOOP\r\n";
    DataDecoder size({1000, 1000, BareLineEndings::Reject, NulBytes::Strip}, &sink);
    EXPECT_EQ(size.feed(many), many.size() - 6);
    EXPECT_TRUE(size.done());
    EXPECT_EQ(size.outcome(), DataDecoder::Outcome::TooBig);
}

// The smuggling variants a NUL-blind backend reads as the end of data: none
// ends the message here, in any mode, whole or byte by byte.
TEST(DataDecoder, NulSmugglingVariantsNeverEndTheMessage) {
    for (std::string variant :
         {"\r\n\0.\r\n"s, "\r\n.\0\r\n"s, "\r\n\0.\0\r\n"s, "\r\n\0\0.\r\n"s, "\r\n.\0\0\r\n"s}) {
        std::string stream = "Subject: a\r\n\r\nfirst" + variant +
                             "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\n"
                             "DATA\r\nSubject: smuggled\r\n\r\nhello\r\n.\r\n";
        for (auto nul : {NulBytes::Reject, NulBytes::Strip, NulBytes::Keep}) {
            auto r = decode_everyhow(stream, nul);
            EXPECT_TRUE(r.done);
            EXPECT_EQ(r.used, stream.size()) << base_printable(variant) << ": ended early";
            if (nul == NulBytes::Reject) {
                EXPECT_EQ(r.outcome, DataDecoder::Outcome::NulByte);
            } else {
                EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok);
                EXPECT_NE(r.body.find("Subject: smuggled"), std::string::npos);
            }
            if (nul == NulBytes::Strip) {
                EXPECT_EQ(r.body.find('\0'), std::string::npos);
            }
        }
    }
}

TEST(DataDecoder, RejectModeFlagsBareLineEndings) {
    EXPECT_EQ(decode("a\nb\r\n.\r\n").outcome, DataDecoder::Outcome::BareLineEnding);
    EXPECT_EQ(decode("a\rb\r\n.\r\n").outcome, DataDecoder::Outcome::BareLineEnding);
    EXPECT_EQ(decode("a\r\nb\r\n.\r\n").outcome, DataDecoder::Outcome::Ok);
}

TEST(DataDecoder, NormaliseModeRewritesToCrLf) {
    auto r = decode("a\nb\rc\r\n.\r\n", BareLineEndings::Normalise);
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::Ok);
    EXPECT_EQ(r.body, "a\r\nb\r\nc\r\n");
}

TEST(DataDecoder, SizeLimitStopsStoringButFindsTheEnd) {
    std::string big;
    for (int i = 0; i < 50; ++i)
        big += std::string(98, 'x') + "\r\n";
    auto r = decode(big + ".\r\nNOOP\r\n", BareLineEndings::Reject, false, 1000);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::TooBig);
    EXPECT_LE(r.body.size(), 1000u);
    EXPECT_EQ(r.used, big.size() + 3);
}

TEST(DataDecoder, LineLengthLimit) {
    auto r = decode(std::string(1500, 'x') + "\r\n.\r\n");
    EXPECT_EQ(r.outcome, DataDecoder::Outcome::LineTooLong);
}

TEST(DotStuffer, StuffsAndTerminates) {
    DotStuffer s;
    std::string out;
    s.encode(".a\r\nb\r\n..\r\n", out);
    s.finish(out);
    EXPECT_EQ(out, "..a\r\nb\r\n...\r\n.\r\n");
    DotStuffer empty;
    std::string e;
    empty.finish(e);
    EXPECT_EQ(e, ".\r\n");
}

TEST(DotStuffer, RoundTripsRandomContentInRandomChunks) {
    std::mt19937 rng(42);
    for (int round = 0; round < 500; ++round) {
        std::string content = random_lines(rng, 5);
        DotStuffer s;
        std::string wire;
        in_random_pieces(content, rng, [&](std::string_view piece) { s.encode(piece, wire); });
        s.finish(wire);
        auto back = decode(wire, BareLineEndings::Reject, round % 2 == 0);
        ASSERT_TRUE(back.done);
        EXPECT_EQ(back.used, wire.size());
        EXPECT_EQ(back.body, content);
    }
}

TEST(DataDecoder, TransmissionFormKeepsTheStuffingAndCountsContent) {
    TransmissionSink sink;
    DataDecoder d({1 << 20, 1000, BareLineEndings::Reject}, &sink);
    std::string in = "..leading\r\n...\r\n.x\r\nplain\r\n.\r\n";
    EXPECT_EQ(d.feed(in), in.size());
    EXPECT_TRUE(d.done());
    // ".x" is stuffing before "x": sent on as "x", which means the same.
    EXPECT_EQ(sink.text, "..leading\r\n...\r\nx\r\nplain\r\n");
    EXPECT_EQ(d.size(), std::string(".leading\r\n..\r\nx\r\nplain\r\n").size());
}

TEST(DataDecoder, TransmissionFormIsTheStuffedContentWhateverTheInput) {
    // Random streams of dots, letters, CR and LF, in both modes, in pieces
    // and whole: what a transmission sink gets is exactly the content a
    // content sink gets, stuffed, and of the same counted size.
    std::mt19937 rng(7);
    const char alphabet[] = {'.', 'a', '\r', '\n'};
    for (int round = 0; round < 2000; ++round) {
        std::string in;
        int len = static_cast<int>(rng() % 40);
        for (int i = 0; i < len; ++i)
            in += alphabet[rng() % 4];
        in += "\r\n.\r\n";
        auto mode = round % 2 ? BareLineEndings::Normalise : BareLineEndings::Reject;
        StringSink content;
        DataDecoder plain({1 << 20, 1000, mode}, &content);
        std::size_t used = plain.feed(in);
        TransmissionSink wire;
        DataDecoder framed({1 << 20, 1000, mode}, &wire);
        std::size_t framed_used = 0;
        std::size_t step = 1 + rng() % 5;
        while (framed_used < in.size() && !framed.done())
            framed_used += framed.feed(std::string_view(in).substr(framed_used, step));
        ASSERT_EQ(framed_used, used) << in;
        ASSERT_EQ(framed.outcome(), plain.outcome()) << in;
        ASSERT_EQ(framed.size(), plain.size()) << in;
        if (plain.outcome() == DataDecoder::Outcome::Ok) {
            ASSERT_EQ(wire.text, stuffed(content.text)) << in;
        }
    }
}

TEST(DotUnstuffer, UndoesStuffingAcrossChunkBoundaries) {
    std::mt19937 rng(11);
    for (int round = 0; round < 500; ++round) {
        std::string content = random_lines(rng, 4);
        std::string wire = stuffed(content);
        DotUnstuffer u;
        std::string back;
        in_random_pieces(wire, rng, [&](std::string_view piece) { u.decode(piece, back); });
        ASSERT_EQ(back, content) << wire;
    }
}
