// The spool's reports as the sender asked for them (RFC 3461, 3464), and
// the spool record that keeps what was asked (old files still load).
#include <gtest/gtest.h>

#include "core/dsn.hpp"
#include "core/spool_outcome.hpp"
#include "proto/spool_format.hpp"

namespace smtplb::core {
namespace {

using proto::Reply;
using proto::SpoolRecord;

bool has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

DsnInput input(DsnKind kind) {
    DsnInput in;
    in.kind = kind;
    in.reporting_mta = "mx.example.net";
    in.queue_id = "0000000000001000";
    in.sender = "alice@example.org";
    in.now_ms = 86400000;
    in.retry_until_ms = 5 * 86400000LL;
    in.original_headers = "Subject: hi\r\n";
    in.failed = {{"bob@example.net", "5.1.1", "550 5.1.1 User unknown", "rfc822;Bob@Example.NET"}};
    return in;
}

TEST(DsnReport, CarriesTheEnvelopeIdAndEachOriginalRecipient) {
    auto in = input(DsnKind::Failure);
    in.envelope_id = "QQ+1";
    in.failed.push_back({"carol@example.net", "5.2.2", "552 5.2.2 Full", ""});
    auto dsn = build_dsn(in);
    EXPECT_TRUE(has(dsn, "\r\nOriginal-Envelope-Id: QQ+1\r\nReporting-MTA: dns; mx.example.net"));
    EXPECT_TRUE(has(dsn,
                    "Final-Recipient: rfc822; bob@example.net\r\n"
                    "Original-Recipient: rfc822;Bob@Example.NET\r\nAction: failed\r\n"));
    // No ORCPT: no Original-Recipient field.
    EXPECT_TRUE(has(dsn, "Final-Recipient: rfc822; carol@example.net\r\nAction: failed\r\n"));
    EXPECT_TRUE(has(dsn, "Subject: Undelivered Mail Returned to Sender"));
    EXPECT_TRUE(has(dsn, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
}

TEST(DsnReport, ClientValuesCannotAddFields) {
    auto in = input(DsnKind::Failure);
    in.envelope_id = "x\r\nBcc: evil";  // an ENVID of "x+0D+0ABcc:..." decoded
    in.failed[0].original_recipient = "rfc822;b\r\nBcc: evil";
    auto dsn = build_dsn(in);
    EXPECT_FALSE(has(dsn, "\r\nBcc: evil"));
}

TEST(DsnReport, RetFullReturnsTheWholeMessage) {
    auto in = input(DsnKind::Failure);
    in.original_message = "Subject: hi\r\n\r\nthe body \xc3\xa9\r\n";
    auto dsn = build_dsn(in);
    EXPECT_TRUE(has(dsn,
                    "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    "Subject: hi\r\n\r\nthe body \xc3\xa9\r\n"));
    EXPECT_FALSE(has(dsn, "text/rfc822-headers"));
    EXPECT_EQ(whole_message(proto::StringBody(in.original_message), 10), "");  // over the bound
    EXPECT_EQ(whole_message(proto::StringBody(in.original_message), 1000), in.original_message);
}

TEST(DsnReport, DelayAndRelayedNotices) {
    auto delayed = build_dsn(input(DsnKind::Delay));
    EXPECT_TRUE(has(delayed, "Subject: Delayed Mail (still being retried)"));
    EXPECT_TRUE(has(delayed, "Action: delayed\r\n"));
    EXPECT_TRUE(has(delayed, "Will-Retry-Until: Tue, 06 Jan 1970 00:00:00 +0000\r\n"));
    auto relayed_in = input(DsnKind::Relayed);
    relayed_in.original_message = "never returned for a success";
    auto relayed = build_dsn(relayed_in);
    EXPECT_TRUE(has(relayed, "Subject: Successful Mail Delivery Report"));
    EXPECT_TRUE(has(relayed, "Action: relayed\r\n"));
    EXPECT_TRUE(has(relayed, "Content-Type: text/rfc822-headers"));
    EXPECT_FALSE(has(relayed, "never returned"));
    EXPECT_FALSE(has(relayed, "Action: failed"));
}

std::vector<proto::SpoolRecipient> recipients(const std::vector<std::string>& notify) {
    std::vector<proto::SpoolRecipient> out;
    for (const auto& n : notify) {
        proto::RcptArgument arg;
        EXPECT_FALSE(proto::parse_rcpt_argument("TO:<r@example.net> " + n, arg)) << n;
        out.push_back({arg.path.mailbox, 0, SpoolRecord::Recipient, arg.params});
    }
    return out;
}

TEST(DsnPlan, FailuresAreReportedOnlyWhereNotifyAsks) {
    auto rcpts = recipients({"", "NOTIFY=NEVER", "NOTIFY=SUCCESS", "NOTIFY=FAILURE,DELAY"});
    SpoolOutcome o;
    for (std::size_t i = 0; i < rcpts.size(); ++i)
        o.record(i, Reply::make(550, "5.1.1", "No such user"));
    auto ok = Reply::make(250, "2.0.0", "Ok");
    auto plan = plan_reports(o, rcpts, false, false, ok, false);
    ASSERT_EQ(plan.failed.size(), 2u);
    EXPECT_EQ(plan.failed[0].first, 0u);
    EXPECT_EQ(plan.failed[1].first, 3u);
    EXPECT_TRUE(plan.delayed.empty() && plan.relayed.empty());
    // The file goes: nobody else is owed a word.
    EXPECT_EQ(o.fate(false), SpoolOutcome::Fate::Remove);
    EXPECT_TRUE(plan_reports(o, rcpts, true, true, ok, true).failed.empty());  // never to <>
}

TEST(DsnPlan, DelayNoticesOnceAndOnlyWhenDue) {
    auto rcpts = recipients({"", "NOTIFY=NEVER", "NOTIFY=FAILURE", "NOTIFY=DELAY", ""});
    rcpts[4].state = SpoolRecord::Warned;  // told already
    SpoolOutcome o;
    for (std::size_t i = 0; i < rcpts.size(); ++i)
        o.record(i, Reply::make(451, "4.3.0", "Try later"));
    auto ok = Reply::make(250, "2.0.0", "Ok");
    EXPECT_TRUE(plan_reports(o, rcpts, false, false, ok, false).delayed.empty());
    auto plan = plan_reports(o, rcpts, false, false, ok, true);
    ASSERT_EQ(plan.delayed.size(), 2u);
    EXPECT_EQ(plan.delayed[0].first, 0u);
    EXPECT_EQ(plan.delayed[1].first, 3u);
}

TEST(DsnPlan, RelayedNoticesOnlyForSuccessToABackendWithoutDsn) {
    auto rcpts = recipients({"NOTIFY=SUCCESS", "", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y"});
    SpoolOutcome o;
    for (std::size_t i = 0; i < rcpts.size(); ++i)
        o.record(i, Reply::make(250, "2.0.0", "Ok: queued as 4Efg"));
    auto ok = Reply::make(250, "2.0.0", "Ok: queued as 4Efg");
    EXPECT_TRUE(plan_reports(o, rcpts, false, false, ok, false).relayed.empty());
    auto plan = plan_reports(o, rcpts, false, true, ok, false);
    ASSERT_EQ(plan.relayed.size(), 2u);
    EXPECT_EQ(plan.relayed[1].first, 2u);
    EXPECT_EQ(plan.relayed[1].second.summary(), "250 2.0.0 Ok: queued as 4Efg");
}

std::optional<proto::SpoolLayout> parse(const std::string& file, std::string& error) {
    auto read = [&](std::uint64_t offset, std::size_t n, std::string& out) {
        out = file.substr(offset, n);
        return true;
    };
    return proto::parse_spool(read, file.size(), error);
}

std::string with_body(std::string head, const std::string& body) {
    head += proto::spool_record(SpoolRecord::Body, body);
    return head + proto::spool_end(body.size());
}

TEST(DsnSpoolRecord, ParametersSurviveTheSpool) {
    proto::SpoolEnvelope e;
    e.arrival_ms = 1;
    e.pool = "hubs";
    proto::MailArgument mail;
    ASSERT_FALSE(proto::parse_mail_argument("FROM:<a@example.org> RET=HDRS ENVID=QQ+2B1", mail));
    e.sender = mail.path;
    e.params = mail.params;
    auto rcpts =
        recipients({"NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40example.net", "", "NOTIFY=NEVER"});
    std::vector<proto::Mailbox> mailboxes;
    for (const auto& r : rcpts) {
        mailboxes.push_back(r.mailbox);
        e.recipient_params.push_back(r.params);
    }
    std::string error;
    auto layout = parse(with_body(proto::spool_head(e, mailboxes), "x\r\n"), error);
    ASSERT_TRUE(layout) << error;
    EXPECT_EQ(layout->envelope.params.ret, proto::DsnReturn::Headers);
    EXPECT_EQ(layout->envelope.params.envid, "QQ+2B1");
    ASSERT_EQ(layout->recipients.size(), 3u);
    EXPECT_EQ(layout->recipients[0].params.notify_keywords(), "SUCCESS,DELAY");
    EXPECT_EQ(layout->recipients[0].params.orcpt, "rfc822;b+40example.net");
    EXPECT_TRUE(layout->recipients[1].params.empty());
    EXPECT_EQ(layout->recipients[2].params.notify_keywords(), "NEVER");
}

// A file exactly as the version before DSN wrote it: no 'N' records, MAIL
// parameters without RET or ENVID.
TEST(DsnSpoolRecord, FilesFromThePreviousVersionStillLoad) {
    using proto::spool_record;
    std::string file(proto::kSpoolMagic);
    file += spool_record(SpoolRecord::Arrival, "1795000000000");
    file += spool_record(SpoolRecord::Listener, "internet");
    file += spool_record(SpoolRecord::Pool, "hubs");
    file += spool_record(SpoolRecord::Sender, "alice@example.org");
    file += spool_record(SpoolRecord::Params, "SIZE=1234 BODY=8BITMIME");
    file += spool_record(SpoolRecord::Identity,
                         "addr=203.0.113.9 port=40000 laddr=192.0.2.1 "
                         "lport=25 esmtp=1 helo=client");
    file += spool_record(SpoolRecord::Recipient, "bob@example.net");
    file += spool_record(SpoolRecord::Delivered, "carol@example.net");
    std::string error;
    auto layout = parse(with_body(file, "Subject: x\r\n\r\nbody\r\n"), error);
    ASSERT_TRUE(layout) << error;
    EXPECT_EQ(layout->envelope.params.ret, proto::DsnReturn::Unset);
    EXPECT_TRUE(layout->envelope.params.envid.empty());
    ASSERT_EQ(layout->recipients.size(), 2u);
    EXPECT_TRUE(layout->recipients[0].params.empty());
    EXPECT_TRUE(layout->recipients[0].pending());
    EXPECT_FALSE(layout->recipients[1].pending());
    // Its recipients are told of failures and delays, as before.
    EXPECT_TRUE(layout->recipients[0].params.wants_failure());
}

TEST(DsnSpoolRecord, ADamagedParameterRecordIsRefused) {
    using proto::spool_record;
    std::string head(proto::kSpoolMagic);
    head += spool_record(SpoolRecord::Arrival, "1");
    head += spool_record(SpoolRecord::Pool, "hubs");
    head += spool_record(SpoolRecord::Sender, "");
    std::string error;
    // Before any recipient, twice for one, or unreadable.
    EXPECT_FALSE(parse(with_body(head + spool_record(SpoolRecord::RcptDsn, "NOTIFY=NEVER") +
                                     spool_record(SpoolRecord::Recipient, "b@example.net"),
                                 "x"),
                       error));
    auto r = spool_record(SpoolRecord::Recipient, "b@example.net");
    auto n = spool_record(SpoolRecord::RcptDsn, "NOTIFY=NEVER");
    EXPECT_FALSE(parse(with_body(head + r + n + n, "x"), error));
    EXPECT_FALSE(parse(
        with_body(head + r + spool_record(SpoolRecord::RcptDsn, "NOTIFY=SOMETIMES"), "x"), error));
    EXPECT_FALSE(
        parse(with_body(head + spool_record(SpoolRecord::Params, "RET=MAYBE") + r, "x"), error));
    auto w = spool_record(SpoolRecord::Warned, "b@example.net");
    auto layout = parse(with_body(head + w + n, "x"), error);
    ASSERT_TRUE(layout) << error;
    EXPECT_TRUE(layout->recipients[0].pending());
}

}  // namespace
}  // namespace smtplb::core
