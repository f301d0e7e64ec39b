#include "core/persistence.hpp"

namespace smtplb::core {

std::optional<std::size_t> PersistenceTable::lookup(const std::string& client) const {
    auto it = entries_.find(client);
    if (it == entries_.end() || it->second.expires <= clock_.now()) return std::nullopt;
    return it->second.backend;
}

void PersistenceTable::remember(const std::string& client, std::size_t backend) {
    if (entries_.size() >= max_entries_) sweep();
    if (entries_.size() >= max_entries_) entries_.clear();
    entries_[client] = Entry{backend, clock_.now() + ttl_};
}

void PersistenceTable::sweep() {
    auto now = clock_.now();
    for (auto it = entries_.begin(); it != entries_.end();)
        it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
}

}  // namespace smtplb::core
