#include "io/message_buffer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

namespace smtplb::io {

constexpr std::uint64_t kFirstReservation = 16384;

MessageBuffer::~MessageBuffer() {
    clear();
}

void MessageBuffer::clear() {
    if (file_) std::fclose(file_);
    file_ = nullptr;
    std::string().swap(memory_);
    size_ = 0;
    expected_ = 0;
    failed_ = false;
}

void MessageBuffer::spill() {
    // O_TMPFILE: never visible in the directory, gone when closed or on a crash.
    int fd = ::open(spill_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        failed_ = true;
        return;
    }
    file_ = ::fdopen(fd, "w+b");
    if (!file_) {
        ::close(fd);
        failed_ = true;
        return;
    }
    if (std::fwrite(memory_.data(), 1, memory_.size(), file_) != memory_.size()) failed_ = true;
    memory_.clear();
    memory_.shrink_to_fit();
}

void MessageBuffer::append(std::string_view bytes) {
    if (failed_) return;
    size_ += bytes.size();
    if (!file_ && memory_.size() + bytes.size() > memory_limit_) spill();
    if (failed_) return;
    if (file_) {
        if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) failed_ = true;
    } else {
        if (memory_.capacity() < kFirstReservation) {
            // Most messages fit the first reservation; SIZE= says when not.
            auto want = std::max<std::uint64_t>(kFirstReservation, expected_ + 64);
            memory_.reserve(static_cast<std::size_t>(std::min(want, memory_limit_)));
        }
        memory_.append(bytes);
    }
}

std::string_view MessageBuffer::chunk_at(std::uint64_t offset, std::size_t max,
                                         std::string& scratch) const {
    if (offset >= size_) return {};
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, size_ - offset));
    if (!file_) return std::string_view(memory_).substr(offset, want);
    if (std::fflush(file_) != 0) return {};
    scratch.resize(want);
    ssize_t n = ::pread(::fileno(file_), scratch.data(), want, static_cast<off_t>(offset));
    if (n <= 0) return {};
    return std::string_view(scratch.data(), static_cast<std::size_t>(n));
}

}  // namespace smtplb::io
