#include "config/loader.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "base/text.hpp"
#include "config/admin_keys.hpp"
#include "config/backend_auth.hpp"
#include "config/bind_conflicts.hpp"
#include "config/cluster_reader.hpp"
#include "config/discover_reader.hpp"
#include "config/limits_reader.hpp"
#include "config/routes_reader.hpp"
#include "config/table_reader.hpp"
#include "config/transparent.hpp"

namespace smtplb::config {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kGiB = 1ull << 30;

void read_server(TableReader& r, Server& s) {
    r.string("hostname", s.hostname);
    r.string("state_dir", s.state_dir);
    r.string("tracking_log", s.tracking_log);
    r.string("admin", s.admin);
    r.size("spill_threshold", s.spill_threshold, 4096, kGiB);
    r.duration("shutdown_grace", s.shutdown_grace, 0ms, 1h);
    r.integer("threads", s.threads, 1, 64);
    r.integer("busy_poll_us", s.busy_poll_us, 0, 1000);
    r.string("admin_token_file", s.admin_token_file);
    auto& d = r.diagnostics();
    r.strings("dns_servers", s.dns_servers_text);
    s.dns_servers.clear();
    for (const auto& text : s.dns_servers_text) {
        std::optional<base::HostPort> server;
        if (base::IpAddress::parse(text))
            server = base::HostPort{text, 53};
        else if (auto hp = base::HostPort::parse(text); hp && base::IpAddress::parse(hp->host))
            server = hp;
        if (server && server->port != 0)
            s.dns_servers.push_back(*server);
        else
            d.error(r.key_path("dns_servers"), r.line_of("dns_servers"),
                    "\"" + text + "\" is not ADDRESS, ADDRESS:PORT or [IPv6]:PORT (numeric)");
    }
    r.duration("dns_timeout", s.dns_timeout, 100ms, 60s);
    r.integer("client_name_cache_size", s.client_name_cache_size, 0, 1000000);
    if (!s.admin_token_file.empty()) {
        std::ifstream in(s.admin_token_file);
        std::getline(in, s.admin_token);
        while (!s.admin_token.empty() &&
               std::isspace(static_cast<unsigned char>(s.admin_token.back())))
            s.admin_token.pop_back();
        if (!in && s.admin_token.empty())
            d.error(r.key_path("admin_token_file"), r.line_of("admin_token_file"),
                    "cannot read \"" + s.admin_token_file + "\"");
        else if (s.admin_token.size() < 16)
            d.error(r.key_path("admin_token_file"), r.line_of("admin_token_file"),
                    "the token (the file's first line) must have at least 16 characters");
    }
    read_admin_security(r, s);
    if (!s.admin.empty()) {
        auto hp = base::HostPort::parse(s.admin);
        auto ip = hp ? base::IpAddress::parse(hp->host) : std::nullopt;
        if (!ip)
            d.error(r.key_path("admin"), r.line_of("admin"),
                    "must be ADDRESS:PORT with a numeric address, or \"\" for none");
        else if (!ip->is_loopback() && s.admin_token_file.empty())
            // The API can drain every backend: not without a token off this host.
            d.error(r.key_path("admin"), r.line_of("admin"),
                    "a non-loopback admin address needs admin_token_file (a bearer token)");
        else
            s.admin_bind = hp;
    } else {
        s.admin_bind.reset();
    }
}

void read_spool(TableReader& r, Spool& s) {
    r.integer("max_messages", s.max_messages, 1, 10000000);
    r.size("max_size", s.max_size, 1ull << 20, 1ull << 50);
    r.duration("max_queue_lifetime", s.max_queue_lifetime, 10s, 24h * 30);
    r.duration("retry_initial", s.retry_initial, 1s, 24h);
    r.duration("retry_max", s.retry_max, 1s, 24h);
    r.integer("concurrency", s.concurrency, 1, 1000);
    r.integer("writers", s.writers, 1, 64);
    r.duration("delay_warning_time", s.delay_warning_time, 0s, 24h * 30);
    r.size("bounce_size_limit", s.bounce_size_limit, 1024, 50ull << 20);
    r.boolean("received_header", s.received_header);
    if (s.retry_max < s.retry_initial)
        r.diagnostics().error(r.key_path("retry_max"), r.line_of("retry_max"),
                              "must not be less than retry_initial");
}

void read_tls_version(TableReader& r, TlsVersion& v) {
    r.choice("min_version", v,
             {{"TLSv1.2", TlsVersion::Tls12},
              {"TLSv1.3", TlsVersion::Tls13},
              {"1.2", TlsVersion::Tls12},
              {"1.3", TlsVersion::Tls13}});
}

// A file the daemon reads at start and reload: its absence is a
// configuration error now, not a failed handshake later. (Whether it holds
// a usable certificate or key is checked where OpenSSL is, in io.)
void readable_file(TableReader& r, const std::string& key, const std::string& path) {
    if (path.empty()) return;
    std::ifstream in(path);
    if (!in) r.diagnostics().error(r.key_path(key), r.line_of(key), "cannot read \"" + path + "\"");
}

void read_server_tls(TableReader& r, ServerTls& t) {
    auto& d = r.diagnostics();
    r.choice("mode", t.mode,
             {{"none", ServerTlsMode::None},
              {"starttls", ServerTlsMode::Starttls},
              {"implicit", ServerTlsMode::Implicit},
              {"required", ServerTlsMode::Required}});
    r.string("cert", t.cert);
    r.string("key", t.key);
    read_tls_version(r, t.min_version);
    r.string("ciphers", t.ciphers);
    r.boolean("ask_client_cert", t.ask_client_cert);
    if (t.enabled() && (t.cert.empty() || t.key.empty()))
        d.error(r.key_path(t.cert.empty() ? "cert" : "key"), r.line_of("mode"),
                "TLS needs both cert and key (PEM files)");
    readable_file(r, "cert", t.cert);
    readable_file(r, "key", t.key);
}

void read_backend_tls(TableReader& r, BackendTls& t) {
    auto& d = r.diagnostics();
    r.choice("mode", t.mode,
             {{"none", BackendTlsMode::None},
              {"opportunistic", BackendTlsMode::Opportunistic},
              {"required", BackendTlsMode::Required},
              {"implicit", BackendTlsMode::Implicit}});
    r.string("ca_file", t.ca_file);
    r.string("verify_name", t.verify_name);
    read_tls_version(r, t.min_version);
    r.string("cert", t.cert);
    r.string("key", t.key);
    if (t.cert.empty() != t.key.empty())
        d.error(r.key_path(t.cert.empty() ? "cert" : "key"), r.line_of("mode"),
                "a client certificate needs both cert and key");
    readable_file(r, "ca_file", t.ca_file);
    readable_file(r, "cert", t.cert);
    readable_file(r, "key", t.key);
}

void read_auth(TableReader& r, ListenerAuth& a) {
    r.choice("verifier", a.verifier,
             {{"backend", AuthVerifier::Backend}, {"dovecot", AuthVerifier::Dovecot}});
    r.string("dovecot_socket", a.dovecot_socket);
    r.integer("max_failures", a.max_failures, 1, 1000);
    r.duration("failure_window", a.failure_window, 1s, 24h);
    r.duration("timeout", a.timeout, 100ms, 5min);
    if (a.verifier == AuthVerifier::Dovecot && a.dovecot_socket.empty())
        r.diagnostics().error(
            r.key_path("dovecot_socket"), r.line_of("verifier"),
            "the dovecot verifier needs the auth socket (a path, or ADDRESS:PORT)");
}

void read_listener(TableReader& r, Listener& l) {
    auto& d = r.diagnostics();
    r.string("name", l.name, true);
    std::string bind;
    r.string("bind", bind, true);
    if (!bind.empty()) {
        auto hp = base::HostPort::parse(bind);
        if (!hp || !base::IpAddress::parse(hp->host))
            d.error(
                r.key_path("bind"), r.line_of("bind"),
                "must be ADDRESS:PORT with a numeric address, e.g. \"0.0.0.0:25\" or \"[::]:25\"");
        else
            l.bind = *hp;
    }
    r.choice("mode", l.mode, {{"smtp", ListenerMode::Smtp}, {"tcp", ListenerMode::Tcp}});
    const bool tcp = l.mode == ListenerMode::Tcp;
    // Per connection, nothing of SMTP is seen: no XCLIENT, and the identity
    // goes by PROXY header or not at all.
    if (tcp && !r.node("client_identity")) l.client_identity = IdentityMode::None;
    r.choice(
        "role", l.role,
        {{"inbound", Role::Inbound}, {"relay", Role::Relay}, {"submission", Role::Submission}});
    r.strings("accepted_domains", l.accepted_domains);
    for (auto& dom : l.accepted_domains)
        dom = base::to_lower(dom);
    r.strings("trusted_networks", l.trusted_networks_text);
    for (const auto& text : l.trusted_networks_text) {
        if (auto c = base::Cidr::parse(text))
            l.trusted_networks.push_back(*c);
        else
            d.error(r.key_path("trusted_networks"), r.line_of("trusted_networks"),
                    "\"" + text + "\" is not an address or ADDRESS/PREFIX");
    }
    r.string("pool", l.pool, true);
    l.pool_line = r.line_of("pool");
    read_client_identity(r, l);
    std::string source;
    r.string("source_address", source);
    if (!source.empty()) {
        if (auto a = base::IpAddress::parse(source))
            l.source_address = a;
        else
            d.error(r.key_path("source_address"), r.line_of("source_address"),
                    "must be a numeric IPv4 or IPv6 address");
    }
    r.integer("max_connections", l.max_connections, 1, 1000000);
    r.integer("max_connections_per_client", l.max_connections_per_client, 1, 1000000);
    r.size("max_message_size", l.max_message_size, 1024, 4 * kGiB);
    r.integer("max_recipients", l.max_recipients, 1, 100000);
    r.integer("max_line_length", l.max_line_length, 512, 65536);
    r.integer("max_data_line_length", l.max_data_line_length, 1000, 16u << 20);
    r.integer("max_commands", l.max_commands, 10, 100000000);
    r.integer("max_errors", l.max_errors, 1, 1000);
    r.duration("command_timeout", l.command_timeout, 1s, 1h);
    r.duration("data_timeout", l.data_timeout, 1s, 1h);
    r.string("recipients_file", l.recipients_file);
    if (!l.recipients_file.empty()) {
        std::ifstream in(l.recipients_file);
        if (!in) {
            d.error(r.key_path("recipients_file"), r.line_of("recipients_file"),
                    "cannot read \"" + l.recipients_file + "\"");
        } else {
            std::string line;
            for (int n = 1; std::getline(in, line); ++n) {
                auto hash = line.find('#');
                if (hash != std::string::npos) line.erase(hash);
                auto word = base::to_lower(base::trim(line));
                if (word.empty()) continue;
                if (word.find_first_of(" \t<>") != std::string::npos ||
                    word.find('@') == std::string::npos) {
                    d.error(r.key_path("recipients_file"), r.line_of("recipients_file"),
                            l.recipients_file + ":" + std::to_string(n) +
                                ": not an address or @domain: \"" + base::printable(word) + "\"");
                    break;
                }
                l.known_recipients.insert(word);
            }
        }
    }
    r.choice("bare_line_endings", l.bare_line_endings,
             {{"reject", proto::BareLineEndings::Reject},
              {"normalise", proto::BareLineEndings::Normalise},
              {"normalize", proto::BareLineEndings::Normalise}});
    // No "keep": a NUL passed on can end the message early at a backend
    // that drops NULs before framing (SMTP smuggling).
    r.choice("nul_bytes", l.nul_bytes,
             {{"reject", proto::NulBytes::Reject}, {"strip", proto::NulBytes::Strip}});
    r.boolean("smtputf8", l.smtputf8);
    r.boolean("dsn", l.dsn);
    r.boolean("chunking", l.chunking);
    r.boolean("resolve_client_names", l.resolve_client_names);
    if (auto* t = r.table("tls")) {
        TableReader tr(*t, r.key_path("tls"), d);
        read_server_tls(tr, l.tls);
    }
    if (auto* t = r.table("auth")) {
        TableReader ar(*t, r.key_path("auth"), d);
        read_auth(ar, l.auth);
        if (l.role != Role::Submission)
            d.warning(r.key_path("auth"), r.line_of("auth"),
                      "only a listener with role = \"submission\" offers AUTH; ignored");
    }
    r.choice("proxy_protocol", l.proxy_protocol,
             {{"none", ProxyProtocol::None},
              {"v1", ProxyProtocol::V1},
              {"v2", ProxyProtocol::V2},
              {"any", ProxyProtocol::Any}});
    r.strings("proxy_trusted_networks", l.proxy_trusted_networks_text);
    for (const auto& text : l.proxy_trusted_networks_text) {
        if (auto c = base::Cidr::parse(text))
            l.proxy_trusted_networks.push_back(*c);
        else
            d.error(r.key_path("proxy_trusted_networks"), r.line_of("proxy_trusted_networks"),
                    "\"" + text + "\" is not an address or ADDRESS/PREFIX");
    }
    r.duration("proxy_timeout", l.proxy_timeout, 100ms, 5min);
    if (l.proxy_protocol != ProxyProtocol::None && l.proxy_trusted_networks_text.empty())
        // A header anyone may send would let anyone claim any address.
        d.error(r.key_path("proxy_trusted_networks"), r.line_of("proxy_protocol"),
                "proxy_protocol needs the networks of the proxies in front "
                "(proxy_trusted_networks)");

    check_transparent(r, l);
    if (tcp) {
        if (l.client_identity == IdentityMode::Xclient)
            d.error(r.key_path("client_identity"), r.line_of("client_identity"),
                    "a \"tcp\" listener cannot send XCLIENT: use proxy-v1, proxy-v2, "
                    "transparent or none");
        if (l.tls.enabled())
            d.error(
                r.key_path("tls"), r.line_of("mode"),
                "a \"tcp\" listener passes TLS through to the backends; it has no tls of its own");
        // Relay policy is the backends' then: only they see the envelope.
        return;
    }
    if (l.role == Role::Inbound && l.accepted_domains.empty())
        d.error(r.key_path("accepted_domains"), r.line_of("accepted_domains"),
                "an inbound listener needs the domains it accepts mail for");
    if (l.role == Role::Relay && l.trusted_networks.empty())
        d.warning(r.key_path("trusted_networks"), r.line_of("trusted_networks"),
                  "a relay listener without trusted networks relays for nobody");
    if (l.role == Role::Submission && !l.tls.enabled())
        d.error(r.key_path("tls"), r.line_of("role"),
                "a submission listener offers AUTH inside TLS only: it needs tls");
}

// A probe address goes into MAIL FROM:<...> or RCPT TO:<...> as written.
void check_probe_address(TableReader& r, const std::string& key, const std::string& value) {
    bool bad = value.size() > 254;
    for (unsigned char c : value)
        bad |= c <= ' ' || c == '<' || c == '>' || c == 0x7f;
    if (bad)
        r.diagnostics().error(r.key_path(key), r.line_of(key),
                              "must be a plain address (at most 254 characters, no spaces, "
                              "control characters or angle brackets)");
}

void read_health(TableReader& r, Health& h) {
    auto& d = r.diagnostics();
    r.boolean("enabled", h.enabled);
    r.choice("depth", h.depth,
             {{"connect", HealthDepth::Connect},
              {"banner", HealthDepth::Banner},
              {"ehlo", HealthDepth::Ehlo},
              {"starttls", HealthDepth::Starttls},
              {"mail", HealthDepth::Mail},
              {"rcpt", HealthDepth::Rcpt}});
    r.duration("interval", h.interval, 100ms, 1h);
    r.duration("down_interval", h.down_interval, 100ms, 1h);
    r.duration("timeout", h.timeout, 100ms, 10min);
    r.integer("rise", h.rise, 1, 100);
    r.integer("fall", h.fall, 1, 100);
    r.string("mail_from", h.mail_from);
    r.string("rcpt_to", h.rcpt_to);
    check_probe_address(r, "mail_from", h.mail_from);
    check_probe_address(r, "rcpt_to", h.rcpt_to);
    if (h.depth == HealthDepth::Rcpt && h.rcpt_to.empty())
        d.error(r.key_path("rcpt_to"), r.line_of("depth"),
                "depth \"rcpt\" needs a recipient every backend accepts, e.g. "
                "\"postmaster@example.net\"");
}

void read_backend(TableReader& r, Backend& b) {
    r.string("name", b.name, true);
    std::string address;
    r.string("address", address, true);
    if (!address.empty()) {
        if (auto hp = base::HostPort::parse(address); hp && base::IpAddress::parse(hp->host))
            b.address = *hp;
        else
            r.diagnostics().error(r.key_path("address"), r.line_of("address"),
                                  "must be ADDRESS:PORT with a numeric address");
    }
    r.integer("weight", b.weight, 1, 1000);
    r.integer("priority", b.priority, 0, 1000);
    r.integer("max_connections", b.max_connections, 0, 1000000);
    r.string("tls_name", b.tls_name);
}

void read_pool(TableReader& r, Pool& p) {
    auto& d = r.diagnostics();
    r.string("name", p.name, true);
    r.choice("algorithm", p.algorithm,
             {{"round_robin", Algorithm::RoundRobin},
              {"least_connections", Algorithm::LeastConnections},
              {"least_pending", Algorithm::LeastPending},
              {"source_hash", Algorithm::SourceHash},
              {"random_two", Algorithm::RandomTwo}});
    r.choice("persistence", p.persistence,
             {{"none", Persistence::None}, {"source_ip", Persistence::SourceIp}});
    r.duration("persistence_ttl", p.persistence_ttl, 1s, 24h * 7);
    r.choice("on_unavailable", p.on_unavailable,
             {{"tempfail", OnUnavailable::Tempfail}, {"spool", OnUnavailable::Spool}});
    if (auto* t = r.table("tls")) {
        TableReader tr(*t, r.key_path("tls"), d);
        read_backend_tls(tr, p.tls);
    }
    if (auto* t = r.table("health")) {
        TableReader hr(*t, r.key_path("health"), d);
        read_health(hr, p.health);
    }
    r.integer("max_attempts", p.max_attempts, 1, 20);
    r.boolean("convert_8bit", p.convert_8bit);
    r.duration("connect_timeout", p.connect_timeout, 100ms, 5min);
    r.duration("reply_timeout", p.reply_timeout, 1s, 1h);
    r.duration("final_reply_timeout", p.final_reply_timeout, 1s, 2h);
    r.duration("backend_hold_time", p.backend_hold_time, 200ms, 5s);
    r.duration("data_timeout", p.data_timeout, 1s, 1h);
    r.size("data_min_rate", p.data_min_rate, 1, 1ULL << 30);
    r.duration("greeting_timeout", p.greeting_timeout, 100ms, 10min);
    r.duration("down_retry", p.down_retry, 100ms, 1h);
    r.integer("passive_fall", p.passive_fall, 1, 100);
    r.duration("slow_start", p.slow_start, 0ms, 1h);
    r.duration("retry_time", p.retry_time, 1s, 1h);
    r.duration("connection_wait", p.connection_wait, 0ms, 5min);
    r.integer("max_idle_connections", p.max_idle_connections, 0, 10000);
    r.duration("idle_timeout", p.idle_timeout, 1s, 1h);
    r.duration("max_connection_age", p.max_connection_age, 1s, 24h);
    r.integer("max_messages_per_connection", p.max_messages_per_connection, 1, 1000000);
    r.integer("xclient_line_limit", p.xclient_line_limit, 512, 65536);
    r.choice("helo_to_backend", p.helo_to_backend,
             {{"smtplb", HeloToBackend::Smtplb}, {"client", HeloToBackend::Client}});
    read_discover(r, p);
    auto backends = r.tables("backend");
    if (backends.empty() && !p.discover)
        d.error(r.key_path("backend"), r.line_of("backend"),
                "a pool needs at least one [[pool.backend]] or a `discover`");
    std::set<std::string> names;
    for (std::size_t i = 0; i < backends.size(); ++i) {
        Backend b;
        TableReader br(*backends[i], r.key_path("backend") + "[" + std::to_string(i) + "]", d);
        read_backend(br, b);
        read_backend_auth(br, p, b);
        if (!b.name.empty() && !names.insert(b.name).second)
            d.error(br.path() + ".name", br.line_of("name"),
                    "duplicate backend name \"" + b.name + "\"");
        p.backends.push_back(std::move(b));
    }
    read_destination_limits(r, p.destination_limits);
}

// Reads every [[key]] table into `out`, each with its own path for messages.
template <typename T, typename ReadFn>
void read_each(TableReader& parent, const std::string& key, std::vector<T>& out, ReadFn read) {
    auto tables = parent.tables(key);
    for (std::size_t i = 0; i < tables.size(); ++i) {
        T item;
        TableReader reader(*tables[i], key + "[" + std::to_string(i) + "]", parent.diagnostics());
        read(reader, item);
        out.push_back(std::move(item));
    }
}

void cross_check(Config& c, const KeyLines& lines, Diagnostics& d) {
    std::set<std::string> pools, listeners;
    for (std::size_t i = 0; i < c.pools.size(); ++i)
        if (!pools.insert(c.pools[i].name).second)
            d.error("pool[" + std::to_string(i) + "].name",
                    lines.line("pool[" + std::to_string(i) + "].name"),
                    "duplicate pool name \"" + c.pools[i].name + "\"");
    for (std::size_t i = 0; i < c.listeners.size(); ++i) {
        auto& l = c.listeners[i];
        std::string path = "listener[" + std::to_string(i) + "]";
        if (!listeners.insert(l.name).second)
            d.error(path + ".name", lines.line(path + ".name"), "duplicate listener name");
        if (!l.pool.empty() && !pools.count(l.pool))
            d.error(path + ".pool", l.pool_line, "no [[pool]] is named \"" + l.pool + "\"");
        const auto* pool = c.find_pool(l.pool);
        if (pool && l.role == Role::Submission && l.mode == ListenerMode::Smtp &&
            l.auth.verifier == AuthVerifier::Backend && pool->tls.mode == BackendTlsMode::None)
            // Passwords are not sent to backends in plaintext.
            d.error(path + ".auth.verifier", l.pool_line,
                    "verifier \"backend\" sends passwords to pool \"" + l.pool +
                        "\"'s backends: that pool needs tls (opportunistic or better)");
        if (pool && l.mode == ListenerMode::Tcp)
            for (const auto& b : pool->backends)
                if (b.auth)  // bytes pass through: smtplb says nothing of its own
                    d.warning(path + ".mode", l.pool_line,
                              "a \"tcp\" listener's connections to backend \"" + b.name +
                                  "\" carry no AUTH: its auth is used by smtp listeners only");
    }
    if (c.listeners.empty()) d.error("listener", 0, "at least one [[listener]] is needed");
    check_bind_conflicts(c, lines, d);
    check_transparent_families(c, lines, d);
    check_limits(c, lines, d);
    check_routes(c, lines, d);
}

}  // namespace

