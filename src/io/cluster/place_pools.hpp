#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace smtplb::io {

// Concurrency places of shared limits that Redis granted this node ahead of
// use (docs/cluster.md, "Grants"): one lease member in Redis stands for
// several places ("NODE:ID*W" in the key's grant set), which this node
// hands out without a round trip. A pool takes new holders for kTaking
// after it was granted, then is given back once its last holder is gone:
// no pool outlives its use for long, and a place counted in Redis is never
// used twice. Also counts the places this node holds on each key, which is
// what it asks ahead for. RedisLimitStore's executor only: no locks.
class PlacePools {
  public:
    using Time = std::chrono::steady_clock::time_point;
    static constexpr std::chrono::seconds kTaking{1};
    static constexpr char kLeaseMark = '~';  // a pooled lease, as LimitLease holds it

    // A place from one of `key`'s pools with room: its lease.
    std::optional<std::string> take(const std::string& key, Time now);
    // Redis granted `member` (in `grant_key`) for `places` of `key`; one of
    // them is taken at once: its lease.
    std::string add(const std::string& key, std::string grant_key, std::string member,
                    std::uint32_t places, Time now);
    // A pooled lease given back: false when `lease` is not a pool's.
    bool release(std::string_view lease);
    // The pools done with (not taking, nobody in them): (grant key,
    // member) to remove from Redis. They are forgotten here.
    std::vector<std::pair<std::string, std::string>> done(Time now);
    // No pool takes anyone new (Redis was lost: what it holds may be gone).
    void stop_taking(Time now);

    // Places held on `key` now (single leases and pooled ones).
    std::uint32_t open(const std::string& key) const;
    void opened(const std::string& key) { ++open_[key]; }
    void closed(const std::string& key);
    std::size_t pools() const { return pools_.size(); }

  private:
    struct Pool {
        std::string key;
        std::string grant_key;
        std::uint32_t places = 0;
        std::uint32_t in_use = 0;
        Time taking_until{};
    };
    std::map<std::string, Pool> pools_;  // by member
    std::unordered_map<std::string, std::uint32_t> open_;
};

}  // namespace smtplb::io
