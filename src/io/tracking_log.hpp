#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>

namespace smtplb::io {

// Appends tracking-log lines to a file or stdout ("-"). Each line goes out
// whole in one write(2) on an O_APPEND descriptor, before the client is
// answered: nothing sits in a user-space buffer, so a crash (kill -9) loses
// no line that a client was told about, and concurrent writers (one per
// event loop) never interleave inside a line. A new file is created 0640
// (the log holds addresses); an existing file keeps its mode.
// reopen() (SIGUSR1, `smtplb reopen-logs`) swaps the file under the same
// descriptor number with dup2(), so writers on other loops never see a
// closed descriptor: rotation by rename plus reopen loses nothing.
// Shared by configuration generations after a reload, so held by a
// shared_ptr.
class TrackingLog {
  public:
    using EventLog = std::function<void(const std::string&)>;
    explicit TrackingLog(const std::string& path);
    ~TrackingLog();
    TrackingLog(const TrackingLog&) = delete;
    TrackingLog& operator=(const TrackingLog&) = delete;

    bool enabled() const { return fd_ >= 0; }
    const std::string& error() const { return error_; }
    const std::string& path() const { return path_; }
    // Writes `line` and a newline. A failed write is counted and logged (at
    // most once a minute); mail goes on.
    void write(std::string line);
    // Opens the path again (after a rotation); false, with the reason, when
    // it cannot (the old file stays in use).
    bool reopen(std::string& error);
    // Nothing is buffered; kept for the callers that end a generation.
    void flush() {}
    std::uint64_t write_failures() const { return failures_.load(std::memory_order_relaxed); }
    std::uint64_t reopens() const { return reopens_.load(std::memory_order_relaxed); }
    // Where write failures and reopens are reported (stderr by default).
    void set_event_log(EventLog log) { event_log_ = std::move(log); }

  private:
    int open_file(std::string& error) const;
    void write_failed(int error_number);

    std::string path_;
    std::string error_;
    int fd_ = -1;
    bool owned_ = false;
    std::atomic<std::uint64_t> failures_{0};
    std::atomic<std::uint64_t> reopens_{0};
    // A failed write left part of a line (a full disk): the next line
    // starts with a newline, so that no record is glued onto the fragment.
    std::atomic<bool> unterminated_{false};
    std::mutex report_mutex_;  // the rate limit of failure reports, and reopen
    std::chrono::steady_clock::time_point last_report_{};
    std::uint64_t reported_failures_ = 0;
    EventLog event_log_;
};

}  // namespace smtplb::io
