#include <gtest/gtest.h>

#include "core/dsn.hpp"
#include "core/spool_outcome.hpp"
#include "core/spool_queue.hpp"
#include "core/spool_store.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/fault_spool_files.hpp"
#include "mocks/scripted_random.hpp"

namespace smtplb::core {
namespace {

using proto::SpoolRecord;

using proto::StringBody;

proto::Mailbox mailbox(const std::string& local, const std::string& domain) {
    proto::Mailbox m;
    m.local = local;
    m.domain = domain;
    return m;
}

proto::SpoolEnvelope envelope() {
    proto::SpoolEnvelope e;
    e.arrival_ms = 1795000000000;
    e.listener = "internet";
    e.pool = "hubs";
    e.sender.mailbox = mailbox("alice", "example.org");
    e.params.size = 1234;
    e.params.body_8bitmime = true;
    e.params.auth = "a+2Bb@client.example";
    e.identity.address = *base::IpAddress::parse("203.0.113.9");
    e.identity.port = 40000;
    e.identity.local_address = *base::IpAddress::parse("192.0.2.1");
    e.identity.local_port = 25;
    e.identity.helo = "client host+=";
    e.identity.name = "[TEMPUNAVAIL]";
    e.identity.reverse_name = "client.example";
    return e;
}

std::string body_of(const proto::BodySource& body) {
    std::string out, scratch;
    for (std::uint64_t at = 0; at < body.size();) {
        auto chunk = body.chunk_at(at, 1000, scratch);
        if (chunk.empty()) break;
        out += chunk;
        at += chunk.size();
    }
    return out;
}

const std::string kBody = "Subject: hi\r\n\r\n" + std::string(150000, 'x') + "\r\n";

TEST(SpoolStore, CommitThenLoadGivesBackEnvelopeRecipientsAndBody) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    ASSERT_FALSE(store.prepare());
    std::vector<proto::Mailbox> rcpts{mailbox("bob", "example.net"),
                                      mailbox("carol", "example.net")};
    auto result = store.commit("0000000000001000", envelope(), rcpts, StringBody(kBody));
    ASSERT_FALSE(result.error) << result.stage;
    EXPECT_EQ(result.bytes, fs.content("/s/queue/0000000000001000").size());
    EXPECT_FALSE(fs.exists("/s/tmp/0000000000001000"));
    std::string error;
    auto msg = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(msg) << error;
    const auto& e = msg->layout().envelope;
    EXPECT_EQ(e.arrival_ms, 1795000000000);
    EXPECT_EQ(e.pool, "hubs");
    EXPECT_EQ(e.listener, "internet");
    EXPECT_EQ(e.sender.mailbox.address(), "alice@example.org");
    EXPECT_EQ(e.params.size, 1234u);
    EXPECT_TRUE(e.params.body_8bitmime);
    EXPECT_EQ(e.params.auth, "a+2Bb@client.example");
    EXPECT_EQ(e.identity.address.to_string(), "203.0.113.9");
    EXPECT_EQ(e.identity.port, 40000);
    EXPECT_EQ(e.identity.helo, "client host+=");
    EXPECT_EQ(e.identity.name, "[TEMPUNAVAIL]");
    EXPECT_EQ(e.identity.reverse_name, "client.example");
    ASSERT_EQ(msg->layout().recipients.size(), 2u);
    EXPECT_EQ(msg->layout().recipients[1].mailbox.address(), "carol@example.net");
    EXPECT_EQ(body_of(*msg), kBody);
}

// A client's message, held dot-stuffed as the balancer holds it, and
// served in small pieces so a stuffing dot falls on a chunk boundary.
class TransmissionBody final : public proto::BodySource {
  public:
    explicit TransmissionBody(std::string wire) : wire_(std::move(wire)) {}
    std::uint64_t size() const override { return wire_.size(); }
    std::string_view chunk_at(std::uint64_t offset, std::size_t max, std::string&) const override {
        if (offset >= wire_.size()) return {};
        return std::string_view(wire_).substr(static_cast<std::size_t>(offset),
                                              std::min<std::size_t>(max, 7));
    }
    proto::BodyForm form() const override { return proto::BodyForm::Transmission; }

