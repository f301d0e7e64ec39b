#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "core/limits/limit_set.hpp"
#include "io/asio.hpp"
#include "io/runtime/task_group.hpp"
#include "proto/address.hpp"
#include "proto/identity.hpp"
#include "proto/reply.hpp"

namespace smtplb::io {

class Balancer;
class SharedLimits;

// The [[limit]]s as one client connection meets them (docs/limits.md): each
// event is checked against the generation's LimitSet, a refusal or a hold is
// written to the tracking log, a hold is waited out here (a timer: the loop
// goes on, and a stopping daemon cuts it short), and the concurrency taken
// (the connection's, the transaction's) is kept until it ends. Each method
// returns nothing when the client may go on, else the reply to refuse with.
// Without any [[limit]] each call costs a null check.
class SessionLimits {
  public:
    // `client` is the session's and must outlive this: the client is the
    // real one (PROXY header, XCLIENT-corrected) by the time
    // connect() is called.
    SessionLimits(Balancer& balancer, const std::string& listener,
                  const proto::ClientIdentity& client);

    // Before the greeting: connections, concurrent_connections.
    awaitable<std::optional<proto::Reply>> connect();
    // MAIL FROM, once the relay policy has accepted the sender; `size`: its
    // SIZE= (0 when not given). Takes the transaction's concurrency; the
    // transaction's sender is this one until the next mail().
    awaitable<std::optional<proto::Reply>> mail(const proto::Path& sender, std::uint64_t size);
    // RCPT TO, once the relay policy has accepted it and before a backend
    // is asked; refund_rcpt() when the backend then refuses it.
    awaitable<std::optional<proto::Reply>> rcpt(const proto::Mailbox& recipient);
    void refund_rcpt(const proto::Mailbox& recipient);
    // The end of data, before the message goes to a backend.
    awaitable<std::optional<proto::Reply>> end_of_data(
        const std::vector<proto::Mailbox>& recipients, std::uint64_t size);
    // The transaction ended (RSET, end of data, refused MAIL): its
    // concurrency is given back.
    void end_transaction() { transaction_.clear(); }
    // A tcp listener: a refusal closes the connection, with no reply to log.
    void close_silently() { closes_silently_ = true; }

  private:
    // subject_ brought up to date for a new event (the sender stays).
    core::LimitSubject& subject();
    // Checks subject_, logs, holds; keeps the verdict's leases in `keep`.
    awaitable<std::optional<proto::Reply>> decide(core::LimitEvent event,
                                                  std::vector<core::LimitLease>& keep);
    void log(core::LimitEvent event, const core::LimitVerdict& verdict) const;

    Balancer& balancer_;
    // The generation's set, kept by the session (a reload may replace it);
    // null without any [[limit]].
    std::shared_ptr<core::LimitSet> set_;
    std::shared_ptr<SharedLimits> shared_;  // [cluster] with a shared [[limit]], else null
    const proto::ClientIdentity& client_;
    // The subject of every check, kept from one to the next so that its
    // strings are not built again for each event.
    core::LimitSubject subject_;
    std::vector<core::LimitLease> connection_;
    std::vector<core::LimitLease> transaction_;
    bool closes_silently_ = false;
};

// Waits `how_long` on the caller's executor without holding the loop up;
// ends early (false) when `sessions` (the generation's) are asked to stop.
awaitable<bool> hold_reply(TaskGroup& sessions, base::Clock::Duration how_long);

// Calls LimitStore::expire every few seconds until the generation stops
// (a task of its group, started with it when it has [[limit]]s).
awaitable<void> expire_limit_keys(std::shared_ptr<core::LimitSet> limits, const base::Clock& clock);

}  // namespace smtplb::io
