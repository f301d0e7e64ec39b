#pragma once
#include <atomic>
#include <cstdint>

namespace smtplb::base {

// A statistic that event loops on several threads bump and the admin API
// reads: relaxed atomic, because nothing is ordered by it, and copyable,
// because a reload carries counters over to the next generation.
//
// It only goes up: /metrics exports counters as Prometheus counters, and a
// scrape that sees a lower value reads it as a restart (a reset). A value
// that may go back (connections open now) is a Gauge.
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
    std::uint64_t load() const { return value_.load(std::memory_order_relaxed); }
    operator std::uint64_t() const { return load(); }  // NOLINT(google-explicit-constructor)

  private:
    std::atomic<std::uint64_t> value_{0};
};

// A level that goes up and down (in use now), exported as a Prometheus
// gauge. It never wraps below zero: a decrement at zero is ignored.
class Gauge {
  public:
    Gauge() = default;
    Gauge(const Gauge& other) : value_(other.load()) {}
    Gauge& operator=(const Gauge& other) {
        value_.store(other.load(), std::memory_order_relaxed);
        return *this;
    }
    Gauge& operator++() {
        value_.fetch_add(1, std::memory_order_relaxed);
        return *this;
    }
    Gauge& operator--() {
        auto v = value_.load(std::memory_order_relaxed);
        while (v > 0 && !value_.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
        }
        return *this;
    }
    std::uint64_t load() const { return value_.load(std::memory_order_relaxed); }
    operator std::uint64_t() const { return load(); }  // NOLINT(google-explicit-constructor)

  private:
    std::atomic<std::uint64_t> value_{0};
};

}  // namespace smtplb::base
