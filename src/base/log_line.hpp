#pragma once
#include <chrono>
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

enum class LogLevel { Info, Warn, Error };
const char* to_string(LogLevel level);

// RFC 3339 in UTC with milliseconds: "2026-12-03T15:04:05.123Z".
std::string rfc3339_millis(std::chrono::system_clock::time_point t);

// The level of an event line ("event=NAME ..."): a table of the events
// that say something went wrong, so that every part that logs through the
// balancer gets the right level without passing one. Unknown events are
// info; a health change is a warning unless it goes to up.
LogLevel level_of(std::string_view line);

// "ts=... level=... " + line: the daemon's logfmt line as written at `t`.
std::string format_log_line(std::chrono::system_clock::time_point t, LogLevel level,
                            std::string_view line);

// The daemon's event log on stderr (the journal under systemd): one
// logfmt line, ts= and level= first, one write per line. Without a level,
// level_of(line).
void log_line(std::string_view line);
void log_line(LogLevel level, std::string_view line);

}  // namespace smtplb::base
