#include "core/pool_capabilities.hpp"

#include <algorithm>

namespace smtplb::core {

BackendCapabilities BackendCapabilities::from(const proto::Capabilities& caps) {
    BackendCapabilities b;
    b.known = true;
    b.smtputf8 = caps.smtputf8;
    b.eightbitmime = caps.eightbitmime;
    b.dsn = caps.dsn;
    b.chunking = caps.chunking;
    b.requiretls = caps.requiretls;
    b.size_limit = caps.size_limit.value_or(0);
    return b;
}

TransactionNeeds TransactionNeeds::of(const proto::MailParameters& params) {
    return {params.smtputf8, params.requiretls, params.size.value_or(0)};
}

bool may_take(const BackendCapabilities& caps, const TransactionNeeds& needs, bool verified_tls) {
    if (needs.requiretls && !verified_tls) return false;
    if (!caps.known) return true;
    if (needs.smtputf8 && !caps.smtputf8) return false;
    if (needs.requiretls && !caps.requiretls) return false;
    if (needs.size > 0 && caps.size_limit > 0 && needs.size > caps.size_limit) return false;
    return true;
}

std::uint64_t PoolCapabilities::size_offer(std::uint64_t listener_limit) const {
    if (size_limit == 0) return listener_limit;
    if (listener_limit == 0) return size_limit;
    return std::min(size_limit, listener_limit);
}

void PoolCapabilities::add(const BackendCapabilities& b) {
    ++backends;
    if (!b.known) return;
    ++known;
    smtputf8 += b.smtputf8;
    eightbitmime += b.eightbitmime;
    dsn += b.dsn;
    chunking += b.chunking;
    requiretls += b.requiretls;
    if (b.size_limit > 0 && (size_limit == 0 || b.size_limit < size_limit))
        size_limit = b.size_limit;
}

PoolCapabilities pool_capabilities(const std::vector<BackendCapabilities>& backends,
                                   bool verified_tls) {
    PoolCapabilities pool;
    pool.verified_tls = verified_tls;
    for (const auto& b : backends)
        pool.add(b);
    return pool;
}

std::optional<proto::Reply> pool_refusal(const PoolCapabilities& pool,
                                         const TransactionNeeds& needs) {
    if (needs.smtputf8 && !pool.smtputf8_possible())
        return proto::Reply::make(553, "5.6.7",
                                  "SMTPUTF8 is required, but no mail server here supports it");
    if (needs.size > 0 && pool.size_limit > 0 && needs.size > pool.size_limit)
        return proto::Reply::make(552, "5.3.4", "Message size exceeds fixed limit");
    if (needs.requiretls && !pool.requiretls_possible())
        return proto::Reply::make(550, "5.7.30",
                                  "REQUIRETLS support required, but no mail server here offers it");
    return std::nullopt;
}

}  // namespace smtplb::core
