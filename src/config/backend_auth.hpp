#pragma once
#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// [[pool.backend]] auth = { username, password_file, mechanism, allow_plaintext }:
// read into b.auth, the password from its file (now, at every load and
// reload). `r` is the backend's table; `pool` has its tls read already: AUTH
// without TLS towards the backend is an error unless allow_plaintext.
void read_backend_auth(TableReader& r, const Pool& pool, Backend& b);

// The password file's first line, without its line ending; `error` says
// what is wrong with it (unreadable, empty, too long, more than one line).
std::string read_password_file(const std::string& path, std::string& error);

}  // namespace smtplb::config
