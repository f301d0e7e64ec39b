#pragma once
#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// The admin listener's security keys of [server]: admin_readonly_token_file,
// admin_hosts and admin_tls (admin and admin_token_file are read beside the
// other server keys).
void read_admin_security(TableReader& r, Server& s);

// The first line of a token file without trailing blanks; "" when unreadable.
std::string read_token_line(const std::string& path, bool& readable);

}  // namespace smtplb::config
