#include <gtest/gtest.h>

#include "base/base64.hpp"
#include "proto/probe.hpp"
#include "proto/smarthost_auth.hpp"

using namespace smtplb::proto;
using Status = SmarthostAuth::Status;

namespace {

Capabilities offering(std::initializer_list<const char*> mechanisms) {
    Capabilities caps;
    for (const char* m : mechanisms)
        caps.auth_mechanisms.insert(m);
    return caps;
}

AuthCredentials account(AuthMechanism mechanism = AuthMechanism::Auto) {
    return {"relay@example.net", "s3cret pass", mechanism};
}

Reply reply(int code, const char* enhanced, const char* text) {
    return Reply::make(code, enhanced, text);
}

std::string plain_line() {
    return "AUTH PLAIN " +
           smtplb::base::base64_encode(std::string("\0relay@example.net\0s3cret pass", 30)) +
           "\r\n";
}

}  // namespace

TEST(SmarthostAuth, PlainSendsTheInitialResponseAnd235Authenticates) {
    SmarthostAuth a(account(), offering({"LOGIN", "PLAIN"}));
    auto s = a.start();
    ASSERT_EQ(s.status, Status::Send);
    EXPECT_EQ(s.line, plain_line());
    EXPECT_EQ(a.mechanism(), AuthMechanism::Plain);
    EXPECT_EQ(a.redacted(), "AUTH PLAIN <credentials>");
    auto done = a.reply(reply(235, "2.7.0", "Authentication successful"));
    EXPECT_EQ(done.status, Status::Authenticated);
}

TEST(SmarthostAuth, LoginAnswersTheTwoChallenges) {
    SmarthostAuth a(account(), offering({"LOGIN", "CRAM-MD5"}));  // auto: LOGIN, PLAIN missing
    auto s = a.start();
    EXPECT_EQ(s.line, "AUTH LOGIN\r\n");
    s = a.reply(reply(334, "", "VXNlcm5hbWU6"));
    ASSERT_EQ(s.status, Status::Send);
    EXPECT_EQ(s.line, smtplb::base::base64_encode("relay@example.net") + "\r\n");
    EXPECT_EQ(a.redacted(), "<user name>");
    s = a.reply(reply(334, "", "UGFzc3dvcmQ6"));
    ASSERT_EQ(s.status, Status::Send);
    EXPECT_EQ(s.line, smtplb::base::base64_encode("s3cret pass") + "\r\n");
    EXPECT_EQ(a.redacted(), "<password>");
    EXPECT_EQ(a.reply(reply(235, "2.7.0", "ok")).status, Status::Authenticated);
}

TEST(SmarthostAuth, TheConfiguredMechanismWinsWhenOffered) {
    SmarthostAuth a(account(AuthMechanism::Login), offering({"PLAIN", "LOGIN"}));
    EXPECT_EQ(a.start().line, "AUTH LOGIN\r\n");
}

TEST(SmarthostAuth, NoUsableOfferIsMisconfigured) {
    SmarthostAuth none(account(), Capabilities{});
    auto s = none.start();
    EXPECT_EQ(s.status, Status::Misconfigured);
    EXPECT_EQ(s.reason, "AUTH not offered (the backend's EHLO announces no AUTH)");
    SmarthostAuth cram(account(), offering({"CRAM-MD5"}));
    EXPECT_EQ(cram.start().reason, "AUTH offers neither PLAIN nor LOGIN (offers CRAM-MD5)");
    SmarthostAuth login(account(AuthMechanism::Login), offering({"PLAIN"}));
    EXPECT_EQ(login.start().reason, "AUTH LOGIN not offered (offers PLAIN)");
}

TEST(SmarthostAuth, EveryPermanentReplyIsMisconfiguredWithTheBackendsText) {
    for (auto [code, enhanced] : {std::pair{535, "5.7.8"},
                                  {534, "5.7.9"},
                                  {538, "5.7.11"},
                                  {504, "5.5.4"},
                                  {501, "5.5.2"},
                                  {554, "5.7.0"}}) {
        SmarthostAuth a(account(), offering({"PLAIN"}));
        a.start();
        auto s = a.reply(reply(code, enhanced, "Error: authentication failed"));
        EXPECT_EQ(s.status, Status::Misconfigured) << code;
        EXPECT_EQ(s.reason, "AUTH refused: " + std::to_string(code) + " " + enhanced +
                                " Error: authentication failed");
        EXPECT_EQ(s.reason.find("s3cret"), std::string::npos);
        ASSERT_TRUE(s.reply);
        EXPECT_EQ(s.reply->code, code);
    }
}

TEST(SmarthostAuth, ATransientReplyDefersThisConnectionOnly) {
    for (int code : {454, 421, 432}) {
        SmarthostAuth a(account(), offering({"LOGIN"}));
        a.start();
        a.reply(reply(334, "", "VXNlcm5hbWU6"));
        auto s = a.reply(reply(code, "4.7.0", "Temporary authentication failure"));
        EXPECT_EQ(s.status, Status::Deferred) << code;
        EXPECT_EQ(s.reason.rfind("AUTH deferred: " + std::to_string(code), 0), 0u);
    }
}

TEST(SmarthostAuth, AnOddPositiveReplyIsNotAuthentication) {
    SmarthostAuth a(account(), offering({"PLAIN"}));
    a.start();
    auto s = a.reply(reply(250, "2.0.0", "Ok"));
    EXPECT_EQ(s.status, Status::Misconfigured);
    EXPECT_EQ(s.reason, "AUTH answered 250 2.0.0 Ok, not 235");
}

