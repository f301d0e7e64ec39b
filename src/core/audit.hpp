#pragma once
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proto/probe.hpp"

namespace smtplb::core {

// One thing `smtplb audit` found, and what to change.
struct Finding {
    enum class Severity { Problem, Warning, Note };
    Severity severity = Severity::Note;
    std::string where;  // key path or backend
    std::string what;
    std::string fix;
};
const char* to_string(Finding::Severity severity);

// The mistakes in a configuration that bite mail administrators: probes
// that stop before MAIL FROM, identity not passed on, persistence or
// hashing that keeps a busy sender on one backend, lopsided weights, relay
// networks that trust everyone, pools without failover.
std::vector<Finding> audit_config(const config::Config& config);

// The recipient an audit probe asks a backend to relay to: no backend can be
// responsible for it, so a 250 means "relays for anyone at this address".
inline constexpr const char* kAuditRecipient = "relay-test@audit.invalid";
inline constexpr const char* kAuditSender = "smtplb-audit@audit.invalid";

// The rest of the open-relay battery, after kAuditRecipient was refused:
// the same outside recipient hidden in the address forms that fooled relay
// checks before (percent hack, UUCP bang path, quoted local part, source
// route), routed through the backend's own address literal where the form
// needs a local domain.
std::vector<std::string> relay_battery(const std::string& backend_address);

// One battery form's probe: a 250 to it is a problem.
std::optional<Finding> audit_relay_form(const std::string& where, const std::string& form,
                                        const proto::ProbeResult& result);

// A domain's MX records as DNS gave them, with each host's addresses.
struct MxRecord {
    int preference = 0;
    std::string host;
    std::vector<std::string> addresses;  // A and AAAA, as text
};
struct MxLookup {
    std::string domain;
    bool exists = true;  // false: NXDOMAIN
    std::string error;   // the lookup failed (no answer, SERVFAIL): nothing else is known
    std::vector<MxRecord> records;
};

// What a domain's MX records mean for this balancer: a domain without MX
// (or that does not exist), a single MX that is this balancer (nothing takes
// mail when it is down), and backup MX records pointing at this balancer
// while its pools do not spool (a backup that cannot queue answers 451).
// `balancer_addresses`: the listeners' addresses.
std::vector<Finding> audit_mx(const MxLookup& lookup,
                              const std::vector<std::string>& balancer_addresses, bool spools);

// What one audit probe of a backend (from one balancer address) shows.
// `announces_xclient`: its EHLO named XCLIENT; `wants_xclient`: a listener
// reaching it from there passes identity with XCLIENT.
// `proxy`: the probe began with a PROXY header naming an outside client
// (kAuditProxyClient), as a listener with client_identity proxy-v1/v2 would;
// `proxy_refused`: the backend answered that header as an unknown command.
struct ProbeIdentity {
    bool announces_xclient = false;
    bool wants_xclient = false;
    bool proxy = false;
    bool proxy_refused = false;
};
std::vector<Finding> audit_probe(const std::string& where, const proto::ProbeResult& result,
                                 const ProbeIdentity& identity);

// The client a PROXY audit probe claims to be: a documentation address
// (RFC 5737), so a backend that relays for it relays for the internet.
inline constexpr const char* kAuditProxyClient = "192.0.2.1";

}  // namespace smtplb::core
