// Reports smtplb writes into its own spool: RFC 3461 §4.2 "relayed" notices
// for messages taken by backends without DSN (live or from the spool).
#include "io/spool/dsn_notices.hpp"

#include "io/backend/transaction_executor.hpp"
#include "io/balancer.hpp"
#include "io/runtime/event_loops.hpp"
#include "io/spool/spool.hpp"
#include "proto/xtext.hpp"

namespace smtplb::io {

proto::ClientIdentity local_identity(const std::string& hostname) {
    proto::ClientIdentity id;
    id.address = *base::IpAddress::parse("127.0.0.1");
    id.local_address = id.address;
    id.helo = hostname;
    return id;
}

awaitable<std::string> spool_report(Spool& spool, const ReportRoute& route, std::string report,
                                    std::int64_t now_ms) {
    proto::SpoolEnvelope envelope;
    envelope.arrival_ms = now_ms;
    envelope.listener = route.listener;
    envelope.pool = route.pool;
    envelope.sender.null = true;
    envelope.identity = local_identity(route.hostname);
    // A returned message (RET=FULL) may be 8-bit: say so to the backend.
    for (unsigned char c : report)
        if (c >= 0x80) {
            envelope.params.body_8bitmime = true;
            break;
        }
    std::vector<proto::Mailbox> to{route.sender};
    proto::StringBody body(std::move(report));
    const std::string no_trace;  // smtplb's own report: nobody else handled it
    auto committed = co_await spool.commit(envelope, to, body, no_trace);
    co_return committed.id;
}

core::DsnInput relayed_notice(const ReportRoute& route, const proto::Path& sender,
                              const proto::MailParameters& params,
                              const std::vector<RelayedRecipient>& recipients,
                              const proto::Reply& backend_reply, const std::string& queue_id,
                              std::int64_t arrival_ms, std::int64_t now_ms) {
    core::DsnInput dsn;
    dsn.kind = core::DsnKind::Relayed;
    if (sender.null) return dsn;
    dsn.reporting_mta = route.hostname;
    dsn.queue_id = queue_id;
    dsn.sender = sender.mailbox.address();
    dsn.arrival_ms = arrival_ms;
    dsn.now_ms = now_ms;
    dsn.envelope_id = proto::xtext_decode_lenient(params.envid);
    for (const auto& r : recipients)
        if (r.params.wants_success())
            dsn.failed.push_back({r.mailbox.address(), "2.0.0", backend_reply.summary(),
                                  r.params.original_recipient()});
    return dsn;
}

awaitable<void> send_relayed_notice(Balancer& balancer, const TransactionExecutor& relay,
                                    const std::string& listener, const proto::BodySource& body,
                                    const proto::Reply& reply) {
    const auto* pool = relay.pool();
    if (!pool) co_return;
    const auto& accepted = relay.accepted();
    const auto& params = relay.accepted_parameters();
    std::vector<RelayedRecipient> recipients;
    for (std::size_t i = 0; i < accepted.size() && i < params.size(); ++i)
        recipients.push_back({accepted[i], params[i]});
    ReportRoute route{balancer.config().server.hostname, listener, pool->name(),
                      relay.sender().mailbox};
    const auto now_ms = balancer.clock().wall_ms();
    auto dsn =
        relayed_notice(route, relay.sender(), relay.mail_parameters(), recipients, reply,
                       relay.queue_id().empty() ? "unknown" : relay.queue_id(), now_ms, now_ms);
    if (dsn.failed.empty()) co_return;
    auto* spool = balancer.spool();
    const std::string owed = "event=dsn_relayed_notice pool=" + pool->name() +
                             " recipients=" + std::to_string(dsn.failed.size());
    if (!spool || pool->config().on_unavailable != config::OnUnavailable::Spool) {
        balancer.log(owed + " result=not_sent reason=\"the pool does not spool\"");
        co_return;
    }
    dsn.original_headers = core::header_section(body);
    auto id =
        co_await on_loop(balancer.io(), spool_report(*spool, route, core::build_dsn(dsn), now_ms));
    balancer.log(owed + (id.empty() ? " result=not_sent reason=\"spool refused it\""
                                    : " result=spooled dsn_id=" + id));
}

}  // namespace smtplb::io
