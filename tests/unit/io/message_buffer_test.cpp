#include "io/runtime/message_buffer.hpp"
#include "io/runtime/spare_buffers.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

namespace smtplb::io {
namespace {

std::string random_text(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string text(size, '\0');
    for (auto& c : text)
        c = static_cast<char>('a' + rng() % 26);
    return text;
}

// Reads the whole body back through chunk_at, as the relay does.
std::string read_back(const proto::BodySource& body, std::size_t max) {
    std::string out, scratch;
    while (out.size() < body.size()) {
        auto chunk = body.chunk_at(out.size(), max, scratch);
        EXPECT_FALSE(chunk.empty()) << "at offset " << out.size();
        if (chunk.empty()) break;
        EXPECT_LE(chunk.size(), max);
        out.append(chunk);
    }
    return out;
}

// Appends `text` in pieces of varying sizes (1 to 9000 bytes).
void append_in_pieces(MessageBuffer& buffer, std::string_view text, unsigned seed) {
    std::mt19937 rng(seed);
    while (!text.empty()) {
        std::size_t n = std::min<std::size_t>(text.size(), 1 + rng() % 9000);
        buffer.append(text.substr(0, n));
        text.remove_prefix(n);
    }
}

std::string temp_dir() {
    return std::filesystem::temp_directory_path().string();
}

TEST(MessageBuffer, PiecesAcrossChunkBoundariesReadBackUnchanged) {
    for (std::size_t size : {0UL, 1UL, 16383UL, 16384UL, 16385UL, 81920UL, 81921UL, 300000UL}) {
        MessageBuffer buffer(10 << 20, temp_dir());
        auto text = random_text(size, static_cast<unsigned>(size));
        append_in_pieces(buffer, text, 3);
        EXPECT_EQ(buffer.size(), size);
        EXPECT_EQ(read_back(buffer, 65536), text) << size;
        EXPECT_EQ(read_back(buffer, 1000), text) << size;
    }
}

TEST(MessageBuffer, ChunkAtAnyOffsetStartsThere) {
    MessageBuffer buffer(10 << 20, temp_dir());
    auto text = random_text(200000, 9);
    buffer.append(text);
    std::string scratch;
    for (std::uint64_t offset : {0UL, 16383UL, 16384UL, 50000UL, 81920UL, 199999UL}) {
        auto chunk = buffer.chunk_at(offset, 65536, scratch);
        ASSERT_FALSE(chunk.empty());
        EXPECT_EQ(chunk, std::string_view(text).substr(offset, chunk.size()));
    }
    EXPECT_TRUE(buffer.chunk_at(200000, 10, scratch).empty());
}

TEST(MessageBuffer, SizeHintSkipsTheSmallFirstChunk) {
    MessageBuffer buffer(10 << 20, temp_dir());
    buffer.expect(100000);
    auto text = random_text(100000, 4);
    append_in_pieces(buffer, text, 5);
    std::string scratch;
    EXPECT_EQ(buffer.chunk_at(0, 200000, scratch).size(), 65536U);
    EXPECT_EQ(read_back(buffer, 200000), text);
}

// Whether a message of `next_size` bytes, after one of `first_size`, gets
// the same memory for the chunk holding `offset`; and reads back unchanged.
void expect_chunk_reused(std::size_t first_size, std::size_t next_size, std::uint64_t offset) {
    MessageBuffer first(10 << 20, temp_dir());
    first.append(random_text(first_size, 1));
    std::string scratch;
    const char* used_before = first.chunk_at(offset, 10, scratch).data();
    first.clear();
    MessageBuffer next(10 << 20, temp_dir());
    auto text = random_text(next_size, 2);
    next.append(text);
    EXPECT_EQ(next.chunk_at(offset, 10, scratch).data(), used_before);
    EXPECT_EQ(read_back(next, 65536), text);
}

TEST(MessageBuffer, FullChunksAreReusedByTheNextMessage) {
    // Handing them back to malloc made it trim the heap after each large
    // message and fault the pages in again for the next.
    expect_chunk_reused(100000, 100000, 16384);
}

TEST(MessageBuffer, TheSmallFirstChunkIsReusedToo) {
    // The usual message fits the first chunk: a 16 KiB malloc and free per
    // message otherwise.
    expect_chunk_reused(3000, 5000, 0);
}

TEST(SpareBuffers, AreKeptPerSizeAndBounded) {
    // Start from none: other tests in this process leave some behind.
    while (spare_count(SpareSize::Small) > 0)
        take_spare(SpareSize::Small);
    while (spare_count(SpareSize::Large) > 0)
        take_spare(SpareSize::Large);
    auto small = take_spare(SpareSize::Small);
    auto large = take_spare(SpareSize::Large);
    const char* small_at = small.get();
    const char* large_at = large.get();
    give_spare(SpareSize::Small, std::move(small));
    give_spare(SpareSize::Large, std::move(large));
    EXPECT_EQ(take_spare(SpareSize::Large).get(), large_at) << "a small buffer served as large";
    auto again = take_spare(SpareSize::Small);
    EXPECT_EQ(again.get(), small_at);
    // Far more than are kept: the excess is freed, not hoarded.
    std::vector<std::unique_ptr<char[]>> many;
    for (int i = 0; i < 1000; ++i)
        many.push_back(take_spare(SpareSize::Small));
    EXPECT_EQ(spare_count(SpareSize::Small), 0u);
    for (auto& buffer : many)
        give_spare(SpareSize::Small, std::move(buffer));
    EXPECT_EQ(spare_count(SpareSize::Small), 64u);
    EXPECT_EQ(spare_count(SpareSize::Large), 0u);
}

TEST(MessageBuffer, SpillsToAFilePastTheMemoryLimitAndKeepsEveryByte) {
    MessageBuffer buffer(50000, temp_dir());
    auto text = random_text(250000, 6);
    append_in_pieces(buffer, text, 7);
    ASSERT_FALSE(buffer.failed());
    EXPECT_EQ(read_back(buffer, 65536), text);
}

TEST(MessageBuffer, ClearStartsAfreshForTheNextMessage) {
    MessageBuffer buffer(50000, temp_dir());
    buffer.append(random_text(120000, 1));  // spilled
    buffer.clear();
    EXPECT_EQ(buffer.size(), 0U);
    auto text = random_text(30000, 2);
    append_in_pieces(buffer, text, 8);
    EXPECT_EQ(read_back(buffer, 65536), text);
}

TEST(MessageBuffer, AnUnwritableSpillDirectoryFailsTheMessage) {
    MessageBuffer buffer(1000, "/nonexistent/smtplb-spill");
    buffer.append(random_text(2000, 3));
    EXPECT_TRUE(buffer.failed());
}

}  // namespace
}  // namespace smtplb::io
