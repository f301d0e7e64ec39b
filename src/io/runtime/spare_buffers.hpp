#pragma once
#include <cstddef>
#include <memory>

namespace smtplb::io {

// Buffers of two fixed sizes, recycled per thread: a message's buffers go
// back here for the next message instead of to malloc, which for blocks
// this large is its slow path, and which trimmed the heap after every large
// message only to fault the pages back in for the next one (1 to 2.8 minor
// faults per 100 KiB message). Bounded per size; the rest are freed.
enum class SpareSize : std::size_t { Small = 16384, Large = 65536 };

// A buffer of `size` bytes, uninitialised.
std::unique_ptr<char[]> take_spare(SpareSize size);
// Keeps `buffer` (which must hold `size` bytes) for the next take_spare.
void give_spare(SpareSize size, std::unique_ptr<char[]> buffer);
// How many this thread keeps now.
std::size_t spare_count(SpareSize size);

}  // namespace smtplb::io