TEST(SmarthostAuth, MoreChallengesThanTheMechanismHasAreCancelled) {
    SmarthostAuth plain(account(), offering({"PLAIN"}));
    plain.start();
    auto s = plain.reply(reply(334, "", ""));
    EXPECT_EQ(s.line, "*\r\n");  // RFC 4954 §4: the client cancels
    EXPECT_EQ(plain.reply(reply(501, "5.7.0", "Authentication aborted")).status,
              Status::Misconfigured);
    SmarthostAuth login(account(), offering({"LOGIN"}));
    login.start();
    login.reply(reply(334, "", "VXNlcm5hbWU6"));
    login.reply(reply(334, "", "UGFzc3dvcmQ6"));
    EXPECT_EQ(login.reply(reply(334, "", "TW9yZTo=")).line, "*\r\n");
}

TEST(SmarthostAuth, A503AfterAnEarlierSuccessMeansStillAuthenticated) {
    SmarthostAuth again(account(), offering({"PLAIN"}), true);
    again.start();
    EXPECT_EQ(again.reply(reply(503, "5.5.1", "Error: already authenticated")).status,
              Status::Authenticated);
    SmarthostAuth first(account(), offering({"PLAIN"}));
    first.start();
    EXPECT_EQ(first.reply(reply(503, "5.5.1", "Error: already authenticated")).status,
              Status::Misconfigured);
}

TEST(SmarthostAuth, AReplyAfterTheEndIsUnexpected) {
    SmarthostAuth a(account(), offering({"PLAIN"}));
    a.start();
    a.reply(reply(235, "2.7.0", "ok"));
    EXPECT_EQ(a.reply(reply(235, "2.7.0", "ok")).status, Status::Misconfigured);
}

// The health probe of a backend with auth.
namespace {
ProbePlan auth_plan(ProbeDepth depth, bool plaintext = true) {
    ProbePlan p;
    p.depth = depth;
    p.helo = "lb";
    p.mail_from = "probe@example.org";
    p.auth = account();
    p.auth_plaintext = plaintext;
    return p;
}

std::string sent(ProbeSession& p) {
    std::string out;
    for (const auto& e : p.take_events())
        if (e.kind == ProbeSession::Event::Kind::Sent) out += e.text + "\n";
    return out;
}
}  // namespace

TEST(ProbeAuth, AuthenticatesBeforeMailAndTheTranscriptHidesTheCredentials) {
    ProbeSession p(auth_plan(ProbeDepth::Mail));
    p.connected();
    p.feed("220 hub ESMTP\r\n");
    p.output().clear();
    p.feed("250-hub\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n");
    EXPECT_EQ(p.output(), plain_line());
    p.output().clear();
    p.feed("235 2.7.0 Authentication successful\r\n");
    EXPECT_EQ(p.output(), "MAIL FROM:<probe@example.org>\r\nRSET\r\nQUIT\r\n");
    p.feed("250 2.1.0 Ok\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Healthy);
    auto transcript = sent(p);
    EXPECT_NE(transcript.find("AUTH PLAIN <credentials>"), std::string::npos);
    EXPECT_EQ(transcript.find(plain_line().substr(11, 20)), std::string::npos);
}

TEST(ProbeAuth, ARefusedAuthIsMisconfiguredWithTheBackendsText) {
    ProbeSession p(auth_plan(ProbeDepth::Ehlo));
    p.connected();
    p.feed("220 hub ESMTP\r\n250-hub\r\n250 AUTH LOGIN\r\n");
    p.output().clear();
    p.feed("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n");
    p.feed("535 5.7.8 Error: authentication failed: authentication failure\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Misconfigured);
    EXPECT_EQ(p.result()->step, "auth");
    EXPECT_EQ(p.result()->reason,
              "AUTH refused: 535 5.7.8 Error: authentication failed: authentication failure");
    EXPECT_NE(p.output().find("QUIT\r\n"), std::string::npos);
}

TEST(ProbeAuth, ATemporaryAuthFailureIsBusyAndNoOfferIsMisconfigured) {
    ProbeSession busy(auth_plan(ProbeDepth::Mail));
    busy.connected();
    busy.feed(
        "220 hub\r\n250-hub\r\n250 AUTH PLAIN\r\n454 4.7.0 Temporary authentication failure\r\n");
    ASSERT_TRUE(busy.result());
    EXPECT_EQ(busy.result()->verdict, ProbeVerdict::Busy);
    ProbeSession none(auth_plan(ProbeDepth::Mail));
    none.connected();
    none.feed("220 hub\r\n250 hub\r\n");
    ASSERT_TRUE(none.result());
    EXPECT_EQ(none.result()->verdict, ProbeVerdict::Misconfigured);
    EXPECT_EQ(none.result()->reason, "AUTH not offered (the backend's EHLO announces no AUTH)");
}

TEST(ProbeAuth, WithoutTlsAndWithoutAllowPlaintextThePasswordStaysHere) {
    auto plan = auth_plan(ProbeDepth::Mail, false);
    plan.starttls = true;  // opportunistic, and the backend offers no STARTTLS
    ProbeSession p(plan);
    p.connected();
    p.feed("220 hub\r\n");
    p.output().clear();
    p.feed("250-hub\r\n250 AUTH PLAIN\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Misconfigured);
    EXPECT_EQ(p.output(), "QUIT\r\n");  // no AUTH line went out
}

TEST(ProbeAuth, ConnectAndBannerDepthsDoNotAuthenticate) {
    ProbeSession p(auth_plan(ProbeDepth::Banner));
    p.connected();
    p.feed("220 hub\r\n");
    ASSERT_TRUE(p.result());
    EXPECT_EQ(p.result()->verdict, ProbeVerdict::Healthy);
    EXPECT_EQ(p.output(), "QUIT\r\n");
}