LoadResult load_string(const std::string& text, const std::string& source_name) {
    LoadResult result;
    auto& d = result.diagnostics;
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        d.error("", static_cast<int>(e.source().begin.line), std::string(e.description()));
        return result;
    }
    result.lines = KeyLines(root);
    Config c;
    {
        TableReader r(root, "", d);
        toml::table no_server;
        const auto* server = r.table("server");
        TableReader sr(server ? *server : no_server, "server", d);
        read_server(sr, c.server);
        toml::table no_spool;
        const auto* spool = r.table("spool");
        TableReader spr(spool ? *spool : no_spool, "spool", d);
        read_spool(spr, c.spool);
        if (const auto* cluster = r.table("cluster")) {
            TableReader cr(*cluster, "cluster", d);
            read_cluster(cr, c.cluster);
        }
        read_each(r, "listener", c.listeners, read_listener);
        read_each(r, "pool", c.pools, read_pool);
        read_each(r, "route", c.routes, read_route);
        read_each(r, "limit", c.limits, read_limit);
        if (!server || !server->contains("busy_poll_us"))
            c.server.busy_poll_us = default_busy_poll_us(c.listeners);
    }
    // Top-level unknown keys are reported with a leading "." by the reader; tidy them.
    for (auto& item : d.items)
        if (!item.path.empty() && item.path.front() == '.') item.path.erase(0, 1);
    cross_check(c, result.lines, d);
    if (!d.has_errors()) result.config = std::move(c);
    return result;
}

LoadResult load_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        LoadResult r;
        r.diagnostics.error("", 0, "cannot open the file");
        return r;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return load_string(text.str(), path);
}

}  // namespace smtplb::config
