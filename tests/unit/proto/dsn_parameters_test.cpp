// DSN parameters (RFC 3461): parsing as Postfix takes and refuses them (its
// replies checked against Postfix 3.7), forwarding, and the EHLO offer.
#include <gtest/gtest.h>

#include "proto/capabilities.hpp"
#include "proto/command.hpp"
#include "proto/server_session.hpp"

using namespace smtplb::proto;

namespace {

std::string mail_error(const std::string& params, bool dsn = true) {
    MailArgument m;
    auto err = parse_mail_argument("FROM:<a@example.org> " + params, m, dsn);
    return err ? std::to_string(err->code) + " " + err->enhanced + " " + err->text : "ok";
}

std::string rcpt_error(const std::string& params, bool dsn = true) {
    RcptArgument r;
    auto err = parse_rcpt_argument("TO:<b@example.net> " + params, r, dsn);
    return err ? std::to_string(err->code) + " " + err->enhanced + " " + err->text : "ok";
}

RcptParameters rcpt_params(const std::string& params) {
    RcptArgument r;
    EXPECT_FALSE(parse_rcpt_argument("TO:<b@example.net> " + params, r)) << params;
    return r.params;
}

}  // namespace

TEST(DsnParameters, RetAndEnvidOnMail) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.org> RET=hdrs ENVID=QQ+2B1", m));
    EXPECT_EQ(m.params.ret, DsnReturn::Headers);
    EXPECT_EQ(m.params.envid, "QQ+2B1");  // as received: forwarded unchanged
    ASSERT_FALSE(parse_mail_argument("FROM:<> RET=FULL", m));
    EXPECT_EQ(m.params.ret, DsnReturn::Full);
    EXPECT_TRUE(m.params.envid.empty());
    EXPECT_EQ(mail_error("ENVID=" + std::string(100, 'a')), "ok");
    EXPECT_EQ(mail_error("ENVID=a+2b"), "ok");  // lower-case hex, as Postfix takes it
}

TEST(DsnParameters, EveryBadMailFormGetsPostfixsReply) {
    for (const char* bad : {"RET=BAD", "RET=", "RET=FULL RET=HDRS", "RET=FULL RET=FULL"})
        EXPECT_EQ(mail_error(bad), "501 5.5.4 Bad RET parameter syntax") << bad;
    for (std::string bad : std::initializer_list<std::string>{
             "ENVID=", "ENVID=ab+zz", "ENVID=ab+2", "ENVID=a+", "ENVID=a ENVID=b", "ENVID=a=b",
             "ENVID=\x01", "ENVID=\xc3\xa9", "ENVID=" + std::string(101, 'a')})
        EXPECT_EQ(mail_error(bad), "501 5.5.4 Bad ENVID parameter syntax") << bad;
    EXPECT_EQ(mail_error("RET"), "555 5.5.4 Unsupported parameter");
    // Where DSN is not offered, Postfix refuses them all alike.
    for (const char* any : {"RET=FULL", "ENVID=x", "RET=BAD"})
        EXPECT_EQ(mail_error(any, false), "501 5.7.1 DSN support is disabled") << any;
    EXPECT_EQ(mail_error("SIZE=10", false), "ok");
}

TEST(DsnParameters, NotifyAndOrcptOnRcpt) {
    auto p = rcpt_params("NOTIFY=delay,SUCCESS ORCPT=rfc822;b+40example.net");
    EXPECT_EQ(p.notify, RcptParameters::Success | RcptParameters::Delay);
    EXPECT_EQ(p.notify_keywords(), "SUCCESS,DELAY");
    EXPECT_EQ(p.orcpt, "rfc822;b+40example.net");
    EXPECT_EQ(p.original_recipient(), "rfc822;b@example.net");
    EXPECT_TRUE(p.wants_success());
    EXPECT_TRUE(p.wants_delay());
    EXPECT_FALSE(p.wants_failure());

    auto never = rcpt_params("NOTIFY=NEVER");
    EXPECT_EQ(never.notify_keywords(), "NEVER");
    EXPECT_FALSE(never.wants_failure() || never.wants_delay() || never.wants_success());

    // Absent NOTIFY: failures and delays (RFC 3461 §4.1 leaves it to the MTA).
    RcptParameters none;
    EXPECT_TRUE(none.empty());
    EXPECT_TRUE(none.wants_failure() && none.wants_delay());
    EXPECT_FALSE(none.wants_success());

    // What Postfix takes too: repeats, an empty element, an empty address,
    // other address types, UTF-8 in a utf-8 address.
    EXPECT_EQ(rcpt_params("NOTIFY=SUCCESS,SUCCESS,").notify_keywords(), "SUCCESS");
    EXPECT_EQ(rcpt_params("ORCPT=rfc822;").orcpt, "rfc822;");
    EXPECT_EQ(rcpt_params("ORCPT=x-foo;bar").orcpt, "x-foo;bar");
    EXPECT_EQ(rcpt_params("ORCPT=utf-8;j\xc3\xb6rg@example.net").orcpt,
              "utf-8;j\xc3\xb6rg@example.net");
    EXPECT_EQ(rcpt_error("ORCPT=rfc822;" + std::string(493, 'a')), "ok");  // 500 in all
}

