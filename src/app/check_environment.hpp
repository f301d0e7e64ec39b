#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"

namespace smtplb::app {

// What `run` needs from the machine, beyond what the file itself says:
// server.state_dir and the tracking log's directory exist and are writable,
// certificates and keys load and match (a warning when one expires within
// 14 days). `run` does not change user: it uses the directories as whoever
// starts it (under the packaged unit, User=smtplb). The checks are made as
// `user` when given (its uid, gid and groups against the permission bits of
// each directory on the way), else as the user running `check`.
void check_environment(const config::Config& config, const config::KeyLines& lines,
                       const std::string& user, config::Diagnostics& diags);

// Every connection is a descriptor (two in TCP mode, and backend
// connections besides): the soft limit, often 1024, goes up to the hard
// one. What remains too low for the listeners' max_connections, if it does.
struct FileLimitLow {
    std::uint64_t limit = 0;
    std::uint64_t wanted = 0;
};
std::optional<FileLimitLow> raise_file_limit(const config::Config& config);

}  // namespace smtplb::app