  private:
    std::string wire_;
};

TEST(SpoolStore, AMessageHeldStuffedIsSpooledAsContent) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    ASSERT_FALSE(store.prepare());
    const std::string content = "Subject: .dots\r\n\r\n.\r\n..two\r\nabcdef\r\n.x\r\n";
    const std::string wire = "Subject: .dots\r\n\r\n..\r\n...two\r\nabcdef\r\n..x\r\n";
    auto result = store.commit("0000000000001000", envelope(), {mailbox("bob", "example.net")},
                               TransmissionBody(wire));
    ASSERT_FALSE(result.error) << result.stage;
    std::string error;
    auto msg = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(msg) << error;
    EXPECT_EQ(msg->size(), content.size());
    EXPECT_EQ(body_of(*msg), content);
}

TEST(SpoolStore, MarkedRecipientsStayMarkedAfterReload) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    store.prepare();
    std::vector<proto::Mailbox> rcpts{mailbox("bob", "example.net"),
                                      mailbox("carol", "example.net")};
    ASSERT_FALSE(store.commit("0000000000001000", envelope(), rcpts, StringBody("x\r\n")).error);
    std::string error;
    auto msg = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(msg);
    ASSERT_FALSE(store.mark(SpoolArea::Queue, msg->id(), msg->layout().recipients[0].offset,
                            SpoolRecord::Delivered));
    fs.power_cut();
    auto again = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(again) << error;
    EXPECT_EQ(again->layout().recipients[0].state, SpoolRecord::Delivered);
    EXPECT_EQ(again->layout().recipients[1].state, SpoolRecord::Recipient);
}

// The delivery contract at every step of the commit protocol: the process
// dies after n operations, then the power goes. An acknowledged message is
// always there and whole; one not acknowledged may be there (a duplicate
// when the client sends it again) but never half-written in the queue.
TEST(SpoolStore, PowerCutAtEveryStepNeverLosesAnAcknowledgedMessage) {
    int total = 0;
    {
        testing::FaultSpoolFiles fs;
        SpoolStore store(fs, "/s");
        store.prepare();
        ASSERT_FALSE(store
                         .commit("0000000000001000", envelope(), {mailbox("bob", "example.net")},
                                 StringBody(kBody))
                         .error);
        total = fs.operations();
    }
    ASSERT_GT(total, 5);
    int acknowledged = 0, kept_unacknowledged = 0;
    for (int n = 0; n <= total; ++n) {
        testing::FaultSpoolFiles fs;
        SpoolStore store(fs, "/s");
        store.prepare();
        fs.crash_after(n);
        auto result = store.commit("0000000000001000", envelope(), {mailbox("bob", "example.net")},
                                   StringBody(kBody));
        fs.power_cut();
        store.quarantine_incomplete();
        std::error_code ec;
        auto queued = store.list(SpoolArea::Queue, ec);
        std::string error;
        if (!result.error) {
            ++acknowledged;
            ASSERT_EQ(queued.size(), 1u) << "acknowledged but lost, crash after " << n;
        } else if (!queued.empty()) {
            ++kept_unacknowledged;
        }
        if (!queued.empty()) {
            auto msg = store.load(SpoolArea::Queue, queued[0].name, error);
            ASSERT_TRUE(msg) << "a damaged file in the queue after crash " << n << ": " << error;
            EXPECT_EQ(body_of(*msg), kBody);
        }
        EXPECT_TRUE(store.list(SpoolArea::Tmp, ec).empty());
    }
    EXPECT_EQ(acknowledged, 1);  // only the run that completed every step
    EXPECT_EQ(kept_unacknowledged, 0);
}

TEST(SpoolStore, EveryFailedStepLeavesNothingBehindAndIsReported) {
    for (auto op : {"create", "write", "sync", "rename", "sync_dir"}) {
        for (auto error : {std::errc::no_space_on_device, std::errc::io_error}) {
            testing::FaultSpoolFiles fs;
            SpoolStore store(fs, "/s");
            store.prepare();
            fs.fail_next(op, error);
            auto result = store.commit("0000000000001000", envelope(),
                                       {mailbox("bob", "example.net")}, StringBody(kBody));
            EXPECT_EQ(result.error, std::make_error_code(error)) << op;
            std::error_code ec;
            EXPECT_TRUE(store.list(SpoolArea::Queue, ec).empty()) << op;
            EXPECT_TRUE(store.list(SpoolArea::Tmp, ec).empty()) << op;
        }
    }
}

// The last crash point of the delivery contract: a backend said 250, then
// the process died before the recipient was marked. The recipient is still
// pending after the restart: delivered again (a duplicate), never lost.
TEST(SpoolStore, CrashAfterTheBackendsReplyBeforeTheMarkDeliversAgain) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    store.prepare();
    ASSERT_FALSE(store
                     .commit("0000000000001000", envelope(), {mailbox("bob", "example.net")},
                             StringBody("x\r\n"))
                     .error);
    std::string error;
    auto msg = store.load(SpoolArea::Queue, "0000000000001000", error);
    fs.crash_after(0);
    EXPECT_TRUE(store.mark(SpoolArea::Queue, msg->id(), msg->layout().recipients[0].offset,
                           SpoolRecord::Delivered));
    fs.power_cut();
    auto again = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(again) << error;
    EXPECT_EQ(again->layout().recipients[0].state, SpoolRecord::Recipient);
}

