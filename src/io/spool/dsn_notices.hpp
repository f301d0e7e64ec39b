#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dsn.hpp"
#include "io/asio.hpp"
#include "proto/address.hpp"
#include "proto/command.hpp"
#include "proto/data_decoder.hpp"
#include "proto/identity.hpp"
#include "proto/reply.hpp"

namespace smtplb::io {

class Balancer;
class Spool;
class TransactionExecutor;

// A report is mail smtplb writes itself: it presents itself to the backend
// as coming from this host, which backends trust to relay (mynetworks).
proto::ClientIdentity local_identity(const std::string& hostname);

// Where a report goes and how it is delivered: a new spooled message from
// "<>" to `sender`, through `pool` like any other spooled message.
struct ReportRoute {
    std::string hostname;  // Reporting-MTA and the From: address's domain
    std::string listener;
    std::string pool;
    proto::Mailbox sender;
};

// Commits `report` (core::build_dsn's text) to the spool; the new spool ID,
// or "" when the spool could not take it (full, a write error).
awaitable<std::string> spool_report(Spool& spool, const ReportRoute& route, std::string report,
                                    std::int64_t now_ms);

// One recipient of a message a backend without DSN took (RFC 3461 §4.2).
struct RelayedRecipient {
    proto::Mailbox mailbox;
    proto::RcptParameters params;
};

// The "relayed" notice owed to the sender for the recipients that asked
// NOTIFY=SUCCESS; without recipients (nothing to send) when none did or the
// sender is "<>" (never reported to).
core::DsnInput relayed_notice(const ReportRoute& route, const proto::Path& sender,
                              const proto::MailParameters& params,
                              const std::vector<RelayedRecipient>& recipients,
                              const proto::Reply& backend_reply, const std::string& queue_id,
                              std::int64_t arrival_ms, std::int64_t now_ms);

// After a backend without DSN took a client's message (live, not spooled):
// the relayed notice goes into the spool, on the balancer's loop, when the
// pool spools; without a spool it cannot be sent (logged, docs/esmtp.md).
awaitable<void> send_relayed_notice(Balancer& balancer, const TransactionExecutor& relay,
                                    const std::string& listener, const proto::BodySource& body,
                                    const proto::Reply& reply);

}  // namespace smtplb::io
