#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

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

}  // namespace smtplb::core
