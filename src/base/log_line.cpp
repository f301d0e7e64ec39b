#include "base/log_line.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace smtplb::base {

void write_line(int fd, std::string_view text) {
    if (text.empty()) return;
    std::string whole;
    if (text.back() != '\n') {
        whole.reserve(text.size() + 1);
        whole.append(text).push_back('\n');
        text = whole;
    }
    // One write in practice; a short write (a line longer than a pipe
    // takes at once, a signal) goes on from where it stopped.
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

const char* to_string(LogLevel level) {
    switch (level) {
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "info";
}

std::string rfc3339_millis(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
    auto seconds = static_cast<std::time_t>(ms / 1000);
    auto millis = static_cast<int>(ms % 1000);
    if (millis < 0) {  // before 1970: floor, not truncate
        millis += 1000;
        --seconds;
    }
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char out[64];
    std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    return out;
}

LogLevel level_of(std::string_view line) {
    if (!line.starts_with("event=")) return LogLevel::Info;
    auto rest = line.substr(6);
    auto name = rest.substr(0, rest.find(' '));
    // Something an operator must act on: mail or state may be lost.
    for (std::string_view e :
         {"start_failed", "spool_commit_failed", "spool_corrupt", "spool_file_error",
          "internal_error", "config_error", "generation_abandoned", "tracking_log_write_failed",
          "logs_reopen_failed"})
        if (name == e) return LogLevel::Error;
    // Something is wrong or refused, the daemon goes on.
    if (name == "cluster_node_gone" || name == "cluster_node_config_differs") return LogLevel::Warn;
    for (std::string_view e :
         {"reload_refused",           "admin_unchanged",        "threads_unchanged",
          "file_limit_low",           "backend_warning",        "backend_connections_at_max",
          "connection_wait_timeout",  "identity_not_presented", "proxy_refused",
          "spool_quarantined",        "spool_no_pool",          "spool_bounce",
          "config_warning",           "certificate_expiring",   "admin_tls_unchanged",
          "discovery_failed",         "discovery_empty",        "discovery_not_applied",
          "cluster_redis_down",       "cluster_unchanged",      "cluster_admin_unreadable",
          "cluster_admin_local_only", "cluster_master_changed", "cluster_master_unknown"})
        if (name == e) return LogLevel::Warn;
    if (name == "health")
        return line.find(" to=up") == std::string_view::npos ? LogLevel::Warn : LogLevel::Info;
    // A notice the sender asked for (RFC 3461 NOTIFY=SUCCESS) that could not be sent.
    if (name == "dsn_relayed_notice")
        return line.find(" result=not_sent") == std::string_view::npos ? LogLevel::Info
                                                                       : LogLevel::Warn;
    return LogLevel::Info;
}

std::string format_log_line(std::chrono::system_clock::time_point t, LogLevel level,
                            std::string_view line) {
    std::string whole;
    whole.reserve(line.size() + 48);
    whole.append("ts=").append(rfc3339_millis(t)).append(" level=").append(to_string(level));
    if (!line.empty()) whole.append(" ").append(line);
    return whole;
}

void log_line(LogLevel level, std::string_view line) {
    write_line(STDERR_FILENO, format_log_line(std::chrono::system_clock::now(), level, line));
}

void log_line(std::string_view line) {
    log_line(level_of(line), line);
}

}  // namespace smtplb::base
