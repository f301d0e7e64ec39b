#include <gtest/gtest.h>

#include "proto/backend_session.hpp"

using namespace smtplb::proto;
using Step = BackendSession::Step;

TEST(BackendSession, MatchesPipelinedRepliesInOrderAndParsesCapabilities) {
    BackendSession c;
    c.feed("220 backend ESMTP\r\n");
    auto g = c.next();
    ASSERT_TRUE(g);
    EXPECT_EQ(g->step, Step::Greeting);
    c.send(Step::Ehlo, "EHLO lb\r\n");
    c.feed(
        "250-backend\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-XCLIENT NAME ADDR PORT PROTO "
        "HELO LOGIN\r\n250 8BITMIME\r\n");
    auto e = c.next();
    ASSERT_TRUE(e);
    EXPECT_TRUE(c.capabilities().pipelining);
    EXPECT_EQ(*c.capabilities().size_limit, 10240000u);
    EXPECT_TRUE(c.capabilities().xclient);
    EXPECT_TRUE(c.capabilities().xclient_attributes.count("HELO"));
    EXPECT_FALSE(c.capabilities().smtputf8);
    c.send(Step::Mail, "MAIL FROM:<a@b>\r\n");
    c.send(Step::Rcpt, "RCPT TO:<c@d>\r\n");
    EXPECT_EQ(c.output(), "EHLO lb\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    c.feed("250 2.1.0 Ok\r\n550 5.1.1 Unknown\r\n");
    auto m = c.next();
    auto r = c.next();
    ASSERT_TRUE(m && r);
    EXPECT_EQ(m->step, Step::Mail);
    EXPECT_EQ(r->step, Step::Rcpt);
    EXPECT_EQ(r->reply.code, 550);
    EXPECT_TRUE(c.idle());
}

TEST(BackendSession, UnsolicitedReplyIsAFailure) {
    BackendSession c;
    c.feed("220 hi\r\n250 injected\r\n");
    ASSERT_TRUE(c.next());
    EXPECT_FALSE(c.next());
    EXPECT_TRUE(c.failed());
}

TEST(BackendSession, GarbageIsAFailure) {
    BackendSession c;
    c.feed("SSH-2.0-OpenSSH_9.2\r\n");
    EXPECT_FALSE(c.next());
    EXPECT_TRUE(c.failed());
}

#include "proto/command.hpp"

TEST(BackendCommands, MailCarriesOnlyAnnouncedParameters) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.org> SIZE=500 BODY=8BITMIME", m));
    Capabilities none;
    EXPECT_EQ(mail_command(m.path, m.params, none), "MAIL FROM:<a@example.org>\r\n");
    Capabilities all;
    all.size_limit = 0;
    all.eightbitmime = true;
    EXPECT_EQ(mail_command(m.path, m.params, all),
              "MAIL FROM:<a@example.org> SIZE=500 BODY=8BITMIME\r\n");
    MailArgument null_sender;
    ASSERT_FALSE(parse_mail_argument("FROM:<>", null_sender));
    EXPECT_EQ(mail_command(null_sender.path, null_sender.params, all), "MAIL FROM:<>\r\n");
    Path rcpt;
    ASSERT_FALSE(parse_rcpt_argument("TO:<@relay.example:u@example.net>", rcpt));
    // A source route is accepted and ignored (RFC 5321 §3.6.1), never forwarded.
    EXPECT_EQ(rcpt_command(rcpt.mailbox), "RCPT TO:<u@example.net>\r\n");
}

namespace {
BackendSession at_starttls(std::string_view reply) {
    BackendSession c;
    c.feed("220 backend ESMTP\r\n");
    c.next();
    c.send(Step::Ehlo, "EHLO lb\r\n");
    c.feed("250-backend\r\n250 STARTTLS\r\n");
    c.next();
    c.send(Step::StartTls, "STARTTLS\r\n");
    c.feed(reply);
    auto done = c.next();
    EXPECT_TRUE(done && done->step == Step::StartTls && done->reply.code == 220);
    return c;
}
}  // namespace

TEST(BackendSession, StartTlsForgetsThePlaintextSession) {
    auto c = at_starttls("220 2.0.0 Ready\r\n");
    EXPECT_TRUE(c.capabilities().starttls);
    ASSERT_TRUE(c.tls_started());
    EXPECT_FALSE(c.capabilities().starttls);
    EXPECT_EQ(c.output(), "");
    c.send(Step::Ehlo, "EHLO lb\r\n");
    c.feed("250 backend\r\n");
    auto e = c.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->step, Step::Ehlo);
}

TEST(BackendSession, ReplyInjectedBehindTheStartTlsReplyIsRefused) {
    auto c = at_starttls("220 2.0.0 Ready\r\n250 injected\r\n");
    EXPECT_FALSE(c.tls_started());
    EXPECT_TRUE(c.failed());
    // Even a partial line behind it is injected plaintext.
    auto d = at_starttls("220 2.0.0 Ready\r\n2");
    EXPECT_FALSE(d.tls_started());
}
