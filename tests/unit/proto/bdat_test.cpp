// BDAT (RFC 3030) in the server session and the decoder's chunked framing;
// tests/golden/bdat*.in hold the transcripts (every malformed form, refusals,
// limits), each also run one byte at a time.
#include <gtest/gtest.h>

#include "proto/dot_stuffer.hpp"
#include "proto/server_session.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb::proto;
using smtplb::testing::golden_settings;
using smtplb::testing::run_transcript;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

struct WireSink : BodySink {
    std::string text;
    void append(std::string_view b) override { text.append(b); }
    BodyForm form() const override { return BodyForm::Transmission; }
};

constexpr const char* kEnvelope =
    "EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n";

// Answers everything with success; returns the session's output.
struct Driver {
    explicit Driver(const ServerSettings& settings) : s(settings) {
        s.set_body_sink(&body);
        s.start();
    }
    // Feeds `input` in pieces of `piece` bytes, answering as it goes.
    void run(const std::string& input, std::size_t piece) {
        std::size_t fed = 0;
        for (;;) {
            auto ev = s.next();
            out += s.output();
            s.output().clear();
            using K = ServerEvent::Kind;
            if (ev.kind == K::Close) return;
            if (ev.kind == K::NeedInput) {
                if (fed >= input.size()) return;
                auto n = std::min(piece, input.size() - fed);
                s.feed(std::string_view(input).substr(fed, n));
                fed += n;
                continue;
            }
            events.push_back(ev);
            if (ev.kind == K::Data) body.text.clear();
            if (ev.kind == K::Reset) continue;
            s.answer(ev.kind == K::Data         ? Reply::make(354, "", "Go ahead")
                     : ev.kind == K::MessageEnd ? Reply::make(250, "2.0.0", "Ok: queued")
                                                : Reply::make(250, "2.0.0", "Ok"));
        }
    }
    std::size_t count(ServerEvent::Kind kind) const {
        return std::count_if(events.begin(), events.end(),
                             [kind](const ServerEvent& e) { return e.kind == kind; });
    }
    WireSink body;
    ServerSession s;
    std::string out;
    std::vector<ServerEvent> events;
};

}  // namespace

TEST(Bdat, ChunkingIsOfferedUnlessTurnedOff) {
    auto settings = golden_settings();
    EXPECT_TRUE(contains(run_transcript(settings, "EHLO x\r\n", 100), "S: 250 CHUNKING"));
    settings.offer.chunking = false;
    EXPECT_FALSE(contains(run_transcript(settings, "EHLO x\r\n", 100), "CHUNKING"));
}

TEST(Bdat, ChunkSplitAcrossReadsIsStoredStuffedAndCountedAsContent) {
    // A dot line, a CRLF cut by the chunk boundary, a RCPT inside a chunk.
    std::string input = std::string(kEnvelope) + "BDAT 20\r\n.dot\r\nRCPT TO:<c@x>\r" +
                        "BDAT 6 LAST\r\n\nend\r\n" + "NOOP\r\n";
    for (std::size_t piece : {1u, 3u, 7u, 4096u}) {
        const auto settings = golden_settings();  // the session keeps a reference
        Driver d(settings);
        d.run(input, piece);
        EXPECT_EQ(d.count(ServerEvent::Kind::Rcpt), 1u) << piece;  // the envelope's only
        ASSERT_EQ(d.count(ServerEvent::Kind::MessageEnd), 1u) << piece;
        EXPECT_EQ(d.events.back().message_size, 26u);
        EXPECT_EQ(d.body.text, "..dot\r\nRCPT TO:<c@x>\r\nend\r\n") << piece;
        EXPECT_TRUE(contains(d.out, "250 2.0.0 Ok: 20 bytes\r\n250 2.0.0 Ok: queued\r\n")) << d.out;
        EXPECT_TRUE(contains(d.out, "250 2.0.0 Ok\r\n"));  // the NOOP after it
    }
}

