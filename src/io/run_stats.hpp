#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/counter.hpp"

namespace smtplb::io {

// What the daemon as a whole has done since it started, as opposed to one
// configuration generation: shared by every generation (a reload hands it
// on), read by /metrics and the admin API.
struct RunStats {
    std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
    // Uptime from this one: the dashboard's rates divide by it.
    std::chrono::steady_clock::time_point started_steady = std::chrono::steady_clock::now();
    base::Counter reloads_ok = 0;
    base::Counter reloads_failed = 0;
    // The last reload attempt: when (ms since the epoch, 0 = none yet) and
    // whether it was taken.
    std::atomic<std::int64_t> last_reload_ms{0};
    std::atomic<bool> last_reload_ok{true};

    void reloaded(bool ok) {
        ++(ok ? reloads_ok : reloads_failed);
        last_reload_ok = ok;
        last_reload_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    }
};

}  // namespace smtplb::io