TEST(SpoolStore, LeftoversInTmpAreQuarantinedNotDelivered) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    store.prepare();
    std::error_code ec;
    auto w = fs.create("/s/tmp/0000000000002000", ec);
    w->write("SMTPLB-SPOOL 1\n");
    w->sync();
    fs.sync_dir("/s/tmp");
    w.reset();
    EXPECT_EQ(store.quarantine_incomplete(), 1u);
    EXPECT_TRUE(fs.exists("/s/corrupt/0000000000002000"));
    EXPECT_TRUE(store.list(SpoolArea::Queue, ec).empty());
}

TEST(SpoolFormat, TruncatedOrDamagedFilesAreRefused) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    store.prepare();
    ASSERT_FALSE(store
                     .commit("0000000000001000", envelope(), {mailbox("bob", "example.net")},
                             StringBody("hello\r\n"))
                     .error);
    const auto path = "/s/queue/0000000000001000";
    const std::string whole = fs.content(path);
    std::string error;
    // Every proper prefix lacks END (or is cut inside a record).
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
        fs.overwrite(path, whole.substr(0, cut));
        EXPECT_FALSE(store.load(SpoolArea::Queue, "0000000000001000", error)) << cut;
    }
    // A wrong END size, an unknown record, a giant length, trailing bytes.
    auto end_at = whole.rfind('E');
    for (std::string bad :
         {whole.substr(0, end_at) + proto::spool_end(99),
          whole.substr(0, end_at) + proto::spool_record(SpoolRecord{'Z'}, "") +
              whole.substr(end_at),
          whole.substr(0, end_at) + std::string("B\xff\xff\xff\xff", 5), whole + "junk"}) {
        fs.overwrite(path, bad);
        EXPECT_FALSE(store.load(SpoolArea::Queue, "0000000000001000", error));
    }
    fs.overwrite(path, whole);
    EXPECT_TRUE(store.load(SpoolArea::Queue, "0000000000001000", error)) << error;
}

TEST(SpoolId, SortsByArrivalAndCarriesItsTime) {
    auto a = make_spool_id(1795000000000123, 1);
    auto b = make_spool_id(1795000000000124, 0);
    EXPECT_TRUE(valid_spool_id(a));
    EXPECT_LT(a, b);
    EXPECT_EQ(spool_id_time_ms(a), 1795000000000);
    EXPECT_FALSE(valid_spool_id("../../etc/passwd"));
    EXPECT_FALSE(valid_spool_id("0000000000001g00"));
}

TEST(SpoolQueue, OldestFirstWithBackoffAndConcurrencyLimit) {
    testing::FakeClock clock;
    testing::ScriptedRandom random{{0}};
    SpoolQueue q(clock, random,
                 {std::chrono::seconds(60), std::chrono::seconds(600), std::chrono::hours(120)});
    q.add("0000000000000003", 3, 10);
    q.add("0000000000000001", 1, 10);
    q.add("0000000000000002", 2, 10);
    auto due = q.take_due(2);
    ASSERT_EQ(due, (std::vector<std::string>{"0000000000000001", "0000000000000002"}));
    EXPECT_EQ(q.busy(), 2u);
    EXPECT_EQ(q.take_due(5), std::vector<std::string>{"0000000000000003"});
    q.deferred("0000000000000001", "451 busy");
    q.remove("0000000000000002");
    EXPECT_EQ(q.size(), 2u);
    EXPECT_TRUE(q.take_due(5).empty());  // deferred: not before the backoff
    clock.advance(std::chrono::seconds(61));
    EXPECT_EQ(q.take_due(5), std::vector<std::string>{"0000000000000001"});
    EXPECT_EQ(q.backoff(1), std::chrono::seconds(60));
    EXPECT_EQ(q.backoff(2), std::chrono::seconds(120));
    EXPECT_EQ(q.backoff(10), std::chrono::seconds(600));
}

