#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "config/limits.hpp"
#include "config/shaping.hpp"
#include "proto/data_decoder.hpp"
#include "proto/probe.hpp"
#include "proto/smarthost_auth.hpp"

namespace smtplb::config {

using Millis = std::chrono::milliseconds;

enum class ListenerMode { Smtp, Tcp };
enum class Role { Inbound, Relay, Submission };
enum class IdentityMode { Xclient, ProxyV1, ProxyV2, None };
enum class Algorithm { RoundRobin, LeastConnections, LeastPending, SourceHash, RandomTwo };
enum class Persistence { None, SourceIp };
enum class OnUnavailable { Tempfail, Spool };
// The name smtplb greets a backend with where no XCLIENT carries the
// client's HELO: its own hostname, or the client's HELO/EHLO argument.
enum class HeloToBackend { Smtplb, Client };
// Listener side: STARTTLS offered, implicit TLS (SMTPS, port 465), or
// STARTTLS that must come before MAIL.
enum class ServerTlsMode { None, Starttls, Implicit, Required };
// Backend side: plaintext; STARTTLS when offered, unverified; STARTTLS that
// must succeed with a verified certificate; TLS from the first byte, verified.
enum class BackendTlsMode { None, Opportunistic, Required, Implicit };
enum class TlsVersion { Tls12, Tls13 };
// A PROXY protocol header required from an upstream proxy in front.
enum class ProxyProtocol { None, V1, V2, Any };
using HealthDepth = proto::ProbeDepth;

// One event loop per CPU this process may run on, at most 16 (server.threads).
std::uint32_t default_threads();

struct ServerTls {
    ServerTlsMode mode = ServerTlsMode::None;
    std::string cert;  // PEM chain, leaf first
    std::string key;   // PEM private key
    TlsVersion min_version = TlsVersion::Tls12;
    std::string ciphers;  // OpenSSL cipher list for TLS 1.2; "" = OpenSSL's default
    // Ask clients for a certificate (never required, never verified): its
    // subject and fingerprint go into the tracking log.
    bool ask_client_cert = false;
    bool enabled() const { return mode != ServerTlsMode::None; }
};

struct Server {
    std::string hostname = "localhost";
    std::string state_dir = "/var/lib/smtplb";
    std::string tracking_log = "-";
    std::string admin = "127.0.0.1:8025";      // "" = no admin listener
    std::optional<base::HostPort> admin_bind;  // parsed from `admin`
    // Requests to the admin API must carry "Authorization: Bearer <token>",
    // the first line of this file. Required off loopback.
    std::string admin_token_file;
    std::string admin_token;  // read from the file; never printed
    // A second token that may only read (GET): status, queue listing, metrics.
    std::string admin_readonly_token_file;
    std::string admin_readonly_token;  // read from the file; never printed
    // Names a browser may use for the admin listener (the Host header), besides
    // its address: anything else is refused (DNS rebinding).
    std::vector<std::string> admin_hosts;
    // The admin listener over TLS (server.admin_tls = { cert, key }); mode
    // None without it. admin_tls_line: where it was given, for errors found
    // when OpenSSL loads the files.
    ServerTls admin_tls;
    int admin_tls_line = 0;
    std::uint64_t spill_threshold = 1u << 20;  // message bytes kept in memory
    // On SIGTERM: how long transactions in progress may take to finish.
    std::chrono::milliseconds shutdown_grace{30000};
    // Event loops that run client sessions, each on a thread of its own.
    // Fixed at start: a reload keeps the running number.
    std::uint32_t threads = default_threads();
    // Microseconds an event loop that has run out of events keeps polling
    // before it sleeps; 0 = never. Reloadable. Unless the file sets it, the
    // loader sets default_busy_poll_us(listeners).
    std::uint32_t busy_poll_us = 0;
    // Nameservers for the lookup of clients' host names (PTR, then A or
    // AAAA), "ADDR" (port 53) or "ADDR:PORT"; empty = the nameservers of
    // /etc/resolv.conf, read at start and on reload.
    std::vector<std::string> dns_servers_text;
    std::vector<base::HostPort> dns_servers;  // parsed, numeric addresses
    // Both lookups of one client together; past it the name is [TEMPUNAVAIL].
    Millis dns_timeout{5000};
    // Client names cached (by their TTL), over all event loops.
    std::uint32_t client_name_cache_size = 10000;
};

// The durable queue for pools with on_unavailable = "spool" (under state_dir).
struct Spool {
    std::uint32_t max_messages = 100000;
    std::uint64_t max_size = 10ull << 30;  // bytes of spool files
    Millis max_queue_lifetime{5LL * 86400000};
    Millis retry_initial{60000};  // first retry; doubles up to retry_max
    Millis retry_max{1800000};
    std::uint32_t concurrency = 20;  // messages delivered from the spool at once
    std::uint32_t writers = 4;       // threads that write and fsync spool files
    // A delay notice (DSN "delayed") once a message has waited this long; 0 = never.
    Millis delay_warning_time{4LL * 3600000};
    // RET=FULL returns a failed message whole up to this size, else its headers.
    std::uint64_t bounce_size_limit = 50000;
    // A Received: header on what the spool accepts (smtplb took responsibility).
    bool received_header = true;
};

struct BackendTls {
    BackendTlsMode mode = BackendTlsMode::None;
    std::string ca_file;      // "" = the system's trust store
    std::string verify_name;  // "" = each backend's address (or its tls_name)
    TlsVersion min_version = TlsVersion::Tls12;
    std::string cert;  // optional client certificate for the backends
    std::string key;
    bool verifies() const {
        return mode == BackendTlsMode::Required || mode == BackendTlsMode::Implicit;
    }
};

// How a submission listener checks AUTH credentials.
enum class AuthVerifier { Backend, Dovecot };

struct ListenerAuth {
    // backend: the SASL exchange is relayed to one healthy backend of the
    // pool (over TLS) and its verdict trusted; dovecot: Dovecot's auth
    // service is asked over its socket.
    AuthVerifier verifier = AuthVerifier::Backend;
    std::string dovecot_socket;      // a Unix socket path, or ADDRESS:PORT
    std::uint32_t max_failures = 5;  // per client address and per user, within failure_window
    Millis failure_window{600000};
    Millis timeout{10000};  // for one verification
};

struct Listener {
    std::string name;
    base::HostPort bind;
    ListenerMode mode = ListenerMode::Smtp;
    Role role = Role::Inbound;
    std::vector<std::string> accepted_domains;  // lower case
    std::vector<base::Cidr> trusted_networks;
    std::vector<std::string> trusted_networks_text;
    std::string pool;
    int pool_line = 0;  // where `pool` was given, for cross-reference errors
    // The identity sent in-band; with `transparent` only None or Xclient.
    IdentityMode client_identity = IdentityMode::Xclient;
    // client_identity = "transparent" or "transparent+xclient": backend
    // connections come from the client's own address (IP_TRANSPARENT,
    // CAP_NET_ADMIN), so the backend sees the client as its TCP peer.
    bool transparent = false;
    // tcp mode with transparent: from the client's port too (same-port
    // collisions possible: docs/identity.md).
    bool transparent_port = false;
    std::optional<base::IpAddress> source_address;
    std::uint32_t max_connections = 10000;
    std::uint32_t max_connections_per_client = 50;
    std::uint64_t max_message_size = 50ull << 20;
    std::uint32_t max_recipients = 100;
    std::uint32_t max_line_length = 512;
    std::uint32_t max_data_line_length = 65536;
    std::uint32_t max_commands = 100000;
    std::uint32_t max_errors = 10;
    Millis command_timeout{300000};  // RFC 5321 §4.5.3.2.7
    Millis data_timeout{600000};
    proto::BareLineEndings bare_line_endings = proto::BareLineEndings::Reject;
    proto::NulBytes nul_bytes = proto::NulBytes::Reject;  // Keep is not a choice
    bool smtputf8 = true;
    bool dsn = true;       // announce DSN (RFC 3461) and take its parameters
    bool chunking = true;  // CHUNKING offered: BDAT taken from clients
    // Look up the client's host name (reverse, then forward-confirmed, as
    // Postfix's smtpd does) for XCLIENT NAME and the tracking log.
    bool resolve_client_names = true;
    // Known recipients, for when the spool accepts mail no backend can
    // verify: one address per line, "@domain" for a whole domain, "#"
    // comments. Lower case. Without a file every recipient the policy
    // allows is accepted then (and unknown ones bounce later).
    std::string recipients_file;
    std::set<std::string> known_recipients;
    ServerTls tls;
    ListenerAuth auth;  // role = "submission" only
    // Another balancer or a filtering appliance in front: every connection
    // starts with a PROXY header, and only from these networks.
    ProxyProtocol proxy_protocol = ProxyProtocol::None;
    std::vector<base::Cidr> proxy_trusted_networks;
    std::vector<std::string> proxy_trusted_networks_text;
    Millis proxy_timeout{10000};  // for the whole header
};

// 5 µs of polling before an idle loop sleeps when a listener is in tcp
// mode and the process may use two CPUs or more, else none
// (server.busy_poll_us).
std::uint32_t default_busy_poll_us(const std::vector<Listener>& listeners);

struct Health {
    bool enabled = true;
    // MAIL by default: it shows sender-dependent back pressure and needs no
    // recipient that every backend is sure to accept.
    HealthDepth depth = HealthDepth::Mail;
    Millis interval{5000};
    Millis down_interval{2000};  // while a backend is busy or down
    Millis timeout{10000};
    std::uint32_t rise = 2;
    std::uint32_t fall = 2;
    std::string mail_from = "probe@external.invalid";
    std::string rcpt_to;  // required for depth "rcpt"
};

// smtplb's own account on a backend (a provider's smarthost): AUTH after
// EHLO on every connection to it, health probes included. Never the
// client's login: that one goes as XCLIENT LOGIN= to backends without auth.
struct BackendAuth {
    proto::AuthCredentials credentials;  // the password read from password_file
    std::string password_file;
    // AUTH without TLS towards the backend (a lab on loopback).
    bool allow_plaintext = false;
};

struct Backend {
    std::string name;
    base::HostPort address;
    std::uint32_t weight = 1;
    std::uint32_t priority = 10;
    // Connections smtplb keeps open to it at most, over every event loop
    // (0 = no limit): its process limit (Postfix's default_process_limit
    // or the smtpd line's maxproc in master.cf). Probes are not counted.
    std::uint32_t max_connections = 0;
    std::string tls_name;  // the name its certificate must carry; "" = the pool's verify_name
    std::optional<BackendAuth> auth;  // pool.backend.auth
    // Found by the pool's `discover` (docs/cluster.md): what it came from,
    // e.g. "mx example.org"; "" for a [[pool.backend]] of the file.
    std::string discovered_from;
};

// pool.discover: the pool's backends from DNS (docs/cluster.md). Each MX
// host's (or SRV target's, or the name's) A and AAAA addresses become
// backends; refreshed by the answers' TTLs within [min_refresh, max_refresh].
enum class DiscoverKind { Mx, A, Srv };
struct Discover {
    DiscoverKind kind = DiscoverKind::Mx;
    std::string name;         // lower case, without the final dot
    std::uint16_t port = 25;  // mx: always 25; a: `port`; srv: each record's
    Millis min_refresh{30000};
    Millis max_refresh{3600000};
    int line = 0;  // where it was given
    bool operator==(const Discover&) const = default;
};

struct Pool {
    std::string name;
    Algorithm algorithm = Algorithm::RoundRobin;
    Persistence persistence = Persistence::None;
    Millis persistence_ttl{3600000};
    OnUnavailable on_unavailable = OnUnavailable::Tempfail;
    Health health;
    std::vector<Backend> backends;
    std::optional<Discover> discover;  // more backends from DNS, beside `backends`
    std::uint32_t max_attempts = 3;    // backends tried for one transaction
    // 8-bit mail to a backend without 8BITMIME: converted to 7-bit MIME
    // (RFC 6152 §3), or, when false, only sent to a backend offering 8BITMIME.
    bool convert_8bit = true;
    Millis connect_timeout{10000};
    Millis reply_timeout{300000};
    // The reply to the final "." of a message: RFC 5321 §4.5.3.2.6 asks
    // for at least 10 minutes (the backend may be filtering the content).
    Millis final_reply_timeout{600000};
    // How long a backend connection waits on a slow client (between its
    // commands, or for its message body) before smtplb hands it back and
    // replays the envelope once the client goes on: a backend's own timeout
    // (Postfix's smtpd_timeout, 10 s under stress) and its process limit are
    // not spent on a slow client (docs/decisions.md).
    Millis backend_hold_time{1000};
    // One write of a message body to a backend gets kBodyWriteFloor plus
    // its size at data_min_rate (bytes per second), at most data_timeout
    // (RFC 5321 §4.5.3.2.5: 3 minutes per data block); commands and the
    // writes of other lines get reply_timeout.
    Millis data_timeout{180000};
    std::uint64_t data_min_rate = 500;  // Postfix's smtp_min_data_rate
    // A new backend connection's greeting and EHLO; shorter than RFC 5321's
    // 5 minutes, because another backend can take the mail meanwhile.
    Millis greeting_timeout{30000};
    // Without active probes: how long a backend that failed live traffic is
    // left alone before one trial transaction.
    Millis down_retry{10000};
    // Consecutive live failures (backend-wide 4xx, timeouts, refused
    // connections) that take a backend out at once, before any probe.
    std::uint32_t passive_fall = 1;
    Millis slow_start{10000};  // a recovered backend's weight ramps up over this
    Millis retry_time{60000};  // total time spent trying backends for one step
    // How long a transaction waits for a connection slot to a backend at
    // its max_connections before that backend counts as unable to take it.
    Millis connection_wait{5000};
    std::uint32_t max_idle_connections = 32;  // per backend, kept for reuse
    Millis idle_timeout{30000};
    // A backend connection is not reused once it is this old or has carried
    // this many transactions (Postfix's smtp_connection_reuse_time_limit is
    // 300 s): a backend's reload or new policy then reaches smtplb's traffic.
    Millis max_connection_age{300000};
    std::uint32_t max_messages_per_connection = 1000;
    // The longest XCLIENT command sent, CRLF included (Postfix reads lines
    // up to its line_length_limit, 2048 by default).
    std::uint32_t xclient_line_limit = 2048;
    // Backends reached without XCLIENT: greeted with the client's own HELO
    // name (Client), for filters that read it; such a connection is reused
    // only for clients that said the same name.
    HeloToBackend helo_to_backend = HeloToBackend::Smtplb;
    BackendTls tls;
    // [[pool.destination_limit]]: per backend and recipient domain (config/shaping.hpp).
    std::vector<DestinationLimit> destination_limits;
};

// Conditions combine with AND; an empty one matches anything. At least one
// is set (config/routes_reader.cpp).
struct Route {
    std::string recipient_domain;  // lower case; or
    std::string recipient;         // RE2 pattern on the whole address (route_pattern.hpp)
    // On the session (issue 27, tenants): its SASL login, its client's
    // address (after PROXY/XCLIENT), the listener it arrived on.
    std::vector<std::string> auth_users;  // `auth_user`: exact logins
    std::vector<base::Cidr> client_networks;
    std::vector<std::string> client_networks_text;  // `client_network`, as written
    std::vector<std::string> listeners;             // `listener`: names
    std::string pool;
    int pool_line = 0;