TEST(Bdat, MessageSizeAtTheLimitIsTakenAndOneOctetMoreIsNot) {
    auto settings = golden_settings();  // max_message_size 2000
    std::string line(98, 'x');
    line += "\r\n";
    std::string at_limit;
    for (int i = 0; i < 20; ++i)
        at_limit += line;
    for (bool over : {false, true}) {
        std::string content = at_limit + (over ? "y" : "");
        std::string input = std::string(kEnvelope) + "BDAT 1000\r\n" + content.substr(0, 1000) +
                            "BDAT " + std::to_string(content.size() - 1000) + " LAST\r\n" +
                            content.substr(1000) + "QUIT\r\n";
        Driver d(settings);
        d.run(input, 512);
        ASSERT_EQ(d.count(ServerEvent::Kind::MessageEnd), 1u);
        EXPECT_EQ(d.events.back().data_outcome,
                  over ? DataDecoder::Outcome::TooBig : DataDecoder::Outcome::Ok);
        // The chunk is read to its end either way: QUIT is a command.
        EXPECT_TRUE(contains(d.out, "221 2.0.0 Bye")) << over;
    }
}

TEST(Bdat, ARefusedBdatHasItsOctetsDiscarded) {
    // No recipient yet: 554, and the RCPT and QUIT inside the chunk are not run.
    std::string input =
        "EHLO x\r\nMAIL FROM:<a@example.org>\r\nBDAT 31\r\nRCPT "
        "TO:<b@example.net>\r\nQUIT\r\nNOOP\r\n";
    const auto settings = golden_settings();  // the session keeps a reference
    Driver d(settings);
    d.run(input, 5);
    EXPECT_EQ(d.count(ServerEvent::Kind::Rcpt), 0u);
    EXPECT_TRUE(contains(d.out, "554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n"));
    EXPECT_FALSE(contains(d.out, "221"));
}

TEST(Bdat, AnUnreadableCountEndsTheSession) {
    for (const char* bad : {"BDAT", "BDAT x", "BDAT -1", "BDAT +5", "BDAT 5 LASTX", "BDAT 5 LAST X",
                            "BDAT 18446744073709551616", "BDAT 0x10"}) {
        const auto settings = golden_settings();  // the session keeps a reference
        Driver d(settings);
        d.run(std::string(kEnvelope) + bad + "\r\nNOOP\r\n", 4096);
        // The last word: the NOOP behind it is never run.
        EXPECT_TRUE(d.out.ends_with("\r\n521 5.5.4 Syntax: BDAT count [LAST]\r\n")) << bad;
    }
}

TEST(Bdat, ChunkedDecoderCompletesTheLastLineAndRefusesAFinalBareCr) {
    WireSink sink;
    DataDecoder d({}, &sink, DataDecoder::Framing::Chunked);
    EXPECT_EQ(d.feed(".\r\n.a\r\nno end"), 13u);
    EXPECT_FALSE(d.done());  // a '.' line is content, never the end
    d.finish();
    EXPECT_TRUE(d.done());
    EXPECT_EQ(d.outcome(), DataDecoder::Outcome::Ok);
    EXPECT_EQ(sink.text, "..\r\n..a\r\nno end\r\n");
    EXPECT_EQ(d.size(), 15u);
    DataDecoder cr({}, nullptr, DataDecoder::Framing::Chunked);
    cr.feed("x\r");
    cr.finish();
    EXPECT_EQ(cr.outcome(), DataDecoder::Outcome::BareLineEnding);
}

TEST(Bdat, StuffedStorageUnstuffsToTheChunksContent) {
    std::string content = ".\r\n..\r\nx.\r\n.y\r\n";
    WireSink sink;
    DataDecoder d({}, &sink, DataDecoder::Framing::Chunked);
    for (char c : content)
        d.feed(std::string_view(&c, 1));
    d.finish();
    std::string back;
    DotUnstuffer().decode(sink.text, back);
    EXPECT_EQ(back, content);
    EXPECT_EQ(d.size(), content.size());
}
