#include <gtest/gtest.h>

#include "proto/server_session.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb::proto;
using smtplb::testing::golden_settings;
using smtplb::testing::run_transcript;

namespace {
bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}
}  // namespace

TEST(ServerSession, GreetingAndEhloAdvertiseOnlyWhatWorks) {
    auto t = run_transcript(golden_settings(), "EHLO x\r\n", 100);
    EXPECT_TRUE(contains(t, "S: 220 mx.test ESMTP"));
    EXPECT_TRUE(contains(t, "S: 250-PIPELINING"));
    EXPECT_TRUE(contains(t, "S: 250-SIZE 2000"));
    EXPECT_TRUE(contains(t, "S: 250-8BITMIME"));
    EXPECT_TRUE(contains(t, "S: 250 CHUNKING"));  // BDAT works (bdat_test.cpp)
    EXPECT_FALSE(contains(t, "STARTTLS"));
    EXPECT_FALSE(contains(t, "XCLIENT"));
}

TEST(ServerSession, PipelinedRepliesKeepOrderWhileAnEventIsPending) {
    ServerSettings settings = golden_settings();
    ServerSession s(settings);
    s.start();
    s.output().clear();
    s.feed("EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nNOOP\r\n");
    auto ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Mail);
    // Nothing behind MAIL is processed until it is answered.
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::NeedInput);
    EXPECT_FALSE(contains(s.output(), "NOOP"));
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Rcpt);
    s.answer(Reply::make(250, "2.1.5", "Ok"));
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::NeedInput);
    auto out = s.output();
    auto mail = out.find("250 2.1.0"), rcpt = out.find("250 2.1.5"), noop = out.rfind("250 2.0.0");
    EXPECT_LT(mail, rcpt);
    EXPECT_LT(rcpt, noop);
}

// smtplb passes a client's pipelined recipients on together: each Rcpt is
// deferred, and the session goes on to the next one only.
TEST(ServerSession, DeferredRecipientsAreAnsweredInOrderBeforeAnythingElse) {
    ServerSettings settings = golden_settings();
    settings.max_recipients = 3;
    ServerSession s(settings);
    s.start();
    s.feed("EHLO x\r\nMAIL FROM:<a@b.example>\r\n");
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Mail);
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::NeedInput);
    s.output().clear();
    s.feed(
        "RCPT TO:<1@d.example>\r\nRCPT TO:<2@d.example>\r\nRCPT TO:bad\r\n"
        "RCPT TO:<3@d.example>\r\nRCPT TO:<4@d.example>\r\nDATA\r\n");
    auto ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Rcpt);
    EXPECT_EQ(ev.path.mailbox.local, "1");
    s.defer();
    ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Rcpt);
    EXPECT_EQ(ev.path.mailbox.local, "2");
    s.defer();
    // A line that would be refused at once is not taken while answers are owed.
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::Deferred);
    EXPECT_EQ(s.deferred(), 2u);
    EXPECT_TRUE(s.output().empty());
    s.answer_deferred(Reply::make(550, "5.1.1", "no 1"));
    s.answer_deferred(Reply::make(250, "2.1.5", "ok 2"));
    ev = s.next();  // the refusal of "bad" is said, then recipient 3
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Rcpt);
    EXPECT_EQ(ev.path.mailbox.local, "3");
    s.defer();
    // Three recipients seen: the fourth is refused by max_recipients, so
    // it is not one to take now either.
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::Deferred);
    s.answer_deferred(Reply::make(250, "2.1.5", "ok 3"));
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::Data);  // two accepted: DATA goes on
    auto out = s.output();
    auto no1 = out.find("550 5.1.1 no 1"), ok2 = out.find("ok 2"), bad = out.find("501"),
         ok3 = out.find("ok 3"), many = out.find("452 4.5.3");
    ASSERT_NE(bad, std::string::npos);
    ASSERT_NE(many, std::string::npos);
    EXPECT_LT(no1, ok2);
    EXPECT_LT(ok2, bad);
    EXPECT_LT(bad, ok3);
    EXPECT_LT(ok3, many);
    EXPECT_EQ(s.accepted_recipients(), 2u);
}

TEST(ServerSession, AllDeferredRecipientsRefusedMeansNoValidRecipients) {
    ServerSettings settings = golden_settings();  // the session keeps a reference
    ServerSession s(settings);
    s.start();
    s.feed(
        "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@d.example>\r\n"
        "RCPT TO:<2@d.example>\r\nDATA\r\n");
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Mail);
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Rcpt);
    s.defer();
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Rcpt);
    s.defer();
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Deferred);
    s.answer_deferred(Reply::make(450, "4.2.0", "later"));
    s.answer_deferred(Reply::make(550, "5.1.1", "no"));
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::NeedInput);
    EXPECT_TRUE(contains(s.output(), "554 5.5.1 Error: no valid recipients"));
}

