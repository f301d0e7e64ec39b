#include "io/runtime/spare_buffers.hpp"

#include <vector>

namespace smtplb::io {
namespace {

// At most this many kept per size and thread: 1 MiB of small, 2 MiB of large.
constexpr std::size_t kKeepSmall = 64;
constexpr std::size_t kKeepLarge = 32;

// Trivially destructible, so still readable while the thread's other
// thread_locals are destroyed: a buffer given back then is simply freed.
thread_local bool spares_gone = false;

struct Spares {
    std::vector<std::unique_ptr<char[]>> small, large;
    ~Spares() { spares_gone = true; }
};

std::vector<std::unique_ptr<char[]>>* spares_of(SpareSize size) {
    if (spares_gone) return nullptr;
    thread_local Spares spares;
    return size == SpareSize::Small ? &spares.small : &spares.large;
}

}  // namespace

std::unique_ptr<char[]> take_spare(SpareSize size) {
    auto* spares = spares_of(size);
    if (!spares || spares->empty())
        return std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(size));
    auto buffer = std::move(spares->back());
    spares->pop_back();
    return buffer;
}

void give_spare(SpareSize size, std::unique_ptr<char[]> buffer) {
    auto* spares = spares_of(size);
    std::size_t keep = size == SpareSize::Small ? kKeepSmall : kKeepLarge;
    if (buffer && spares && spares->size() < keep) spares->push_back(std::move(buffer));
}

std::size_t spare_count(SpareSize size) {
    auto* spares = spares_of(size);
    return spares ? spares->size() : 0;
}

}  // namespace smtplb::io