    bool on_recipient() const { return !recipient_domain.empty() || !recipient.empty(); }
    // Whether sessions of this listener may take this route.
    bool serves(const std::string& listener) const;
};

// [cluster]: several nodes sharing administrative state in Redis
// (docs/cluster.md). Absent, nothing of it exists.
struct Cluster {
    bool enabled = false;  // the table is in the file
    base::HostPort redis;  // numeric address and port
    std::string redis_text;
    // Redis Sentinel instead of `redis`: the sentinels to ask for the
    // master called `master_name` (docs/cluster.md "Redis Sentinel").
    std::vector<base::HostPort> sentinels;
    std::vector<std::string> sentinels_text;
    std::string master_name;
    std::string sentinel_password_file;
    std::string sentinel_password;  // never logged or printed
    std::string password_file;
    std::string password;       // the file's first line; never logged or printed
    bool tls = false;           // to Redis and the sentinels (docs/cluster.md "TLS")
    std::string tls_ca_file;    // "" = the system's trust store
    std::string tls_cert_file;  // a client certificate (Redis's tls-auth-clients)
    std::string tls_key_file;
    std::string tls_server_name;  // "" = each address's host
    std::string node_name;        // default: the machine's host name
    Millis timeout{5};            // each request's deadline
    std::string key_prefix = "smtplb";

