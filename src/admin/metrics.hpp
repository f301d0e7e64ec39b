#pragma once
#include <string>

#include "io/balancer.hpp"

namespace smtplb::admin {

// GET /metrics: the Prometheus text format, from the balancer's counters
// and the process's own figures (/proc/self).
std::string metrics_text(io::Balancer& balancer);

}  // namespace smtplb::admin
