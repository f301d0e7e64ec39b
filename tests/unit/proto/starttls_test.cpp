#include <gtest/gtest.h>

#include "proto/server_session.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb::proto;
using smtplb::testing::golden_settings;
using Kind = ServerEvent::Kind;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

ServerSettings tls_settings(bool required = false) {
    auto s = golden_settings();
    s.starttls = true;
    s.require_tls = required;
    return s;
}

// Feeds `input` and answers nothing: returns the first event that is not
// NeedInput, or NeedInput.
ServerEvent feed(ServerSession& s, std::string_view input) {
    s.feed(input);
    return s.next();
}

}  // namespace

TEST(StartTls, AdvertisedOnlyBeforeTlsAndOnlyWhenConfigured) {
    auto plain = golden_settings();
    ServerSession without(plain);
    without.start();
    feed(without, "EHLO x\r\n");
    EXPECT_FALSE(contains(without.output(), "STARTTLS"));
    feed(without, "STARTTLS\r\n");
    EXPECT_TRUE(contains(without.output(), "502 5.5.1"));

    auto settings = tls_settings();
    ServerSession s(settings);
    s.start();
    feed(s, "EHLO x\r\n");
    EXPECT_TRUE(contains(s.output(), "250-STARTTLS") || contains(s.output(), "250 STARTTLS"));
    s.output().clear();
    EXPECT_EQ(feed(s, "STARTTLS\r\n").kind, Kind::StartTls);
    EXPECT_EQ(s.output(), "220 2.0.0 Ready to start TLS\r\n");
    s.output().clear();
    s.tls_started();
    EXPECT_TRUE(s.tls());
    feed(s, "EHLO x\r\n");
    EXPECT_FALSE(contains(s.output(), "STARTTLS"));
    s.output().clear();
    feed(s, "STARTTLS\r\n");
    EXPECT_TRUE(contains(s.output(), "503 5.5.1"));
}

TEST(StartTls, PipelinedPlaintextAfterStartTlsIsDiscarded) {
    auto settings = tls_settings();
    ServerSession s(settings);
    s.start();
    feed(s, "EHLO x\r\n");
    s.output().clear();
    // The injection of CVE-2011-0411: one segment, two commands.
    EXPECT_EQ(feed(s, "STARTTLS\r\nRSET\r\nMAIL FROM:<a@b.example>\r\n").kind, Kind::StartTls);
    EXPECT_EQ(s.output(), "220 2.0.0 Ready to start TLS\r\n");
    EXPECT_EQ(s.buffered_input(), 0u);
    // Without a handshake the session goes no further.
    EXPECT_EQ(s.next().kind, Kind::Close);
    s.output().clear();
    s.tls_started();
    EXPECT_EQ(s.next().kind, Kind::NeedInput);
    EXPECT_EQ(s.output(), "");  // exactly one reply was ever given
}

TEST(StartTls, SessionStateIsForgotten) {
    auto settings = tls_settings();
    ServerSession s(settings);
    s.start();
    feed(s, "EHLO before.example\r\nSTARTTLS\r\n");
    s.tls_started();
    EXPECT_EQ(s.helo(), "");
    s.output().clear();
    feed(s, "MAIL FROM:<a@b.example>\r\n");
    EXPECT_TRUE(contains(s.output(), "503 5.5.1 Error: send HELO/EHLO first"));
}

TEST(StartTls, ArgumentsAndTransactionsAreRefused) {
    auto settings = tls_settings();
    ServerSession s(settings);
    s.start();
    feed(s, "EHLO x\r\n");
    s.output().clear();
    EXPECT_EQ(feed(s, "STARTTLS now\r\n").kind, Kind::NeedInput);
    EXPECT_TRUE(contains(s.output(), "501 5.5.4"));
    EXPECT_EQ(feed(s, "MAIL FROM:<a@b.example>\r\n").kind, Kind::Mail);
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    s.output().clear();
    EXPECT_EQ(feed(s, "STARTTLS\r\n").kind, Kind::NeedInput);
    EXPECT_TRUE(contains(s.output(), "503 5.5.1"));
}

TEST(StartTls, RequiredRefusesMailInPlaintext) {
    auto settings = tls_settings(true);
    ServerSession s(settings);
    s.start();
    feed(s, "EHLO x\r\n");
    s.output().clear();
    EXPECT_EQ(feed(s, "MAIL FROM:<a@b.example>\r\n").kind, Kind::NeedInput);
    EXPECT_EQ(s.output(), "530 5.7.0 Must issue a STARTTLS command first\r\n");
    EXPECT_EQ(feed(s, "STARTTLS\r\n").kind, Kind::StartTls);
    s.tls_started();
    EXPECT_EQ(feed(s, "EHLO x\r\nMAIL FROM:<a@b.example>\r\n").kind, Kind::Mail);
}

TEST(StartTls, ImplicitTlsSessionNeverOffersIt) {
    auto settings = tls_settings();
    ServerSession s(settings);
    s.tls_started();  // SMTPS: the handshake came before the greeting
    s.start();
    feed(s, "EHLO x\r\n");
    EXPECT_TRUE(contains(s.output(), "220 mx.test"));
    EXPECT_FALSE(contains(s.output(), "STARTTLS"));
}
