#include <gtest/gtest.h>

#include "base/base64.hpp"
#include "proto/server_session.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb::proto;
using smtplb::base::base64_encode;
using smtplb::testing::golden_settings;
using Kind = ServerEvent::Kind;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

struct AuthFixture : ::testing::Test {
    ServerSettings settings = [] {
        auto s = golden_settings();
        s.starttls = true;
        s.auth = true;
        s.max_errors = 20;
        return s;
    }();
    ServerSession s{settings};

    void SetUp() override {
        s.start();
        s.feed("EHLO x\r\nSTARTTLS\r\n");
        EXPECT_EQ(s.next().kind, Kind::StartTls);
        s.tls_started();
        s.feed("EHLO x\r\n");
        EXPECT_EQ(s.next().kind, Kind::NeedInput);
        s.output().clear();
    }
    ServerEvent feed(std::string_view input) {
        s.feed(input);
        return s.next();
    }
};

}  // namespace

TEST(Auth, OfferedOnlyInsideTls) {
    auto settings = golden_settings();
    settings.starttls = true;
    settings.auth = true;
    ServerSession s(settings);
    s.start();
    s.feed("EHLO x\r\nAUTH PLAIN AGEAYg==\r\n");
    s.next();
    EXPECT_FALSE(contains(s.output(), "AUTH PLAIN"));
    EXPECT_TRUE(contains(s.output(), "538 5.7.11"));
}

TEST_F(AuthFixture, AdvertisedAfterTls) {
    feed("EHLO again\r\n");
    EXPECT_TRUE(contains(s.output(), "250 AUTH PLAIN LOGIN") ||
                contains(s.output(), "250-AUTH PLAIN LOGIN"));
}

