#include "io/tracking_log.hpp"

#include <cerrno>
#include <cstring>

namespace smtplb::io {

TrackingLog::TrackingLog(const asio::any_io_executor& executor, const std::string& path)
    : timer_(executor), path_(path) {
    if (path.empty()) return;  // disabled
    if (path == "-") {
        file_ = stdout;
    } else {
        file_ = std::fopen(path.c_str(), "a+");
        owned_ = true;
        if (!file_) {
            error_ = "cannot open tracking log " + path + ": " + std::strerror(errno);
        } else if (std::fseek(file_, -1, SEEK_END) == 0 && std::fgetc(file_) != '\n') {
            // A process killed mid-line left half a line: end it, so the
            // next record starts on a line of its own.
            std::fputc('\n', file_);
        }
    }
}

TrackingLog::~TrackingLog() {
    flush();
    if (owned_ && file_) std::fclose(file_);
}

void TrackingLog::write(const std::string& line) {
    if (!file_) return;
    std::lock_guard guard(mutex_);  // sessions on every event loop write
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fputc('\n', file_);
    dirty_ = true;
    if (!flushing_) {
        flushing_ = true;
        // The flusher keeps the log alive until it has run.
        asio::co_spawn(
            timer_.get_executor(),
            [self = shared_from_this()]() -> awaitable<void> { co_await self->flusher(); },
            asio::detached);
    }
}

void TrackingLog::flush() {
    std::lock_guard guard(mutex_);
    if (file_ && dirty_) std::fflush(file_);
    dirty_ = false;
}

awaitable<void> TrackingLog::flusher() {
    timer_.expires_after(std::chrono::seconds(1));
    co_await timer_.async_wait(use_nothrow);
    flush();
    std::lock_guard guard(mutex_);
    flushing_ = false;
}

}  // namespace smtplb::io
