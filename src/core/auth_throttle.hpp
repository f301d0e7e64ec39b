#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "base/clock.hpp"

namespace smtplb::core {

// Failed authentications per client address and per user name: after
// `max_failures` within `window`, that address or user is refused AUTH
// (454 4.7.0) without asking the verifier until the window has passed.
// Bounded: at most `max_keys` addresses and users are remembered; the
// oldest entries go first.
class AuthThrottle {
  public:
    AuthThrottle(const base::Clock& clock, std::uint32_t max_failures, base::Clock::Duration window,
                 std::size_t max_keys = 100000);

    bool blocked(const std::string& address, const std::string& user);
    void failed(const std::string& address, const std::string& user);
    // A success forgets the address's failures (a user who mistyped once).
    void succeeded(const std::string& address);
    std::uint64_t refusals() const { return refusals_; }

  private:
    struct Entry {
        std::deque<base::Clock::TimePoint> failures;  // within the window, oldest first
    };
    bool over(const std::string& key);
    void add(const std::string& key);
    void forget_expired(Entry& entry);

    const base::Clock& clock_;
    std::uint32_t max_failures_;
    base::Clock::Duration window_;
    std::size_t max_keys_;
    std::unordered_map<std::string, Entry> entries_;
    std::deque<std::string> order_;  // insertion order, for eviction
    std::uint64_t refusals_ = 0;
};

}  // namespace smtplb::core
