#include "config/describe.hpp"

#include <sstream>

#include "base/units.hpp"
#include "config/toml_text.hpp"

namespace smtplb::config {
namespace {

using toml_text::list;
using toml_text::quoted;

// Durations and sizes as an administrator writes them ("5m", "10MiB").
std::string ms(Millis d) {
    return quoted(base::format_duration(d));
}

std::string bytes(std::uint64_t n) {
    return quoted(base::format_size(n));
}

}  // namespace

std::string describe(const Config& c) {
    std::ostringstream o;
    o << "[server]\n"
      << "hostname = " << quoted(c.server.hostname) << "\n"
      << "state_dir = " << quoted(c.server.state_dir) << "\n"
      << "tracking_log = " << quoted(c.server.tracking_log) << "\n"
      << "admin = " << quoted(c.server.admin) << "\n"
      << "admin_token_file = " << quoted(c.server.admin_token_file) << "\n"
      << "admin_readonly_token_file = " << quoted(c.server.admin_readonly_token_file) << "\n"
      << "admin_hosts = " << list(c.server.admin_hosts) << "\n";
    if (c.server.admin_tls.enabled())
        o << "admin_tls = { cert = " << quoted(c.server.admin_tls.cert)
          << ", key = " << quoted(c.server.admin_tls.key) << " }\n";
    o << "spill_threshold = " << bytes(c.server.spill_threshold) << "\n"
      << "shutdown_grace = " << ms(c.server.shutdown_grace) << "\n"
      << "threads = " << c.server.threads << "\n"
      << "busy_poll_us = " << c.server.busy_poll_us << "\n"
      << "dns_servers = " << list(c.server.dns_servers_text) << "\n"
      << "dns_timeout = " << ms(c.server.dns_timeout) << "\n"
      << "client_name_cache_size = " << c.server.client_name_cache_size << "\n";
    o << "\n[spool]\n"
      << "max_messages = " << c.spool.max_messages << "\n"
      << "max_size = " << bytes(c.spool.max_size) << "\n"
      << "max_queue_lifetime = " << ms(c.spool.max_queue_lifetime) << "\n"
      << "retry_initial = " << ms(c.spool.retry_initial) << "\n"
      << "retry_max = " << ms(c.spool.retry_max) << "\n"
      << "concurrency = " << c.spool.concurrency << "\n"
      << "writers = " << c.spool.writers << "\n"
      << "delay_warning_time = " << ms(c.spool.delay_warning_time) << "\n"
      << "bounce_size_limit = " << bytes(c.spool.bounce_size_limit) << "\n"
      << "received_header = " << (c.spool.received_header ? "true" : "false") << "\n";
    if (c.cluster.enabled)  // the password itself is never printed
        o << "\n[cluster]\n"
          << (c.cluster.uses_sentinels()
                  ? "sentinels = " + list(c.cluster.sentinels_text) +
                        "\nmaster_name = " + quoted(c.cluster.master_name) +
                        "\nsentinel_password_file = " + quoted(c.cluster.sentinel_password_file)
                  : "redis = " + quoted(c.cluster.redis_text))
          << "\n"
          << "password_file = " << quoted(c.cluster.password_file) << "\n"
          << "tls = " << (c.cluster.tls ? "true" : "false") << "\n"
          << "node_name = " << quoted(c.cluster.node_name) << "\n"
          << "timeout = " << ms(c.cluster.timeout) << "\n"
          << "key_prefix = " << quoted(c.cluster.key_prefix) << "\n"
          << "lease_ttl = " << ms(c.cluster.lease_ttl) << "\n";
    for (const auto& l : c.listeners) {
        o << "\n[[listener]]\n"
          << "name = " << quoted(l.name) << "\n"
          << "bind = " << quoted(l.bind.to_string()) << "\n"
          << "mode = " << quoted(to_string(l.mode)) << "\n"
          << "role = " << quoted(to_string(l.role)) << "\n"
          << "accepted_domains = " << list(l.accepted_domains) << "\n"
          << "trusted_networks = " << list(l.trusted_networks_text) << "\n"
          << "pool = " << quoted(l.pool) << "\n"
          << "client_identity = " << quoted(identity_text(l)) << "\n"
          << "transparent_port = " << (l.transparent_port ? "true" : "false") << "\n"
          << "source_address = " << quoted(l.source_address ? l.source_address->to_string() : "")
          << "\n"
          << "max_connections = " << l.max_connections << "\n"
          << "max_connections_per_client = " << l.max_connections_per_client << "\n"
          << "max_message_size = " << bytes(l.max_message_size) << "\n"
          << "max_recipients = " << l.max_recipients << "\n"
          << "max_line_length = " << l.max_line_length << "\n"
          << "max_data_line_length = " << l.max_data_line_length << "\n"
          << "max_commands = " << l.max_commands << "\n"
          << "max_errors = " << l.max_errors << "\n"
          << "command_timeout = " << ms(l.command_timeout) << "\n"
          << "data_timeout = " << ms(l.data_timeout) << "\n"
          << "bare_line_endings = " << quoted(to_string(l.bare_line_endings)) << "\n"
          << "nul_bytes = " << quoted(to_string(l.nul_bytes)) << "\n"
          << "smtputf8 = " << (l.smtputf8 ? "true" : "false") << "\n"
          << "dsn = " << (l.dsn ? "true" : "false") << "\n"
          << "chunking = " << (l.chunking ? "true" : "false") << "\n"
          << "resolve_client_names = " << (l.resolve_client_names ? "true" : "false") << "\n"
          << "recipients_file = " << quoted(l.recipients_file) << "  # "
          << l.known_recipients.size() << " entries\n"
          << "tls = { mode = " << quoted(to_string(l.tls.mode)) << ", cert = " << quoted(l.tls.cert)
          << ", key = " << quoted(l.tls.key)
          << ", min_version = " << quoted(to_string(l.tls.min_version))
          << ", ciphers = " << quoted(l.tls.ciphers)
          << ", ask_client_cert = " << (l.tls.ask_client_cert ? "true" : "false") << " }\n"
          << "auth = { verifier = " << quoted(to_string(l.auth.verifier))
          << ", dovecot_socket = " << quoted(l.auth.dovecot_socket)
          << ", max_failures = " << l.auth.max_failures
          << ", failure_window = " << ms(l.auth.failure_window)
          << ", timeout = " << ms(l.auth.timeout) << " }\n"
          << "proxy_protocol = " << quoted(to_string(l.proxy_protocol)) << "\n"
          << "proxy_trusted_networks = " << list(l.proxy_trusted_networks_text) << "\n"
          << "proxy_timeout = " << ms(l.proxy_timeout) << "\n";
    }
    for (const auto& p : c.pools) {
        o << "\n[[pool]]\n"
          << "name = " << quoted(p.name) << "\n"
          << "algorithm = " << quoted(to_string(p.algorithm)) << "\n"
          << "persistence = " << quoted(to_string(p.persistence)) << "\n"
          << "persistence_ttl = " << ms(p.persistence_ttl) << "\n"
          << "on_unavailable = " << quoted(to_string(p.on_unavailable)) << "\n"
          << "max_attempts = " << p.max_attempts << "\n"
          << "convert_8bit = " << (p.convert_8bit ? "true" : "false") << "\n"
          << "connect_timeout = " << ms(p.connect_timeout) << "\n"
          << "reply_timeout = " << ms(p.reply_timeout) << "\n"
          << "final_reply_timeout = " << ms(p.final_reply_timeout) << "\n"
          << "backend_hold_time = " << ms(p.backend_hold_time) << "\n"
          << "data_timeout = " << ms(p.data_timeout) << "\n"
          << "data_min_rate = " << bytes(p.data_min_rate) << "\n"
          << "greeting_timeout = " << ms(p.greeting_timeout) << "\n"
          << "down_retry = " << ms(p.down_retry) << "\n"
          << "passive_fall = " << p.passive_fall << "\n"
          << "slow_start = " << ms(p.slow_start) << "\n"
          << "retry_time = " << ms(p.retry_time) << "\n"
          << "connection_wait = " << ms(p.connection_wait) << "\n"
          << "max_idle_connections = " << p.max_idle_connections << "\n"
          << "idle_timeout = " << ms(p.idle_timeout) << "\n"
          << "max_connection_age = " << ms(p.max_connection_age) << "\n"
          << "max_messages_per_connection = " << p.max_messages_per_connection << "\n"
          << "xclient_line_limit = " << p.xclient_line_limit << "\n"
          << "helo_to_backend = " << quoted(to_string(p.helo_to_backend)) << "\n"
          << "health = { enabled = " << (p.health.enabled ? "true" : "false")
          << ", depth = " << quoted(to_string(p.health.depth))
          << ", interval = " << ms(p.health.interval)
          << ", down_interval = " << ms(p.health.down_interval)
          << ", timeout = " << ms(p.health.timeout) << ", rise = " << p.health.rise
          << ", fall = " << p.health.fall << ", mail_from = " << quoted(p.health.mail_from)
          << ", rcpt_to = " << quoted(p.health.rcpt_to) << " }\n"
          << "tls = { mode = " << quoted(to_string(p.tls.mode))
          << ", ca_file = " << quoted(p.tls.ca_file)
          << ", verify_name = " << quoted(p.tls.verify_name)
          << ", min_version = " << quoted(to_string(p.tls.min_version))
          << ", cert = " << quoted(p.tls.cert) << ", key = " << quoted(p.tls.key) << " }\n";
        if (const auto& dis = p.discover) {
            o << "discover = { " << to_string(dis->kind) << " = " << quoted(dis->name);
            if (dis->kind == DiscoverKind::A) o << ", port = " << dis->port;
            o << ", min_refresh = " << ms(dis->min_refresh)
              << ", max_refresh = " << ms(dis->max_refresh) << " }\n";
        }
        for (const auto& b : p.backends) {
            // The file's configuration: what DNS found is in `smtplb status`.
            if (!b.discovered_from.empty()) continue;
            o << "\n[[pool.backend]]\n"
              << "name = " << quoted(b.name) << "\n"
              << "address = " << quoted(b.address.to_string()) << "\n"
              << "weight = " << b.weight << "\n"
              << "priority = " << b.priority << "\n"
              << "max_connections = " << b.max_connections << "\n";
            if (!b.tls_name.empty()) o << "tls_name = " << quoted(b.tls_name) << "\n";
            if (b.auth)  // the password never: only the file it is read from
                o << "auth = { username = " << quoted(b.auth->credentials.username)
                  << ", password_file = " << quoted(b.auth->password_file)
                  << ", mechanism = " << quoted(proto::to_string(b.auth->credentials.mechanism))
                  << ", allow_plaintext = " << (b.auth->allow_plaintext ? "true" : "false")
                  << " }\n";
        }
        o << describe_destination_limits(p.destination_limits);
    }
    for (const auto& r : c.routes) {
        o << "\n[[route]]\n";
        if (!r.recipient_domain.empty())
            o << "recipient_domain = " << quoted(r.recipient_domain) << "\n";
        if (!r.recipient.empty()) o << "recipient = " << quoted(r.recipient) << "\n";
        if (!r.auth_users.empty()) o << "auth_user = " << list(r.auth_users) << "\n";
        if (!r.client_networks_text.empty())
            o << "client_network = " << list(r.client_networks_text) << "\n";
        if (!r.listeners.empty()) o << "listener = " << list(r.listeners) << "\n";
        o << "pool = " << quoted(r.pool) << "\n";
    }
    o << describe_limits(c.limits);
    return o.str();
}

}  // namespace smtplb::config
