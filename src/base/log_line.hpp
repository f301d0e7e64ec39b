#pragma once
#include <string>
#include <string_view>

namespace smtplb::base {

// Event-log output shared by threads: each line is built whole first and
// handed to the kernel with one write(2), outside any lock, so lines from
// several event loops never interleave (a pipe keeps writes of up to
// PIPE_BUF bytes whole; a file opened O_APPEND keeps each write whole).
// A newline is added when `text` lacks one. Errors are ignored: there is
// nowhere left to report them.
void write_line(int fd, std::string_view text);

// The daemon's event log: "smtplb: " + line on stderr (the journal under
// systemd), one write per line.
void log_line(std::string_view line);

}  // namespace smtplb::base
