#include "config/config.hpp"

#include <sched.h>

#include <algorithm>

namespace smtplb::config {

namespace {
// The CPUs this process may use (a container's or systemd's CPU set), not
// all the machine has.
int usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}
}  // namespace

std::uint32_t default_threads() {
    return static_cast<std::uint32_t>(std::clamp(usable_cpus(), 1, 16));
}

std::uint32_t default_busy_poll_us(const std::vector<Listener>& listeners) {
    // Measured (docs/decisions.md, "Busy poll"): it lifts tcp mode, whose
    // work per event is tiny next to a wake-up, and leaves smtp mode's rate
    // as it was at more CPU. With one CPU, whatever would bring the next
    // event cannot run while the loop polls: polling only delays it.
    bool tcp = std::any_of(listeners.begin(), listeners.end(),
                           [](const Listener& l) { return l.mode == ListenerMode::Tcp; });
    return tcp && usable_cpus() > 1 ? 5 : 0;
}

bool Config::uses_spool() const {
    for (const auto& p : pools)
        if (p.on_unavailable == OnUnavailable::Spool) return true;
    return false;
}

bool Route::serves(const std::string& listener) const {
    return listeners.empty() ||
           std::find(listeners.begin(), listeners.end(), listener) != listeners.end();
}

ProbeOrigin probe_origin(const Config& config, const std::string& pool) {
    auto routed = [&](const Listener& l) {
        return std::any_of(config.routes.begin(), config.routes.end(),
                           [&](const Route& r) { return r.pool == pool && r.serves(l.name); });
    };
    ProbeOrigin origin;
    bool first = true, same_source = true;
    for (const auto& l : config.listeners) {
        if (l.pool != pool && !routed(l)) continue;
        if (l.client_identity == IdentityMode::ProxyV1 ||
            l.client_identity == IdentityMode::ProxyV2)
            origin.identity = l.client_identity;
        if (!first && l.source_address != origin.source) same_source = false;
        origin.source = l.source_address;
        first = false;
    }
    if (!same_source) origin.source.reset();
    return origin;
}

const Pool* Config::find_pool(const std::string& name) const {
    for (const auto& p : pools)
        if (p.name == name) return &p;
    return nullptr;
}

const char* to_string(ListenerMode v) {
    return v == ListenerMode::Smtp ? "smtp" : "tcp";
}
const char* to_string(Role v) {
    switch (v) {
        case Role::Inbound:
            return "inbound";
        case Role::Relay:
            return "relay";
        case Role::Submission:
            return "submission";
    }
    return "?";
}
const char* to_string(IdentityMode v) {
    switch (v) {
        case IdentityMode::Xclient:
            return "xclient";
        case IdentityMode::ProxyV1:
            return "proxy-v1";
        case IdentityMode::ProxyV2:
            return "proxy-v2";
        case IdentityMode::None:
            return "none";
    }
    return "?";
}
std::string identity_text(const Listener& l) {
    if (!l.transparent) return to_string(l.client_identity);
    return l.client_identity == IdentityMode::Xclient ? "transparent+xclient" : "transparent";
}
const char* to_string(Algorithm v) {
    switch (v) {
        case Algorithm::RoundRobin:
            return "round_robin";
        case Algorithm::LeastConnections:
            return "least_connections";
        case Algorithm::LeastPending:
            return "least_pending";
        case Algorithm::SourceHash:
            return "source_hash";
        case Algorithm::RandomTwo:
            return "random_two";
    }
    return "?";
}
const char* to_string(Persistence v) {
    return v == Persistence::None ? "none" : "source_ip";
}
const char* to_string(OnUnavailable v) {
    return v == OnUnavailable::Tempfail ? "tempfail" : "spool";
}
const char* to_string(HeloToBackend v) {
    return v == HeloToBackend::Smtplb ? "smtplb" : "client";
}
Millis body_write_budget(const Pool& pool, std::uint64_t bytes) {
    auto rate = std::max<std::uint64_t>(pool.data_min_rate, 1);
    auto seconds = bytes / rate;
    // Past data_timeout anyway: cut before the product can overflow.
    if (seconds >= static_cast<std::uint64_t>(pool.data_timeout.count()) / 1000 + 1)
        return pool.data_timeout;
    auto at_rate = Millis(seconds * 1000 + bytes % rate * 1000 / rate);
    return std::min(pool.data_timeout, kBodyWriteFloor + at_rate);
}

std::string tls_name_for(const Pool& pool, const Backend& backend) {
    if (!backend.tls_name.empty()) return backend.tls_name;
    if (!pool.tls.verify_name.empty()) return pool.tls.verify_name;
    return backend.address.host;
}

const char* to_string(ServerTlsMode v) {
    switch (v) {
        case ServerTlsMode::None:
            return "none";
        case ServerTlsMode::Starttls:
            return "starttls";
        case ServerTlsMode::Implicit:
            return "implicit";
        case ServerTlsMode::Required:
            return "required";
    }
    return "?";
}
const char* to_string(BackendTlsMode v) {
    switch (v) {
        case BackendTlsMode::None:
            return "none";
        case BackendTlsMode::Opportunistic:
            return "opportunistic";
        case BackendTlsMode::Required:
            return "required";
        case BackendTlsMode::Implicit:
            return "implicit";
    }
    return "?";
}
const char* to_string(TlsVersion v) {
    return v == TlsVersion::Tls12 ? "TLSv1.2" : "TLSv1.3";
}
const char* to_string(ProxyProtocol v) {
    switch (v) {
        case ProxyProtocol::None:
            return "none";
        case ProxyProtocol::V1:
            return "v1";
        case ProxyProtocol::V2:
            return "v2";
        case ProxyProtocol::Any:
            return "any";
    }
    return "?";
}
const char* to_string(AuthVerifier v) {
    return v == AuthVerifier::Backend ? "backend" : "dovecot";
}
const char* to_string(DiscoverKind v) {
    switch (v) {
        case DiscoverKind::Mx:
            return "mx";
        case DiscoverKind::A:
            return "a";
        case DiscoverKind::Srv:
            return "srv";
    }
    return "?";
}
std::string discover_text(const Discover& d) {
    std::string out = std::string(to_string(d.kind)) + " " + d.name;
    if (d.kind == DiscoverKind::A) out += " port " + std::to_string(d.port);
    return out;
}
const char* to_string(proto::BareLineEndings v) {
    return v == proto::BareLineEndings::Reject ? "reject" : "normalise";
}
const char* to_string(proto::NulBytes v) {
    switch (v) {
        case proto::NulBytes::Reject:
            return "reject";
        case proto::NulBytes::Strip:
            return "strip";
        case proto::NulBytes::Keep:
            return "keep";
    }
    return "?";
}

}  // namespace smtplb::config