TEST(SpoolQueue, HoldReleaseAndFlush) {
    testing::FakeClock clock;
    testing::ScriptedRandom random{{0}};
    SpoolQueue q(clock, random, {});
    q.add("0000000000000001", 1, 10);
    EXPECT_TRUE(q.hold("0000000000000001"));
    EXPECT_TRUE(q.take_due(5).empty());
    EXPECT_EQ(q.held(), 1u);
    EXPECT_TRUE(q.release("0000000000000001"));
    EXPECT_FALSE(q.release("0000000000000001"));
    auto due = q.take_due(5);
    ASSERT_EQ(due.size(), 1u);
    EXPECT_FALSE(q.hold("0000000000000001"));  // busy
    q.deferred("0000000000000001", "x");
    EXPECT_TRUE(q.take_due(5).empty());
    q.flush();
    EXPECT_EQ(q.take_due(5).size(), 1u);
}

TEST(SpoolQueue, AClientsNextMessageIsFoundWithoutScanningOthers) {
    testing::FakeClock clock;
    testing::ScriptedRandom random{{0}};
    SpoolQueue q(clock, random, {});
    q.add("0000000000000001", 1, 10, false, "hubs", "client-a");
    q.add("0000000000000002", 2, 10, false, "hubs", "client-b");
    q.add("0000000000000003", 3, 10, false, "hubs", "client-a");
    q.add("0000000000000004", 4, 10, false, "hubs", "client-a");
    ASSERT_EQ(q.take_due(1), std::vector<std::string>{"0000000000000001"});
    EXPECT_EQ(q.take_next_for_client("client-a"), "0000000000000003");
    q.deferred("0000000000000003", "later");
    EXPECT_EQ(q.take_next_for_client("client-a"), "0000000000000004");
    EXPECT_FALSE(q.take_next_for_client("client-a"));  // 3 waits out its backoff
    EXPECT_FALSE(q.take_next_for_client("client-c"));
    EXPECT_EQ(q.take_due(5), std::vector<std::string>{"0000000000000002"});
    clock.advance(std::chrono::hours(1));
    q.set_route("0000000000000003", "hubs", "client-z");
    EXPECT_EQ(q.take_next_for_client("client-z"), "0000000000000003");
    EXPECT_EQ(q.busy(), 4u);
}

TEST(SpoolQueue, ExpiresAfterItsLifetime) {
    testing::FakeClock clock;
    testing::ScriptedRandom random{{0}};
    SpoolQueue q(clock, random,
                 {std::chrono::seconds(1), std::chrono::seconds(1), std::chrono::hours(1)});
    q.add("0000000000000001", 1000, 10);
    EXPECT_FALSE(q.expired("0000000000000001", 1000 + 3599999));
    EXPECT_TRUE(q.expired("0000000000000001", 1000 + 3600000));
}

TEST(SpoolOutcome, AllDeliveredRemovesTheFileWithoutMarks) {
    SpoolOutcome o;
    o.record(0, proto::Reply::make(250, "2.0.0", "Ok"));
    o.record(1, proto::Reply::make(250, "2.0.0", "Ok"));
    EXPECT_EQ(o.fate(false), SpoolOutcome::Fate::Remove);
    EXPECT_TRUE(o.marks(false).empty());
    EXPECT_FALSE(o.needs_report(false));
    EXPECT_STREQ(o.result(false), "delivered");
}

TEST(SpoolOutcome, ADeferredRecipientKeepsTheFileAndMarksTheOthers) {
    SpoolOutcome o;
    o.record(0, proto::Reply::make(250, "2.0.0", "Ok"));
    o.record(1, proto::Reply::make(451, "4.2.0", "Try later"));
    o.record(2, proto::Reply::make(550, "5.1.1", "No such user"));
    EXPECT_EQ(o.fate(false), SpoolOutcome::Fate::Keep);
    EXPECT_TRUE(o.needs_report(false));
    using proto::SpoolRecord;
    EXPECT_EQ(o.marks(false), (std::vector<std::pair<std::size_t, SpoolRecord>>{
                                  {0, SpoolRecord::Delivered}, {2, SpoolRecord::Failed}}));
    EXPECT_STREQ(o.result(false), "deferred");
    // Only deferred ones, nothing to mark: the file stays as it is.
    SpoolOutcome only_deferred;
    only_deferred.record(0, proto::Reply::make(421, "4.3.2", "Shutting down"));
    EXPECT_EQ(only_deferred.fate(false), SpoolOutcome::Fate::Keep);
    EXPECT_TRUE(only_deferred.marks(false).empty());
}