TEST(ServerSession, CommandLineLimitIsEnforcedWithoutBufferingTheLine) {
    ServerSettings settings = golden_settings();
    ServerSession s(settings);
    s.start();
    // 10 MB without a line end: memory must stay bounded.
    std::string chunk(65536, 'A');
    for (int i = 0; i < 160; ++i) {
        s.feed(chunk);
        auto ev = s.next();
        ASSERT_NE(ev.kind, ServerEvent::Kind::Close);
        EXPECT_LE(s.buffered_input(), settings.max_line_length);
    }
    s.feed("\r\nNOOP\r\n");
    s.next();
    EXPECT_TRUE(contains(s.output(), "500 5.5.2 Error: line too long"));
    EXPECT_TRUE(contains(s.output(), "250 2.0.0 Ok"));
}

TEST(ServerSession, TooManyCommandsCloses) {
    ServerSettings settings = golden_settings();
    settings.max_commands = 5;
    std::string in;
    for (int i = 0; i < 10; ++i)
        in += "NOOP\r\n";
    auto t = run_transcript(settings, in, in.size());
    EXPECT_TRUE(contains(t, "421 4.7.0 mx.test Error: too many commands"));
    EXPECT_TRUE(contains(t, "# close"));
}

TEST(ServerSession, TenThousandPipelinedCommandsAreAnsweredInOrder) {
    ServerSettings settings = golden_settings();
    settings.max_commands = 20000;
    std::string in;
    for (int i = 0; i < 10000; ++i)
        in += "NOOP\r\n";
    auto t = run_transcript(settings, in, 4096);
    std::size_t count = 0;
    for (auto pos = t.find("250 2.0.0 Ok"); pos != std::string::npos;
         pos = t.find("250 2.0.0 Ok", pos + 1))
        ++count;
    EXPECT_EQ(count, 10000u);
}

TEST(ServerSession, ShutdownSendsReplyAndCloses) {
    ServerSettings settings = golden_settings();
    ServerSession s(settings);
    s.start();
    s.shutdown(Reply::make(421, "4.4.2", "timeout"));
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::Close);
    EXPECT_TRUE(contains(s.output(), "421 4.4.2 timeout"));
}

TEST(ServerSession, RefusedDataDiscardsPipelinedText) {
    auto t =
        run_transcript(golden_settings(),
                       "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bad@d.example>\r\nDATA\r\n"
                       "MAIL FROM:<evil@e.example>\r\n",
                       1000);
    EXPECT_TRUE(contains(t, "554 5.5.1"));
    EXPECT_FALSE(contains(t, "evil"));
}

// Postfix's smtpd reads at most line_length_limit bytes of a line, skips the
// rest, and runs what it read (checked against Postfix 3.7): so does the
// sink's strict mode.
TEST(ServerSession, TruncatedLongLinesRunTheirFirstPart) {
    ServerSettings settings = golden_settings();
    settings.advertise_xclient = true;
    settings.truncate_long_lines = true;
    settings.max_line_length = 30;
    auto first_xclient = [&](const std::string& input, std::size_t chunk) {
        ServerSession s(settings);
        s.start();
        for (std::size_t at = 0; at < input.size(); at += chunk) {
            s.feed(std::string_view(input).substr(at, chunk));
            auto ev = s.next();
            if (ev.kind == ServerEvent::Kind::Xclient) {
                EXPECT_LE(s.buffered_input(), input.size());
                return ev.argument;
            }
            EXPECT_EQ(ev.kind, ServerEvent::Kind::NeedInput);
            EXPECT_LE(s.buffered_input(), settings.max_line_length + 1);
        }
        return std::string("(none)");
    };
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
        // 40 bytes: the first 30 run, the rest of the line is skipped.
        EXPECT_EQ(first_xclient("XCLIENT ADDR=192.0.2.1 HELO=abcdefghijkl\r\nNOOP\r\n", chunk),
                  "ADDR=192.0.2.1 HELO=ab");
        // 30 bytes and CR: the CR is what is cut.
        EXPECT_EQ(first_xclient("XCLIENT ADDR=192.0.2.1 HELO=ab\r\nNOOP\r\n", chunk),
                  "ADDR=192.0.2.1 HELO=ab");
        EXPECT_EQ(first_xclient("XCLIENT ADDR=192.0.2.1 HELO=a\r\n", chunk),
                  "ADDR=192.0.2.1 HELO=a");
        // A long line runs only once its end has come.
        EXPECT_EQ(first_xclient("XCLIENT ADDR=192.0.2.1 HELO=" + std::string(5000, 'x'), chunk),
                  "(none)");
    }

    // What follows the long line is a command of its own, answered in order.
    ServerSession s(settings);
    s.start();
    s.feed("NOOP " + std::string(100000, 'a') + "\r\nHELP\r\n");
    EXPECT_EQ(s.next().kind, ServerEvent::Kind::NeedInput);
    auto out = s.output();
    EXPECT_FALSE(contains(out, "line too long"));
    EXPECT_LT(out.find("250 2.0.0 Ok"), out.find("214 "));
}

