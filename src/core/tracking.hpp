#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace smtplb::core {

// One backend attempt of a transaction, for the tracking log.
struct AttemptRecord {
    std::string backend;
    std::string stage;  // connect | greeting | ehlo | xclient | mail | rcpt | data | message
    std::string reply;  // the reply summary, or the failure
    std::string tls;    // the TLS of that backend connection, "" for plaintext
};

// One recipient the client gave, and what it was answered.
struct RecipientRecord {
    std::string address;
    std::string reply;  // the reply summary: "250 2.1.5 Ok", "554 5.7.1 ..."
};

// One line of the tracking log (JSON Lines), one per transaction.
struct TrackingRecord {
    std::int64_t time_ms = 0;
    std::string listener;
    std::string client_address;
    std::uint16_t client_port = 0;
    // The client's verified host name, or [UNAVAILABLE] / [TEMPUNAVAIL];
    // empty (and not logged) when not looked up.
    std::string client_name;
    std::string helo;
    // The client's TLS, when it used TLS: "TLSv1.3 TLS_AES_256_GCM_SHA384",
    // and its certificate's subject and SHA-256 fingerprint when it sent one.
    std::string tls;
    std::string client_cert;
    std::string client_cert_sha256;
    std::string login;  // the SASL login of an authenticated client
    std::string sender;
    std::size_t recipients = 0;  // accepted ones
    std::vector<std::string> recipient_domains;
    // Every RCPT of the transaction, accepted or not, in order; at most
    // kMaxRecipientRecords, the rest only counted.
    static constexpr std::size_t kMaxRecipientRecords = 1000;
    std::vector<RecipientRecord> recipient_list;
    std::size_t recipients_omitted = 0;
    std::string message_id;  // the message's Message-ID header, when it has one
    std::uint64_t size = 0;
    std::string pool;
    std::vector<AttemptRecord> attempts;
    std::string queue_id;  // from the backend's 250, when it names one
    std::string spool_id;  // ours, for a message that went through the spool
    // relayed | rejected | tempfailed | aborted | spooled; from the spool:
    // delivered | deferred | bounced | dead
    std::string result;
    std::string reply;     // what the client was finally told
    std::string identity;  // what the backend was given: xclient | proxy-v1 | proxy-v2 | none
    std::int64_t duration_ms = 0;

    std::string to_json() const;
};

// A line for an operator's action on a spooled message.
struct QueueActionRecord {
    std::int64_t time_ms = 0;
    std::string result;  // held | released | deleted
    std::string spool_id;
    std::string by;  // api | cli
    std::string pool;
    std::string client;
    std::uint64_t size = 0;

    std::string to_json() const;
};

// A line for each refusal or hold by a [[limit]]: which limit, which key,
// at which event, and what the client was told.
struct LimitRecord {
    std::int64_t time_ms = 0;
    std::string action;  // tempfail | delay
    std::string event;   // connect | mail | rcpt | data
    std::string limit;   // the limit's name
    std::string key;     // its key ("sender=a@example.org"): may name a sender
    std::string listener;
    std::string client;
    std::uint16_t client_port = 0;
    std::string login;   // when authenticated
    std::string sender;  // from MAIL on ("" for <>: see has_sender)
    bool has_sender = false;
    std::string recipient;     // at RCPT
    std::int64_t hold_ms = 0;  // how long the reply was held
    std::string reply;         // tempfail: the refusal

    std::string to_json() const;
};

// "250 2.0.0 Ok: queued as 4Xyz" -> "4Xyz"; empty when none is named.
std::string queue_id_from(const std::string& reply_text);
// The queue id in a backend's 250 to the end of data, whatever line holds
// it: the first line with "queued as ID" (Postfix: "Ok: queued as 4Xyz"),
// else the last line's whole text (what other servers say to identify it).
std::string queue_id_from(const std::vector<std::string>& reply_lines);

}  // namespace smtplb::core
