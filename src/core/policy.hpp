#pragma once
#include <optional>

#include "base/network.hpp"
#include "config/config.hpp"
#include "proto/address.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// The relay boundary, enforced by the balancer whatever the backends would
// allow (DESIGN.md): who may send where, per listener.
class RelayPolicy {
  public:
    explicit RelayPolicy(const config::Listener& listener) : listener_(listener) {}

    // Clients that may relay anywhere: trusted networks of a relay listener,
    // or authenticated clients.
    bool may_relay(const base::IpAddress& client, bool authenticated) const;
    // Refusal for MAIL FROM, or nothing.
    std::optional<proto::Reply> check_sender(bool authenticated) const;
    // Refusal for RCPT TO, or nothing.
    std::optional<proto::Reply> check_recipient(const base::IpAddress& client, bool authenticated,
                                                const proto::Mailbox& rcpt) const;
    bool accepts_domain(const std::string& domain) const;
    // When no backend can verify a recipient (the spool takes the mail):
    // refusal of an address not in the listener's recipients_file, if it
    // has one.
    std::optional<proto::Reply> check_known_recipient(const proto::Mailbox& rcpt) const;

  private:
    const config::Listener& listener_;
};

}  // namespace smtplb::core
