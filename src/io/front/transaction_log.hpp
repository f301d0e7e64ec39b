#pragma once
#include <chrono>
#include <optional>
#include <set>
#include <string>

#include "core/tracking.hpp"
#include "proto/address.hpp"
#include "proto/data_decoder.hpp"
#include "proto/reply.hpp"

namespace smtplb::io {

// What the current transaction's tracking line needs, gathered as the
// session goes; made at MAIL, so an idle connection does not carry it (the
// per-connection memory budget).
struct TransactionLog {
    core::TrackingRecord record;
    std::chrono::steady_clock::time_point started;
    std::set<std::string> domains;
    std::size_t rcpts_accepted = 0;
    std::optional<proto::Reply> last_refusal;

    // One RCPT and its answer (the list is bounded; the rest is counted).
    void note_recipient(const proto::Mailbox& rcpt, const proto::Reply& reply);
    // Reads the received message's header section for its Message-ID.
    void find_message_id(const proto::BodySource& body);
};

}  // namespace smtplb::io
