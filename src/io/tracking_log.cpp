#include "io/tracking_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log_line.hpp"
#include "base/text.hpp"

namespace smtplb::io {

TrackingLog::TrackingLog(const std::string& path)
    : path_(path), event_log_([](const std::string& line) { base::log_line(line); }) {
    if (path.empty()) return;  // disabled
    if (path == "-") {
        fd_ = STDOUT_FILENO;
        return;
    }
    fd_ = open_file(error_);
    owned_ = fd_ >= 0;
}

TrackingLog::~TrackingLog() {
    if (owned_) ::close(fd_);
}

int TrackingLog::open_file(std::string& error) const {
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = "cannot open tracking log " + path_ + ": " + std::strerror(errno);
        return -1;
    }
    // A process killed mid-line (before this writer, or by a full disk) left
    // half a line: end it, so that the next record starts a line of its own.
    off_t end = ::lseek(fd, 0, SEEK_END);
    char last = '\n';
    int reader = end > 0 ? ::open(path_.c_str(), O_RDONLY | O_CLOEXEC) : -1;
    if (reader >= 0) {
        if (::pread(reader, &last, 1, end - 1) == 1 && last != '\n') (void)!::write(fd, "\n", 1);
        ::close(reader);
    }
    return fd;
}

void TrackingLog::write(std::string line) {
    if (fd_ < 0) return;
    if (unterminated_.exchange(false, std::memory_order_relaxed)) line.insert(0, 1, '\n');
    line += '\n';
    const char* data = line.data();
    std::size_t left = line.size();
    // One write(2) for the whole line; a regular file takes it all unless the
    // disk is full. A pipe (stdout) may take part of a long line: the rest
    // follows at once.
    while (left > 0) {
        ssize_t n = ::write(fd_, data, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (left < line.size()) unterminated_.store(true, std::memory_order_relaxed);
            write_failed(n < 0 ? errno : ENOSPC);
            return;
        }
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

void TrackingLog::write_failed(int error_number) {
    auto failures = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    std::lock_guard guard(report_mutex_);
    auto now = std::chrono::steady_clock::now();
    if (reported_failures_ != 0 && now - last_report_ < std::chrono::minutes(1)) return;
    event_log_("event=tracking_log_write_failed path=" + base::logfmt_value(path_) +
               " reason=" + base::logfmt_value(std::strerror(error_number)) +
               " failures=" + std::to_string(failures) +
               " lost_since_last_report=" + std::to_string(failures - reported_failures_));
    last_report_ = now;
    reported_failures_ = failures;
}

bool TrackingLog::reopen(std::string& error) {
    if (!owned_) return true;  // disabled, or stdout: nothing to reopen
    std::lock_guard guard(report_mutex_);
    int fd = open_file(error);
    if (fd < 0) return false;
    // Atomic for the writers: the number stays valid throughout.
    if (::dup2(fd, fd_) < 0) {
        error = "cannot reopen tracking log " + path_ + ": " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    ::close(fd);
    reopens_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

}  // namespace smtplb::io
