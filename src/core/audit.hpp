#pragma once
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

// What one audit probe of a backend (from one balancer address) shows.
// `announces_xclient`: its EHLO named XCLIENT; `wants_xclient`: a listener
// reaching it from there passes identity with XCLIENT.
std::vector<Finding> audit_probe(const std::string& where, const proto::ProbeResult& result,
                                 bool announces_xclient, bool wants_xclient);

}  // namespace smtplb::core
