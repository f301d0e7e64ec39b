#pragma once
#include <memory>
#include <optional>
#include <string>

#include "base/network.hpp"
#include "core/audit.hpp"

namespace smtplb::tools {

// DNS lookups for `smtplb audit` (an extension point: tests can answer
// from a table). Blocking: the audit is a command, not the daemon.
class DnsResolver {
  public:
    virtual ~DnsResolver() = default;
    // The domain's MX records, each with its host's A and AAAA addresses.
    virtual core::MxLookup mx(const std::string& domain) = 0;
};

// ldns: the system's resolvers (/etc/resolv.conf), or one given server.
std::unique_ptr<DnsResolver> make_dns_resolver(const std::optional<base::HostPort>& server,
                                               std::string& error);

}  // namespace smtplb::tools
