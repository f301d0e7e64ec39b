#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace smtplb::config {

class TableReader;

// A pool's per-destination shaping ([[pool.destination_limit]]): per
// backend (each one sending IP) and per recipient domain, a message rate
// and a cap on concurrent transactions. The big receivers throttle each
// sending IP; the scheduler passes over a backend at its limit for the
// domain while another one has room (core/shaping.hpp).
struct DestinationLimit {
    // Lower case; "*" counts each recipient domain separately, for the
    // domains no other destination_limit of the pool names.
    std::string domain;
    // Messages per period, at most `burst` at one instant (GCRA, as
    // [[limit]]); quantity 0: no rate.
    std::uint64_t messages = 0;
    std::chrono::milliseconds period{0};
    std::uint64_t burst = 0;
    std::uint32_t concurrent_transactions = 0;  // 0: no cap
    std::uint32_t max_keys = 100000;            // backend x domain keys remembered at most
    int line = 0;

    bool is_wildcard() const { return domain == "*"; }
    bool operator==(const DestinationLimit& other) const {
        return domain == other.domain && messages == other.messages && period == other.period &&
               burst == other.burst && concurrent_transactions == other.concurrent_transactions &&
               max_keys == other.max_keys;
    }
};

// Every [[pool.destination_limit]] of the pool table `pool` (its key path
// and line in each error).
void read_destination_limits(TableReader& pool, std::vector<DestinationLimit>& out);
// As `smtplb check` prints them, after the pool's backends.
std::string describe_destination_limits(const std::vector<DestinationLimit>& limits);

}  // namespace smtplb::config
