#include "core/tracking.hpp"

#include <gtest/gtest.h>

namespace smtplb::core {
namespace {

TEST(TrackingRecord, RecipientsWithTheirRepliesAndTheMessageId) {
    TrackingRecord r;
    r.sender = "a@example.org";
    r.helo = "client.test";
    r.recipients = 1;
    r.recipient_list = {{"b@example.net", "250 2.1.5 Ok"},
                        {"x@elsewhere.example", "554 5.7.1 Relay access denied"}};
    r.message_id = "<1@client.test>";
    auto json = r.to_json();
    EXPECT_NE(json.find("\"recipients\":1,"), std::string::npos) << json;
    EXPECT_NE(json.find("\"recipient_list\":[{\"address\":\"b@example.net\",\"reply\":\"250 2.1.5 "
                        "Ok\"},{\"address\":\"x@elsewhere.example\",\"reply\":\"554 5.7.1 Relay "
                        "access denied\"}]"),
              std::string::npos)
        << json;
    EXPECT_NE(json.find("\"message_id\":\"<1@client.test>\""), std::string::npos) << json;
    EXPECT_EQ(json.find("recipients_omitted"), std::string::npos);
    r.recipients_omitted = 3;
    EXPECT_NE(r.to_json().find("\"recipients_omitted\":3"), std::string::npos);
}

TEST(TrackingRecord, NoMessageIdNoField) {
    TrackingRecord r;
    auto json = r.to_json();
    EXPECT_EQ(json.find("message_id"), std::string::npos);
    EXPECT_NE(json.find("\"recipient_list\":[]"), std::string::npos);
}

TEST(QueueActionRecord, SaysWhatWhoAndWhich) {
    QueueActionRecord r{1764772800000, "held", "0F3A9C2B7D1E4A65", "cli", "hubs", "192.0.2.7", 10};
    EXPECT_EQ(r.to_json(),
              "{\"time_ms\":1764772800000,\"result\":\"held\",\"spool_id\":\"0F3A9C2B7D1E4A65\","
              "\"by\":\"cli\",\"pool\":\"hubs\",\"client\":\"192.0.2.7\",\"size\":10}");
}

TEST(LimitRecord, NamesTheLimitTheKeyAndWhatTheClientWasTold) {
    LimitRecord r;
    r.time_ms = 1764772800000;
    r.action = "tempfail";
    r.event = "mail";
    r.limit = "per-sender";
    r.key = "sender=a@example.org";
    r.listener = "internet";
    r.client = "192.0.2.7";
    r.client_port = 40001;
    r.has_sender = true;
    r.sender = "a@example.org";
    r.reply = "451 4.7.1 Too many messages";
    EXPECT_EQ(r.to_json(),
              "{\"time_ms\":1764772800000,\"result\":\"limited\",\"action\":\"tempfail\","
              "\"event\":\"mail\",\"limit\":\"per-sender\",\"key\":\"sender=a@example.org\","
              "\"listener\":\"internet\",\"client\":\"192.0.2.7\",\"client_port\":40001,"
              "\"sender\":\"a@example.org\",\"hold_ms\":0,\"reply\":\"451 4.7.1 Too many "
              "messages\"}");
}

TEST(LimitRecord, AtConnectNoSenderAndAHoldWithoutReply) {
    LimitRecord r;
    r.action = "delay";
    r.event = "connect";
    r.hold_ms = 2500;
    auto json = r.to_json();
    EXPECT_EQ(json.find("\"sender\""), std::string::npos) << json;
    EXPECT_EQ(json.find("\"reply\""), std::string::npos) << json;
    EXPECT_EQ(json.find("\"recipient\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"hold_ms\":2500"), std::string::npos) << json;
    // The null sender is a sender all the same.
    r.has_sender = true;
    EXPECT_NE(r.to_json().find("\"sender\":\"\""), std::string::npos);
}

}  // namespace
}  // namespace smtplb::core