TEST(DsnParameters, EveryBadRcptFormGetsPostfixsReply) {
    for (const char* bad : {"NOTIFY=", "NOTIFY=BAD", "NOTIFY=NEVER,SUCCESS", "NOTIFY=,",
                            "NOTIFY=SUCCESS NOTIFY=FAILURE", "NOTIFY=SUCCESS;FAILURE"})
        EXPECT_EQ(rcpt_error(bad), "501 5.5.4 Error: Bad NOTIFY parameter syntax") << bad;
    for (std::string bad : std::initializer_list<std::string>{
             "ORCPT=", "ORCPT=b@example.net", "ORCPT=;b@x", "ORCPT=rfc822;a+zz", "ORCPT=rfc 822;a",
             "ORCPT=rfc822;j\xc3\xb6rg", "ORCPT=rfc822;b@x ORCPT=rfc822;c@x",
             "ORCPT=rfc822;" + std::string(494, 'a')})
        EXPECT_EQ(rcpt_error(bad), "501 5.5.4 Error: Bad ORCPT parameter syntax") << bad;
    for (const char* bad : {"NOTIFY", "FOO=bar", "SIZE=10"})
        EXPECT_EQ(rcpt_error(bad), "555 5.5.4 Unsupported parameter") << bad;
    for (const char* any : {"NOTIFY=NEVER", "ORCPT=rfc822;b@x", "NOTIFY=BAD"})
        EXPECT_EQ(rcpt_error(any, false), "501 5.7.1 DSN support is disabled") << any;
}

TEST(DsnParameters, ForwardedOnlyToABackendThatAnnouncedDsn) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.org> RET=HDRS ENVID=QQ+2B1", m));
    RcptArgument r;
    ASSERT_FALSE(parse_rcpt_argument(
        "TO:<b@example.net> NOTIFY=failure,success ORCPT=rfc822;b+40example.net", r));
    Capabilities none, dsn;
    dsn.dsn = true;
    EXPECT_EQ(mail_command(m.path, m.params, none), "MAIL FROM:<a@example.org>\r\n");
    EXPECT_EQ(mail_command(m.path, m.params, dsn),
              "MAIL FROM:<a@example.org> RET=HDRS ENVID=QQ+2B1\r\n");
    EXPECT_EQ(rcpt_command(r.path.mailbox, r.params, none), "RCPT TO:<b@example.net>\r\n");
    EXPECT_EQ(rcpt_command(r.path.mailbox, r.params, dsn),
              "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.net\r\n");
    EXPECT_EQ(rcpt_command(r.path.mailbox, RcptParameters{}, dsn), "RCPT TO:<b@example.net>\r\n");
}

TEST(DsnParameters, CapabilityFromEhlo) {
    Reply with;
    with.code = 250;
    with.lines = {"pf.test", "PIPELINING", "dsn", "SMTPUTF8"};
    EXPECT_TRUE(Capabilities::from_ehlo(with).dsn);
    with.lines = {"pf.test", "PIPELINING", "SMTPUTF8"};
    EXPECT_FALSE(Capabilities::from_ehlo(with).dsn);
}

TEST(DsnParameters, SessionOffersDsnAndHandsOnTheRecipientsParameters) {
    for (bool offered : {true, false}) {
        ServerSettings settings;
        settings.hostname = "mx.test";
        settings.offer.dsn = offered;
        ServerSession s(settings);
        s.start();
        s.output().clear();
        s.feed("EHLO x\r\nMAIL FROM:<a@example.org> RET=HDRS\r\n");
        auto ev = s.next();
        EXPECT_EQ(s.output().find("250-DSN\r\n") != std::string::npos, offered);
        if (!offered) {
            EXPECT_NE(s.output().find("501 5.7.1 DSN support is disabled"), std::string::npos);
            continue;
        }
        ASSERT_EQ(ev.kind, ServerEvent::Kind::Mail);
        EXPECT_EQ(ev.mail_params.ret, DsnReturn::Headers);
        s.answer(Reply::make(250, "2.1.0", "Ok"));
        s.feed("RCPT TO:<b@example.net> NOTIFY=NEVER\r\n");
        ev = s.next();
        ASSERT_EQ(ev.kind, ServerEvent::Kind::Rcpt);
        EXPECT_EQ(ev.rcpt_params.notify, RcptParameters::Never);
    }
}
