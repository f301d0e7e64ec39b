#include "io/runtime/message_buffer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io/runtime/spare_buffers.hpp"

namespace smtplb::io {

constexpr std::size_t kFirstChunk = static_cast<std::size_t>(SpareSize::Small);  // most messages
constexpr std::size_t kChunkSize = static_cast<std::size_t>(SpareSize::Large);

MessageBuffer::~MessageBuffer() {
    clear();
}

void MessageBuffer::release_chunks() {
    // Last first, so the next message gets them back in the same order.
    for (std::size_t i = chunks_.size(); i-- > 0;) {
        std::size_t capacity = i > 0 ? kChunkSize : first_chunk_;
        if (capacity == kChunkSize)
            give_spare(SpareSize::Large, std::move(chunks_[i]));
        else if (capacity == kFirstChunk)
            give_spare(SpareSize::Small, std::move(chunks_[i]));
    }
    std::vector<std::unique_ptr<char[]>>().swap(chunks_);
}

void MessageBuffer::clear() {
    if (file_) std::fclose(file_);
    file_ = nullptr;
    release_chunks();
    first_chunk_ = room_ = 0;
    size_ = 0;
    content_size_.reset();
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
    std::FILE* file = ::fdopen(fd, "w+b");
    if (!file) {
        ::close(fd);
        failed_ = true;
        return;
    }
    std::string scratch;
    for (std::uint64_t offset = 0; offset < size_ && !failed_;) {
        auto chunk = chunk_at(offset, kChunkSize, scratch);  // from memory: file_ is not set yet
        if (std::fwrite(chunk.data(), 1, chunk.size(), file) != chunk.size()) failed_ = true;
        offset += chunk.size();
    }
    file_ = file;
    release_chunks();
    room_ = 0;
}

void MessageBuffer::add_chunk() {
    if (!chunks_.empty()) {
        chunks_.push_back(take_spare(SpareSize::Large));
        room_ = kChunkSize;
        return;
    }
    // A message announced (SIZE=) as larger than the small first chunk
    // starts with full ones; the memory limit caps the first chunk.
    first_chunk_ = expected_ >= kFirstChunk ? kChunkSize : kFirstChunk;
    if (first_chunk_ > memory_limit_)
        first_chunk_ = static_cast<std::size_t>(std::max<std::uint64_t>(memory_limit_, 1));
    chunks_.push_back(first_chunk_ == kChunkSize ? take_spare(SpareSize::Large)
                      : first_chunk_ == kFirstChunk
                          ? take_spare(SpareSize::Small)
                          : std::make_unique_for_overwrite<char[]>(first_chunk_));
    room_ = first_chunk_;
}

void MessageBuffer::append(std::string_view bytes) {
    if (failed_) return;
    if (!file_ && size_ + bytes.size() > memory_limit_) spill();
    size_ += bytes.size();
    if (failed_) return;
    if (file_) {
        if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) failed_ = true;
        return;
    }
    while (!bytes.empty()) {
        if (room_ == 0) add_chunk();
        std::size_t capacity = chunks_.size() == 1 ? first_chunk_ : kChunkSize;
        std::size_t n = std::min(room_, bytes.size());
        std::memcpy(chunks_.back().get() + (capacity - room_), bytes.data(), n);
        room_ -= n;
        bytes.remove_prefix(n);
    }
}

std::string_view MessageBuffer::chunk_at(std::uint64_t offset, std::size_t max,
                                         std::string& scratch) const {
    if (offset >= size_) return {};
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, size_ - offset));
    if (!file_) {
        std::size_t index = 0;
        std::uint64_t start = 0;
        std::size_t capacity = first_chunk_;
        if (offset >= first_chunk_) {
            index = 1 + static_cast<std::size_t>((offset - first_chunk_) / kChunkSize);
            start = first_chunk_ + (index - 1) * std::uint64_t{kChunkSize};
            capacity = kChunkSize;
        }
        auto within = static_cast<std::size_t>(offset - start);
        return {chunks_[index].get() + within, std::min(want, capacity - within)};
    }
    if (std::fflush(file_) != 0) return {};
    scratch.resize(want);
    ssize_t n = ::pread(::fileno(file_), scratch.data(), want, static_cast<off_t>(offset));
    if (n <= 0) return {};
    return std::string_view(scratch.data(), static_cast<std::size_t>(n));
}

}  // namespace smtplb::io