TEST(SpoolOutcome, ExpiryTurnsDeferralsIntoBouncesWith447) {
    SpoolOutcome o;
    o.record(0, proto::Reply::make(451, "4.2.0", "Try later"));
    o.expire(std::chrono::hours(120));
    ASSERT_EQ(o.failed.size(), 1u);
    EXPECT_EQ(o.failed[0].second.enhanced, "4.4.7");
    EXPECT_NE(
        o.failed[0].second.summary().find("432000s in the queue; last reply: 451 4.2.0 Try later"),
        std::string::npos);
    EXPECT_EQ(o.fate(false), SpoolOutcome::Fate::Remove);
    EXPECT_STREQ(o.result(false), "bounced");
}

TEST(SpoolOutcome, NullSenderFailuresGoToDeadAndAFailedReportIsRetried) {
    SpoolOutcome o;
    o.record(0, proto::Reply::make(250, "2.0.0", "Ok"));
    o.record(1, proto::Reply::make(550, "5.1.1", "No such user"));
    EXPECT_FALSE(o.needs_report(true));
    EXPECT_EQ(o.fate(true), SpoolOutcome::Fate::Dead);
    EXPECT_EQ(o.marks(true).size(), 1u);  // the delivered one; the failure stays visible
    EXPECT_STREQ(o.result(true), "dead");
    o.keep_failures_for_later();  // the DSN could not be written
    EXPECT_EQ(o.fate(false), SpoolOutcome::Fate::Keep);
    EXPECT_TRUE(o.failed.empty());
}

TEST(Dsn, IsAMultipartReportWithOneBlockPerFailedRecipient) {
    DsnInput in;
    in.reporting_mta = "mx.example.net";
    in.queue_id = "0000000000001000";
    in.sender = "alice@example.org";
    in.arrival_ms = 0;
    in.now_ms = 86400000;
    in.failed = {{"bob@example.net", "5.1.1", "550 5.1.1 <bob@example.net>: User unknown"},
                 {"carol@example.net", "4.4.7", "message expired after 5 days\r\nBcc: evil"}};
    in.original_headers = "Subject: hi\r\nFrom: alice@example.org\r\n";
    auto dsn = build_dsn(in);
    EXPECT_NE(dsn.find("Content-Type: multipart/report; report-type=delivery-status;"),
              std::string::npos);
    EXPECT_NE(dsn.find("Content-Type: message/delivery-status"), std::string::npos);
    EXPECT_NE(dsn.find("Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: "
                       "5.1.1\r\n"),
              std::string::npos);
    EXPECT_NE(dsn.find("Arrival-Date: Thu, 01 Jan 1970 00:00:00 +0000"), std::string::npos);
    EXPECT_NE(dsn.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"),
              std::string::npos);
    EXPECT_EQ(dsn.find("\r\nBcc: evil"), std::string::npos);  // no header injection
    EXPECT_EQ(dsn.find("\n\n"), std::string::npos);
    for (std::size_t at = dsn.find('\n'); at != std::string::npos; at = dsn.find('\n', at + 1))
        EXPECT_EQ(dsn[at - 1], '\r');
}

TEST(Dsn, HeaderSectionStopsAtTheEmptyLine) {
    EXPECT_EQ(header_section(StringBody("A: 1\r\nB: 2\r\n\r\nbody\r\n")), "A: 1\r\nB: 2\r\n");
    EXPECT_EQ(header_section(StringBody("A: 1\r\nB: 2"), 8), "A: 1\r\n");
}

TEST(Dsn, HeaderSectionOfAStuffedMessageIsContent) {
    EXPECT_EQ(header_section(TransmissionBody("..A: 1\r\nB: 2\r\n\r\n..body\r\n")),
              ".A: 1\r\nB: 2\r\n");
}

// issue 25 (caps): a spooled message keeps SMTPUTF8 and REQUIRETLS, so its
// delivery later obeys the same rules (docs/esmtp.md, REQUIRETLS).
TEST(SpoolStore, SmtpUtf8AndRequireTlsSurviveTheSpool) {
    testing::FaultSpoolFiles fs;
    SpoolStore store(fs, "/s");
    ASSERT_FALSE(store.prepare());
    auto env = envelope();
    env.params.smtputf8 = true;
    env.params.requiretls = true;
    auto result =
        store.commit("0000000000001000", env, {mailbox("bob", "example.net")}, StringBody(kBody));
    ASSERT_FALSE(result.error) << result.stage;
    std::string error;
    auto msg = store.load(SpoolArea::Queue, "0000000000001000", error);
    ASSERT_TRUE(msg) << error;
    EXPECT_TRUE(msg->layout().envelope.params.smtputf8);
    EXPECT_TRUE(msg->layout().envelope.params.requiretls);
}

}  // namespace
}  // namespace smtplb::core
