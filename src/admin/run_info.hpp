#pragma once
#include <chrono>
#include <optional>
#include <string>

namespace smtplb::admin {

// What the status document says about the last reload beside the counts
// (io::RunStats, shared with /metrics): what changed, or why it was refused.
struct RunInfo {
    struct Reload {
        std::chrono::system_clock::time_point at;
        bool ok = false;
        std::string message;
    };
    std::optional<Reload> last_reload;

    void record_reload(bool ok, std::string message) {
        last_reload = Reload{std::chrono::system_clock::now(), ok, std::move(message)};
    }
};

}  // namespace smtplb::admin
