#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/data_decoder.hpp"

namespace smtplb::io {

// Holds one message so it can be replayed on another backend, in
// transmission form (dot-stuffed: see proto::BodyForm):
// in memory up to a threshold, then in an unlinked temporary file. Memory
// is a list of chunks, so a growing message is never copied to a bigger
// block (a 100 KiB message grown by doubling from 16 KiB was copied 112 KiB
// more); chunk_at() returns at most the rest of one chunk.
class MessageBuffer final : public proto::BodySink, public proto::BodySource {
  public:
    explicit MessageBuffer(std::uint64_t memory_limit, std::string spill_dir)
        : memory_limit_(memory_limit), spill_dir_(std::move(spill_dir)) {}
    ~MessageBuffer() override;
    MessageBuffer(const MessageBuffer&) = delete;
    MessageBuffer& operator=(const MessageBuffer&) = delete;

    void append(std::string_view bytes) override;
    // Empties it for the next message and gives its memory back: a session
    // that goes idle after a message must not keep the message's size.
    void clear();
    // The client's SIZE= for the coming message: a large one skips the
    // small first chunk.
    void expect(std::uint64_t size) { expected_ = size; }
    std::uint64_t size() const override { return size_; }
    bool failed() const { return failed_; }  // the spill file could not be written
    std::string_view chunk_at(std::uint64_t offset, std::size_t max,
                              std::string& scratch) const override;
    proto::BodyForm form() const override { return proto::BodyForm::Transmission; }
    // The decoder's count of the content (the stored bytes less stuffing),
    // for a BDAT to a backend; checked against the bytes as they are sent.
    void set_content_size(std::uint64_t size) { content_size_ = size; }
    std::optional<std::uint64_t> content_size() const override { return content_size_; }

  private:
    void spill();
    void add_chunk();
    // Gives full-size chunks to this thread's spares (bounded), frees the rest.
    void release_chunks();

    std::uint64_t memory_limit_;
    std::string spill_dir_;
    // Chunk 0 holds first_chunk_ bytes, every later one kChunkSize.
    std::vector<std::unique_ptr<char[]>> chunks_;
    std::size_t first_chunk_ = 0;
    std::size_t room_ = 0;  // free bytes at the end of the last chunk
    std::FILE* file_ = nullptr;
    std::uint64_t size_ = 0;
    std::uint64_t expected_ = 0;
    bool failed_ = false;
    std::optional<std::uint64_t> content_size_;
};

}  // namespace smtplb::io
