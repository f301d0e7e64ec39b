#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "proto/capabilities.hpp"
#include "proto/command.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// What one backend announced in its last EHLO (a probe's or a connection's),
// kept while it is unhealthy: the last known. Small and flat on purpose: it
// is copied under the pool's lock on every opened connection.
struct BackendCapabilities {
    bool known = false;  // an EHLO reply has been seen
    bool smtputf8 = false;
    bool eightbitmime = false;
    bool dsn = false;
    bool chunking = false;
    bool requiretls = false;
    std::uint64_t size_limit = 0;  // 0: no SIZE announced, or SIZE 0 (no fixed limit)

    static BackendCapabilities from(const proto::Capabilities& caps);
    bool operator==(const BackendCapabilities&) const = default;
};

// What a transaction needs of a backend (from its MAIL parameters).
struct TransactionNeeds {
    bool smtputf8 = false;
    bool requiretls = false;
    std::uint64_t size = 0;  // the client's SIZE=, 0 when it gave none

    static TransactionNeeds of(const proto::MailParameters& params);
    bool any() const { return smtputf8 || requiretls || size > 0; }
};

// Whether a backend may be offered the transaction: unknown capabilities
// are tried (its connection's EHLO decides then); known ones must fit.
// `verified_tls`: the pool reaches its backends over verified TLS only.
bool may_take(const BackendCapabilities& caps, const TransactionNeeds& needs, bool verified_tls);

// A pool's capabilities from its backends' last known ones (docs/esmtp.md,
// "What a listener offers"). An extension is "possible" unless every
// backend is known and none has it: a backend never reached yet may have it.
struct PoolCapabilities {
    std::size_t backends = 0;
    std::size_t known = 0;  // backends whose EHLO has been seen
    // How many known backends announce each.
    std::size_t smtputf8 = 0;
    std::size_t eightbitmime = 0;
    std::size_t dsn = 0;
    std::size_t chunking = 0;
    std::size_t requiretls = 0;
    // The smallest limit a known backend announces; 0 = none announces one.
    std::uint64_t size_limit = 0;
    bool verified_tls = false;  // [pool.tls] verifies every backend

    void add(const BackendCapabilities& backend);
    // An empty pool (from DNS, before its first answer) knows nothing: what
    // it will have may have anything, and nothing is refused for good.
    bool all_known() const { return backends > 0 && known == backends; }
    bool smtputf8_possible() const { return smtputf8 > 0 || !all_known(); }
    bool eightbitmime_possible() const { return eightbitmime > 0 || !all_known(); }
    bool requiretls_possible() const { return verified_tls && (requiretls > 0 || !all_known()); }
    // The SIZE a listener in front of this pool may offer: the smallest
    // backend limit, never above the listener's own.
    std::uint64_t size_offer(std::uint64_t listener_limit) const;
};

PoolCapabilities pool_capabilities(const std::vector<BackendCapabilities>& backends,
                                   bool verified_tls);

// The refusal for a transaction this pool cannot take, as a direct backend
// would give it, or nothing: SMTPUTF8 nobody has (553 5.6.7, RFC 6531
// §3.6.1), SIZE= above every limit (552 5.3.4, as Postfix says it),
// REQUIRETLS without a verified-TLS backend announcing it (RFC 8689 §5).
std::optional<proto::Reply> pool_refusal(const PoolCapabilities& pool,
                                         const TransactionNeeds& needs);

}  // namespace smtplb::core
