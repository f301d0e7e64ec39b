#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace smtplb::core {

// What a traffic report needs from one tracking-log line.
struct ReportInput {
    std::int64_t time_ms = 0;
    std::string result;  // relayed | rejected | tempfailed | aborted
    std::string listener;
    std::string client;
    std::string backend;               // the one that took it (relayed only)
    std::vector<std::string> domains;  // recipient domains
};

enum class ReportBy { Backend, Listener, Client, Domain };

// Relayed messages per key and time interval: the per-server, per-hour
// table administrators build by hand from tracking logs, with each key's
// share and the skew (largest share / smallest share) that flags imbalance.
struct TrafficReport {
    ReportBy by = ReportBy::Backend;
    std::chrono::milliseconds interval{3600000};
    std::vector<std::string> keys;                            // columns, sorted
    std::map<std::int64_t, std::vector<std::uint64_t>> rows;  // interval start (ms) -> counts
    std::vector<std::uint64_t> totals;                        // per key
    std::uint64_t total = 0;
    std::uint64_t skipped = 0;  // lines that were not relayed messages
    double skew = 1.0;          // max/min of the totals; 0 when a key has none
    // Over this, a per-backend report says IMBALANCED. Shares are compared
    // as they are: with unequal weights, expect the weights' ratio.
    static constexpr double kSkewLimit = 1.5;

    std::string table() const;
    std::string svg() const;
};

TrafficReport build_report(const std::vector<ReportInput>& lines, ReportBy by,
                           std::chrono::milliseconds interval);

}  // namespace smtplb::core