    bool uses_sentinels() const { return !sentinels.empty(); }
    // Where Redis is, for logs and status: the address or the sentinels.
    std::string redis_description() const;
    // Shared limits: a concurrency place held by a node is its own for this
    // long unless renewed (every third of it): a node killed outright frees
    // its places within it.
    Millis lease_ttl{15000};
};

struct Config {
    Server server;
    Cluster cluster;
    Spool spool;
    std::vector<Listener> listeners;
    std::vector<Pool> pools;
    std::vector<Route> routes;
    std::vector<Limit> limits;  // [[limit]]: rates and concurrencies (config/limits.hpp)

    const Pool* find_pool(const std::string& name) const;
    bool uses_spool() const;
};

// How a pool's health probes reach its backends, so that a backend judges
// them as it judges the pool's traffic: with the PROXY header its listeners
// send (a backend listening with the PROXY protocol refuses a connection
// without one) and from their source_address when they all use the same.
// The listeners that feed a pool: those whose `pool` it is, and those a
// [[route]] to it serves (every listener, unless the route names some).
struct ProbeOrigin {
    IdentityMode identity = IdentityMode::None;  // ProxyV1/ProxyV2: that header
    std::optional<base::IpAddress> source;
};
ProbeOrigin probe_origin(const Config& config, const std::string& pool);

// The name a backend's certificate must carry: its tls_name, else the
// pool's verify_name, else its address.
std::string tls_name_for(const Pool& pool, const Backend& backend);

// What one write of a message body to a backend may take: a floor (a TCP
// retransmission or two) plus its size at the pool's data_min_rate, at most
// its data_timeout. The budget is per write, so a large body on a slow link
// goes through as long as each write makes progress.
constexpr Millis kBodyWriteFloor{10000};
Millis body_write_budget(const Pool& pool, std::uint64_t bytes);

const char* to_string(ListenerMode v);
const char* to_string(Role v);
const char* to_string(IdentityMode v);
// client_identity as written: "transparent+xclient", "transparent", or to_string(mode).
std::string identity_text(const Listener& l);
const char* to_string(Algorithm v);
const char* to_string(Persistence v);
const char* to_string(OnUnavailable v);
const char* to_string(HeloToBackend v);
const char* to_string(ServerTlsMode v);
const char* to_string(BackendTlsMode v);
const char* to_string(TlsVersion v);
const char* to_string(ProxyProtocol v);
const char* to_string(AuthVerifier v);
const char* to_string(DiscoverKind v);
// "mx example.org", "a hubs.example.org port 2525", "srv _smtp._tcp.example.org".
std::string discover_text(const Discover& d);
const char* to_string(proto::BareLineEndings v);
const char* to_string(proto::NulBytes v);

}  // namespace smtplb::config
