#include <gtest/gtest.h>

#include "proto/capabilities.hpp"
#include "proto/command.hpp"

using namespace smtplb::proto;

namespace {
Path rcpt(const std::string& arg) {
    Path p;
    auto err = parse_rcpt_argument(arg, p);
    EXPECT_FALSE(err) << arg << ": " << (err ? err->text : "");
    return p;
}
bool rcpt_fails(const std::string& arg) {
    Path p;
    return parse_rcpt_argument(arg, p).has_value();
}
}  // namespace

TEST(Address, PlainAndCaseOfDomain) {
    auto p = rcpt("TO:<John.Doe@Example.NET>");
    EXPECT_EQ(p.mailbox.local, "John.Doe");
    EXPECT_EQ(p.mailbox.domain, "example.net");
    EXPECT_FALSE(p.mailbox.has_routing_characters());
}

TEST(Address, SpaceAfterColonIsTolerated) {
    EXPECT_EQ(rcpt("to: <a@b.example>").mailbox.domain, "b.example");
}

TEST(Address, FactsAboutHostileForms) {
    EXPECT_TRUE(rcpt("TO:<@relay.example:user@target.example>").mailbox.had_source_route);
    EXPECT_TRUE(rcpt("TO:<user%target.example@example.net>").mailbox.has_routing_characters());
    EXPECT_TRUE(rcpt("TO:<target.example!user@example.net>").mailbox.has_routing_characters());
    auto q = rcpt("TO:<\"user@target.example\"@example.net>");
    EXPECT_TRUE(q.mailbox.quoted_local);
    EXPECT_TRUE(q.mailbox.has_routing_characters());
    EXPECT_TRUE(rcpt("TO:<user@[192.0.2.1]>").mailbox.address_literal);
}

TEST(Address, PostmasterWithoutDomain) {
    auto p = rcpt("TO:<Postmaster>");
    EXPECT_EQ(p.mailbox.local, "postmaster");
    EXPECT_TRUE(p.mailbox.domain.empty());
    MailArgument m;
    EXPECT_TRUE(parse_mail_argument("FROM:<postmaster>", m));
}

TEST(Address, Malformed) {
    for (const char* bad :
         {"TO:user@example.net", "TO:<user@example.net", "TO:<>", "TO:<user@>", "TO:<@example.net>",
          "TO:<a..b@example.net>", "TO:<.a@example.net>", "TO:<a@-example.net>",
          "TO:<a@example..net>", "TO:<a b@example.net>", "TO:<a@example.net> FOO=bar",
          "TO:<\"unterminated@example.net>", "FROM:<a@example.net>"})
        EXPECT_TRUE(rcpt_fails(bad)) << bad;
    EXPECT_TRUE(rcpt_fails("TO:<" + std::string(300, 'a') + "@example.net>"));
}

TEST(MailArgument, ParametersAndNullSender) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<> SIZE=1000 BODY=8BITMIME", m));
    EXPECT_TRUE(m.path.null);
    EXPECT_EQ(*m.params.size, 1000u);
    EXPECT_TRUE(m.params.body_8bitmime);
    ASSERT_FALSE(parse_mail_argument("FROM:<j\xc3\xb6rg@example.net> SMTPUTF8", m));
    EXPECT_TRUE(m.params.smtputf8);
    auto err = parse_mail_argument("FROM:<j\xc3\xb6rg@example.net>", m);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, 553);
    err = parse_mail_argument("FROM:<a@example.net> FOO=bar", m);
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, 555);
    EXPECT_TRUE(parse_mail_argument("FROM:<a@example.net> SIZE=12x", m));
    EXPECT_TRUE(parse_mail_argument("FROM:<a@example.net> BODY=BINARYMIME", m));
}

// RFC 4954 §5: AUTH=<> or an xtext address, kept as sent.
TEST(MailArgument, AuthParameter) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.net> AUTH=<>", m));
    EXPECT_EQ(*m.params.auth, "<>");
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.net> AUTH=j+2Bsales@example.net", m));
    EXPECT_EQ(*m.params.auth, "j+2Bsales@example.net");
    for (const char* bad :
         {"FROM:<a@example.net> AUTH=", "FROM:<a@example.net> AUTH=nobody",
          "FROM:<a@example.net> AUTH=a+2@example.net", "FROM:<a@example.net> AUTH=a+20b@c.example",
          "FROM:<a@example.net> AUTH=<> AUTH=<>", "FROM:<a@example.net> AUTH=a@b=c"}) {
        auto err = parse_mail_argument(bad, m);
        ASSERT_TRUE(err) << bad;
        EXPECT_EQ(err->code, 501) << bad;
    }
    EXPECT_TRUE(parse_mail_argument(
        "FROM:<a@example.net> AUTH=" + std::string(kMaxAuthParameter, 'a') + "@b.example", m));
}

TEST(MailArgument, AuthGoesOnlyToABackendThatAnnouncesAuth) {
    MailArgument m;
    ASSERT_FALSE(parse_mail_argument("FROM:<a@example.net> AUTH=a@example.net", m));
    Capabilities plain;
    EXPECT_EQ(mail_command(m.path, m.params, plain), "MAIL FROM:<a@example.net>\r\n");
    Capabilities with_auth;
    with_auth.auth_mechanisms = {"PLAIN"};
    EXPECT_EQ(mail_command(m.path, m.params, with_auth),
              "MAIL FROM:<a@example.net> AUTH=a@example.net\r\n");
}

TEST(Command, TableLookupIsCaseInsensitive) {
    auto c = parse_command("mail FROM:<a@b.example>");
    ASSERT_TRUE(c.spec);
    EXPECT_EQ(c.spec->verb, Verb::Mail);
    EXPECT_EQ(c.argument, "FROM:<a@b.example>");
    EXPECT_FALSE(parse_command("MAILX FROM:<a@b>").spec);
    EXPECT_TRUE(find_command("DATA")->ends_pipeline_group);
    EXPECT_FALSE(find_command("RCPT")->ends_pipeline_group);
}
