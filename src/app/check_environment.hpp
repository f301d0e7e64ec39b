#pragma once
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

}  // namespace smtplb::app
