#pragma once
#include <atomic>
#include <cstdint>

namespace smtplb::base {

// A statistic that event loops on several threads bump and the admin API
// reads: relaxed atomic, because nothing is ordered by it, and copyable,
// because a reload carries counters over to the next generation.
class Counter {
  public:
    Counter() = default;
    Counter(std::uint64_t value) : value_(value) {}  // NOLINT(google-explicit-constructor)
    Counter(const Counter& other) : value_(other.load()) {}
    Counter& operator=(const Counter& other) {
        value_.store(other.load(), std::memory_order_relaxed);
        return *this;
    }
    Counter& operator++() {
        value_.fetch_add(1, std::memory_order_relaxed);
        return *this;
    }
    void operator++(int) { value_.fetch_add(1, std::memory_order_relaxed); }
    Counter& operator+=(std::uint64_t n) {
        value_.fetch_add(n, std::memory_order_relaxed);
        return *this;
    }
    // Only for a count that may go back (connections open now).
    Counter& operator--() {
        value_.fetch_sub(1, std::memory_order_relaxed);
        return *this;
    }
    std::uint64_t load() const { return value_.load(std::memory_order_relaxed); }
    operator std::uint64_t() const { return load(); }  // NOLINT(google-explicit-constructor)

  private:
    std::atomic<std::uint64_t> value_{0};
};

}  // namespace smtplb::base
