#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace smtplb::admin {

// What the status document says about the daemon itself, beside its
// configuration: since when it runs and how its reloads went.
struct RunInfo {
    struct Reload {
        std::chrono::system_clock::time_point at;
        bool ok = false;
        std::string message;  // what changed, or why it was refused
    };
    std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
    std::chrono::steady_clock::time_point started_steady = std::chrono::steady_clock::now();
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    std::optional<Reload> last_reload;

    void record_reload(bool ok, std::string message) {
        ++(ok ? reloads_ok : reloads_failed);
        last_reload = Reload{std::chrono::system_clock::now(), ok, std::move(message)};
    }
};

}  // namespace smtplb::admin
