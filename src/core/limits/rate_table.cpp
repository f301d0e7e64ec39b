#include "core/limits/rate_table.hpp"

#include <cstring>
#include <functional>
#include <new>

namespace smtplb::core {

RateTable::~RateTable() {
    while (oldest_)
        erase(oldest_);
}

std::uint32_t RateTable::hash_of(std::string_view key) {
    auto h = std::hash<std::string_view>{}(key);
    return static_cast<std::uint32_t>(h ^ (h >> 32));
}

RateTable::Node* RateTable::find(std::string_view key) const {
    if (buckets_.empty()) return nullptr;
    const auto hash = hash_of(key);
    for (Node* n = bucket(hash); n; n = n->chain)
        if (n->hash == hash && n->key() == key) return n;
    return nullptr;
}

RateTable::Node* RateTable::insert(std::string_view key, const GcraState& state, TimePoint now) {
    if (size_ + 1 > buckets_.size()) grow();
    void* memory = ::operator new(sizeof(Node) + key.size());
    Node* n = new (memory) Node;
    std::memcpy(n + 1, key.data(), key.size());
    n->key_size = static_cast<std::uint32_t>(key.size());
    n->hash = hash_of(key);
    n->state = state;
    Node*& head = bucket(n->hash);
    n->chain = head;
    head = n;
    ++size_;
    push_newest(n, now);
    return n;
}

void RateTable::erase(Node* node) {
    unlink(node);
    for (Node** link = &bucket(node->hash); *link; link = &(*link)->chain)
        if (*link == node) {
            *link = node->chain;
            break;
        }
    --size_;
    node->~Node();
    ::operator delete(node);
}

void RateTable::touch(Node* node, TimePoint now) {
    unlink(node);
    push_newest(node, now);
}

void RateTable::unlink(Node* n) {
    (n->older ? n->older->newer : oldest_) = n->newer;
    (n->newer ? n->newer->older : newest_) = n->older;
    n->older = n->newer = nullptr;
}

void RateTable::push_newest(Node* n, TimePoint now) {
    n->last_used = now;
    n->older = newest_;
    n->newer = nullptr;
    if (newest_) newest_->newer = n;
    newest_ = n;
    if (!oldest_) oldest_ = n;
}

void RateTable::grow() {
    std::vector<Node*> old = std::move(buckets_);
    buckets_.assign(old.empty() ? 16 : old.size() * 2, nullptr);
    for (Node* head : old)
        while (head) {
            Node* next = head->chain;
            Node*& slot = bucket(head->hash);
            head->chain = slot;
            slot = head;
            head = next;
        }
}

}  // namespace smtplb::core
