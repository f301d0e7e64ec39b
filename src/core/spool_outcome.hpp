#pragma once
#include <chrono>
#include <cstddef>
#include <utility>
#include <vector>

#include "proto/reply.hpp"
#include "proto/spool_format.hpp"

namespace smtplb::core {

// What one delivery attempt from the spool decided, recipient by recipient,
// and what follows for the file: pure, so every case is a unit test.
class SpoolOutcome {
  public:
    // The final word for a pending recipient: its RCPT reply, or for one a
    // backend accepted, the reply to the end of data.
    void record(std::size_t recipient, const proto::Reply& reply);
    // Past max_queue_lifetime: temporary failures become final (4.4.7).
    void expire(std::chrono::milliseconds lifetime);
    // The report could not be committed: retry the failures rather than lose it.
    void keep_failures_for_later();

    // A DSN goes to the sender; never to "<>".
    bool needs_report(bool null_sender) const { return !failed.empty() && !null_sender; }
    enum class Fate {
        Keep,    // recipients are left: retry later
        Remove,  // nothing is left to do: removing the file is the record
        Dead,    // failures nobody can be told of: kept in dead/
    };
    Fate fate(bool null_sender) const;
    // Recipients whose fate is written into the file: only when it stays.
    std::vector<std::pair<std::size_t, proto::SpoolRecord>> marks(bool null_sender) const;
    // For the tracking log: delivered | deferred | bounced | dead.
    const char* result(bool null_sender) const;

    std::vector<std::size_t> delivered;
    std::vector<std::pair<std::size_t, proto::Reply>> failed;    // permanent
    std::vector<std::pair<std::size_t, proto::Reply>> deferred;  // temporary
};

// Whom the sender is told of after an attempt, as each recipient asked
// (RFC 3461 NOTIFY; none is ever told to "<>"). Pairs of a recipient's
// index in the file and the reply reported.
struct SpoolReports {
    using List = std::vector<std::pair<std::size_t, proto::Reply>>;
    List failed;   // final failures: NOTIFY without FAILURE (or NEVER) are left out
    List delayed;  // still deferred, delay_warning_time passed, not told yet
    List relayed;  // taken by a backend without DSN, NOTIFY has SUCCESS
};
// `relayed_without_dsn`: the backend that took `delivered` announced no DSN
// (`final_reply` its 250); `delay_due`: the message has waited long enough.
SpoolReports plan_reports(const SpoolOutcome& outcome,
                          const std::vector<proto::SpoolRecipient>& recipients, bool null_sender,
                          bool relayed_without_dsn, const proto::Reply& final_reply,
                          bool delay_due);

}  // namespace smtplb::core
