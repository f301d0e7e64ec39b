#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "core/report.hpp"
#include "proto/probe.hpp"
#include "tools/sink.hpp"

namespace smtplb::app {

int run_daemon(const std::string& config_path);
struct CheckOptions {
    bool quiet = false;  // findings only, no effective configuration
    std::string user;    // check directories as this user, else as the caller
};
int check_config(const std::string& config_path, const CheckOptions& options);
int run_sink(const tools::SinkOptions& options);
int run_demo(int messages);

struct ProbeOptions {
    std::string target;  // ADDRESS:PORT
    proto::ProbeDepth depth = proto::ProbeDepth::Mail;
    std::string helo = "localhost";
    std::string mail_from = "probe@external.invalid";
    std::string rcpt_to;
    std::chrono::milliseconds timeout{10000};
};
// How to reach a running daemon's admin API.
struct AdminOptions {
    std::string admin;  // ADDRESS:PORT, else from config_path, else the default
    std::string config_path;
    std::string token_file;  // bearer token, else the configuration's
    // TLS to the admin listener, verified with this PEM file; else TLS when
    // the configuration has admin_tls (trusting its certificate).
    std::string tls_ca;
    bool json = false;
    bool cluster = false;  // status --cluster: the node registry
    std::chrono::milliseconds timeout{5000};
    // reload: the daemon's process, sent SIGHUP when its configuration has
    // no admin API (systemd's $MAINPID).
    int pid = 0;
};
int run_status(const AdminOptions& options);
// status --cluster: the nodes of the daemon's [cluster] and each one's view
// of the backends (admin API: GET /api/v1/cluster).
int run_cluster_status(const AdminOptions& options);
// The [[limit]]s of a running daemon and the keys nearest them, or one
// key's state (admin API: GET /api/v1/limits).
struct LimitsOptions {
    std::string key;    // "part=value|part=value", as the tracking log writes it
    std::string limit;  // one limit by name
    int top = 10;       // keys listed per limit
    bool top_given = false;
};
int run_limits_command(const AdminOptions& options, const LimitsOptions& limits);
int run_reload_command(const AdminOptions& options);
// The daemon reopens its tracking log: through the admin API, or, with a
// process id (not 0), by SIGUSR1.
int run_reopen_logs_command(const AdminOptions& options, long pid);
// list | show ID | flush | hold ID | release ID | delete ID, on a running
// daemon (admin API) or on the spool of a stopped one.
int run_queue_command(const AdminOptions& options, const std::string& action,
                      const std::string& id);
int run_backend_command(const AdminOptions& options, const std::string& pool,
                        const std::string& backend, const std::string& action);

struct ReportOptions {
    std::string log;  // "-" = stdin
    core::ReportBy by = core::ReportBy::Backend;
    std::chrono::milliseconds interval{3600000};
    std::string svg;  // write a chart here too
};
int run_report(const ReportOptions& options);
// Exit status 1 when a problem was found.
int run_audit(const std::string& config_path, bool offline, const std::vector<std::string>& domains,
              const std::string& dns_server);

// Exit status: 0 healthy, 1 busy (4xx), 2 down, 64 usage error.
int run_probe_command(const ProbeOptions& options);

}  // namespace smtplb::app