namespace {
struct FixedOffer : EhloOfferSource {
    EhloOffer offer;
    EhloOffer current() const override { return offer; }
};
}  // namespace

TEST(ServerSession, EhloOffersWhatThePoolsCanTake) {
    FixedOffer source;
    source.offer.max_message_size = 1000;  // below the settings' 2000
    source.offer.smtputf8 = false;
    source.offer.requiretls = true;  // never outside TLS
    ServerSettings settings = golden_settings();
    settings.offer_source = &source;
    auto t = run_transcript(settings,
                            "EHLO x\r\nMAIL FROM:<a@b.example> SIZE=1001\r\n"
                            "MAIL FROM:<a@b.example> REQUIRETLS\r\n",
                            100);
    EXPECT_TRUE(contains(t, "S: 250-SIZE 1000")) << t;
    EXPECT_FALSE(contains(t, "SMTPUTF8")) << t;
    EXPECT_FALSE(contains(t, "S: 250-REQUIRETLS")) << t;
    EXPECT_TRUE(contains(t, "S: 552 5.3.4")) << t;
    EXPECT_TRUE(contains(t, "S: 555 5.5.4")) << t;
}

TEST(ServerSession, SmtpUtf8NotOfferedByThePoolsIsLeftToThePool) {
    // The listener allows it, its pools do not offer it: MAIL goes to the
    // caller, which answers 553 5.6.7 for the pool (docs/esmtp.md).
    FixedOffer source;
    source.offer.smtputf8 = false;
    ServerSettings settings = golden_settings();
    settings.offer_source = &source;
    ServerSession s(settings);
    s.start();
    s.feed("EHLO x\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n");
    auto ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::Mail);
    EXPECT_TRUE(ev.mail_params.smtputf8);
}

TEST(ServerSession, MessageAboveTheOfferedSizeIsRefused) {
    FixedOffer source;
    source.offer.max_message_size = 100;
    ServerSettings settings = golden_settings();
    settings.offer_source = &source;
    ServerSession s(settings);
    s.start();
    s.feed("EHLO x\r\nMAIL FROM:<a@b.example>\r\n");
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Mail);
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    s.feed("RCPT TO:<c@d.example>\r\n");
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Rcpt);
    s.answer(Reply::make(250, "2.1.5", "Ok"));
    s.feed("DATA\r\n");
    ASSERT_EQ(s.next().kind, ServerEvent::Kind::Data);
    s.answer(Reply::make(354, "", "go"));
    s.feed(std::string(200, 'x') + "\r\n.\r\n");
    auto ev = s.next();
    ASSERT_EQ(ev.kind, ServerEvent::Kind::MessageEnd);
    EXPECT_EQ(ev.data_outcome, DataDecoder::Outcome::TooBig);
}

TEST(ServerSession, TheOfferAloneDecidesDsnAndChunking) {
    // The listener's offer (its configuration and pools) is the one source:
    // no second switch in the settings can hide what it offers.
    FixedOffer source;
    source.offer.dsn = true;
    source.offer.chunking = false;
    ServerSettings settings = golden_settings();
    settings.offer_source = &source;
    auto t = run_transcript(settings,
                            "EHLO x\r\nMAIL FROM:<a@b.example> RET=HDRS\r\n"
                            "RCPT TO:<c@d.example>\r\nBDAT 3 LAST\r\nabc",
                            100);
    EXPECT_TRUE(contains(t, "S: 250 DSN") || contains(t, "S: 250-DSN")) << t;
    EXPECT_FALSE(contains(t, "CHUNKING")) << t;
    EXPECT_TRUE(contains(t, "S: 250 2.1.0 Ok")) << t;  // RET taken, not "501 5.7.1"
    EXPECT_TRUE(contains(t, "S: 502 5.5.1")) << t;
}
