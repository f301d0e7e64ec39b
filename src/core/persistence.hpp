#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/clock.hpp"

namespace smtplb::core {

// source_ip persistence: client address -> backend index, for a TTL after
// its last use. Bounded: expired entries are swept, and past max_entries the
// table is cleared rather than grown (persistence is a preference, not a promise).
class PersistenceTable {
  public:
    PersistenceTable(const base::Clock& clock, base::Clock::Duration ttl,
                     std::size_t max_entries = 100000)
        : clock_(clock), ttl_(ttl), max_entries_(max_entries) {}

    std::optional<std::size_t> lookup(const std::string& client) const;
    void remember(const std::string& client, std::size_t backend);
    std::size_t size() const { return entries_.size(); }

  private:
    struct Entry {
        std::size_t backend;
        base::Clock::TimePoint expires;
    };
    void sweep();

    const base::Clock& clock_;
    base::Clock::Duration ttl_;
    std::size_t max_entries_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace smtplb::core
