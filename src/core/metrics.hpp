#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/counter.hpp"

namespace smtplb::core {

// What one listener has seen since start, for /metrics.
struct ListenerCounters {
    base::Counter connections = 0;  // accepted
    base::Counter refused = 0;      // over max_connections or the per-client limit
    base::Counter relayed = 0;      // transactions by result, as in the tracking log
    base::Counter rejected = 0;
    base::Counter tempfailed = 0;
    base::Counter aborted = 0;
    base::Counter spooled = 0;
    base::Counter message_bytes = 0;  // of relayed and spooled messages
    base::Counter tls_sessions = 0;   // TLS handshakes that succeeded
    base::Counter tls_failures = 0;   // and that failed (or timed out)
    base::Counter proxy_refused = 0;  // PROXY header missing, malformed or untrusted
    base::Counter auth_ok = 0;        // AUTH verdicts
    base::Counter auth_failed = 0;
    base::Counter auth_tempfailed = 0;
    base::Counter auth_throttled = 0;  // refused without asking: too many failures

    void count_result(std::string_view result, std::uint64_t bytes);
};

// A Prometheus histogram with fixed buckets in seconds (5 ms to 60 s: a
// backend's reply to the end of a message).
class Histogram {
  public:
    static constexpr std::array<double, 13> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1,     2.5,  5,     10,   30,  60};
    void observe(double seconds);
    const std::array<std::uint64_t, kBounds.size()>& buckets() const { return buckets_; }
    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }

  private:
    std::array<std::uint64_t, kBounds.size()> buckets_{};  // not cumulative
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

// Builds the Prometheus text exposition format (version 0.0.4): one
// HELP/TYPE header per family, then its samples; label values escaped.
class PrometheusText {
  public:
    using Labels = std::vector<std::pair<std::string, std::string>>;
    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, const Labels& labels, double value);
    void histogram(std::string_view name, const Labels& labels, const Histogram& h);
    const std::string& text() const { return out_; }

  private:
    void write_labels(const Labels& labels, std::string_view extra_key = {},
                      std::string_view extra_value = {});
    std::string out_;
};

}  // namespace smtplb::core