TEST_F(AuthFixture, PlainWithInitialResponse) {
    auto ev = feed("AUTH PLAIN " + base64_encode(std::string("\0alice\0s3cret", 13)) + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    EXPECT_EQ(ev.login, "alice");
    EXPECT_EQ(ev.password, "s3cret");
    EXPECT_EQ(ev.mechanism, "PLAIN");
    EXPECT_FALSE(s.authenticated());
    s.answer(Reply::make(235, "2.7.0", "Authentication successful"));
    EXPECT_TRUE(s.authenticated());
    EXPECT_EQ(s.login(), "alice");
    s.output().clear();
    feed("AUTH PLAIN =\r\n");
    EXPECT_TRUE(contains(s.output(), "503 5.5.1"));
}

TEST_F(AuthFixture, PlainInTwoStepsAndLogin) {
    EXPECT_EQ(feed("AUTH PLAIN\r\n").kind, Kind::NeedInput);
    EXPECT_EQ(s.output(), "334 \r\n");
    auto ev = feed(base64_encode(std::string("alice\0alice\0pw", 14)) + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    EXPECT_EQ(ev.login, "alice");
    s.answer(Reply::make(535, "5.7.8", "Authentication credentials invalid"));
    EXPECT_FALSE(s.authenticated());
    s.output().clear();

    EXPECT_EQ(feed("AUTH LOGIN\r\n").kind, Kind::NeedInput);
    EXPECT_EQ(s.output(), "334 VXNlcm5hbWU6\r\n");
    EXPECT_EQ(feed(base64_encode("bob") + "\r\n").kind, Kind::NeedInput);
    EXPECT_TRUE(contains(s.output(), "334 UGFzc3dvcmQ6\r\n"));
    ev = feed(base64_encode("hunter2") + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    EXPECT_EQ(ev.login, "bob");
    EXPECT_EQ(ev.password, "hunter2");
    EXPECT_EQ(ev.mechanism, "LOGIN");
}

TEST_F(AuthFixture, HostileResponsesAreRefused) {
    feed("AUTH CRAM-MD5\r\n");
    EXPECT_TRUE(contains(s.output(), "504 5.5.4"));
    feed("AUTH PLAIN\r\n*\r\n");
    EXPECT_TRUE(contains(s.output(), "501 5.7.0 Authentication aborted"));
    s.output().clear();
    feed("AUTH PLAIN not-base64!\r\n");
    EXPECT_TRUE(contains(s.output(), "501 5.5.2"));
    s.output().clear();
    // Someone else's authorisation identity, extra NULs, no password.
    for (std::string plain : {std::string("mallory\0alice\0pw", 16), std::string("\0a\0b\0c", 6),
                              std::string("\0alice\0", 7), std::string("alice", 5)}) {
        s.output().clear();
        EXPECT_EQ(feed("AUTH PLAIN " + base64_encode(plain) + "\r\n").kind, Kind::NeedInput);
        EXPECT_TRUE(contains(s.output(), "5.")) << s.output();
    }
    // After the exchange the session takes commands again.
    s.output().clear();
    feed("NOOP\r\n");
    EXPECT_EQ(s.output(), "250 2.0.0 Ok\r\n");
}

// RFC 4954 §5: AUTH= accepted where AUTH is configured; passed on as the
// client gave it, unless the client authenticated: then its login wins.
TEST_F(AuthFixture, AuthOnMailCarriesTheLoginOnceAuthenticated) {
    auto ev = feed("MAIL FROM:<a@example.net> AUTH=x@example.net\r\n");
    ASSERT_EQ(ev.kind, Kind::Mail) << s.output();
    EXPECT_EQ(*ev.mail_params.auth, "x@example.net");
    s.answer(Reply::make(250, "2.1.0", "Ok"));
    feed("RSET\r\n");
    ev = feed("AUTH PLAIN " + base64_encode(std::string("\0alice@example.net\0pw", 21)) + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    s.answer(Reply::make(235, "2.7.0", "Authentication successful"));
    ev = feed("MAIL FROM:<a@example.net> AUTH=<>\r\n");
    ASSERT_EQ(ev.kind, Kind::Mail) << s.output();
    EXPECT_EQ(*ev.mail_params.auth, "alice@example.net");
    s.answer(Reply::make(250, "2.1.0", "Ok"));
}

// Postfix with SASL off still takes AUTH= (250): so does every listener.
TEST(Auth, AuthOnMailWithoutAuthConfiguredIsAccepted) {
    const auto settings = golden_settings();  // the session keeps a reference
    ServerSession s(settings);
    s.start();
    s.feed("EHLO x\r\nMAIL FROM:<a@example.net> AUTH=<>\r\n");
    auto ev = s.next();
    ASSERT_EQ(ev.kind, Kind::Mail) << s.output();
    EXPECT_EQ(*ev.mail_params.auth, "<>");
}

TEST_F(AuthFixture, LongResponsesAreBoundedAt12288) {
    EXPECT_EQ(feed("AUTH PLAIN\r\n").kind, Kind::NeedInput);
    s.output().clear();
    // 9000 characters: over the 512 of commands, within RFC 4954's 12288.
    auto long_ok = base64_encode(std::string("\0alice\0", 7) + std::string(6700, 'p'));
    ASSERT_GT(long_ok.size(), 8000u);
    auto ev = feed(long_ok + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    s.answer(Reply::make(535, "5.7.8", "Authentication credentials invalid"));
    feed("AUTH PLAIN\r\n");
    s.output().clear();
    feed(std::string(20000, 'A'));
    EXPECT_TRUE(contains(s.output(), "500 5.5.2 Error: line too long"));
    EXPECT_LE(s.buffered_input(), 12288u);
}

TEST_F(AuthFixture, WrongPasswordsEndTheSession) {
    for (std::size_t i = 0; i < settings.max_errors; ++i) {
        auto ev = feed("AUTH PLAIN " + base64_encode(std::string("\0alice\0no", 9)) + "\r\n");
        if (ev.kind != Kind::Auth) break;
        s.answer(Reply::make(535, "5.7.8", "Authentication credentials invalid"));
    }
    EXPECT_TRUE(contains(s.output(), "421 4.7.0"));
    EXPECT_EQ(s.next().kind, Kind::Close);
}

TEST_F(AuthFixture, StartTlsForgetsAuthentication) {
    auto ev = feed("AUTH PLAIN " + base64_encode(std::string("\0alice\0pw", 9)) + "\r\n");
    ASSERT_EQ(ev.kind, Kind::Auth);
    s.answer(Reply::make(235, "2.7.0", "Authentication successful"));
    s.tls_started();
    EXPECT_FALSE(s.authenticated());
}
