#include <CLI/CLI.hpp>
#include <iostream>

#include "base/log_line.hpp"
#include "base/network.hpp"
#include "base/text.hpp"
#include "base/units.hpp"
#include "commands.hpp"

namespace {

int run_command_line(int argc, char** argv) {
    CLI::App app{"smtplb - an SMTP-aware load balancer that balances every message"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "smtplb 0.1.0");

    std::string config_path;
    auto* run = app.add_subcommand("run", "Run the balancer daemon");
    run->add_option("--config,-c", config_path, "Configuration file (TOML)")->required();

    auto* check =
        app.add_subcommand("check",
                           "Validate a configuration and what running it needs (directories, "
                           "ports, certificates); print it with defaults. Exit status 1 on errors");
    check->add_option("--config,-c", config_path, "Configuration file (TOML)")->required();
    smtplb::app::CheckOptions check_options;
    check->add_flag("--quiet,-q", check_options.quiet, "Print the findings only");
    check->add_option("--user,-u", check_options.user,
                      "Check the directories as this user (the service's: smtplb)");

    smtplb::tools::SinkOptions sink_options;
    std::string listen;
    std::vector<std::string> faults;
    auto* sink =
        app.add_subcommand("sink", "A fast SMTP receiver for tests, with injectable faults");
    sink->add_option("--listen,-l", listen, "ADDRESS:PORT to listen on")->required();
    sink->add_option("--fault", faults,
                     "STAGE=ACTION; STAGE greeting|mail|rcpt|data|message, ACTION a 4xx/5xx code "
                     "(optionally :x.y.z), drop, or delay:DURATION");
    sink->add_option("--fault-rate", sink_options.fault_rate, "Probability a fault applies (0-1)")
        ->check(CLI::Range(0.0, 1.0));
    sink->add_option("--fault-unless-sender-domain", sink_options.faults_unless_sender_domain,
                     "Spare senders of this domain from faults");
    sink->add_option("--record", sink_options.record_path,
                     "Append one JSON line per message to FILE");
    sink->add_option("--hostname", sink_options.hostname, "Name in the greeting");
    bool no_xclient = false;
    sink->add_flag("--no-xclient", no_xclient, "Do not announce XCLIENT");
    bool no_esmtp = false;
    sink->add_flag("--no-esmtp", no_esmtp, "Refuse EHLO, like an SMTP-only server");
    sink->add_flag("--xclient-strict", sink_options.xclient_strict,
                   "XCLIENT as Postfix 3.7's smtpd allows it: only while the current client "
                   "(after XCLIENT ADDR, the new one) is authorised; Postfix's replies, "
                   "2048-byte lines, HELO before MAIL");
    std::vector<std::string> xclient_authorized;
    sink->add_option("--xclient-authorized", xclient_authorized,
                     "With --xclient-strict: CIDR[,CIDR...] allowed to use XCLIENT, like "
                     "smtpd_authorized_xclient_hosts (default 127.0.0.1/32)")
        ->delimiter(',');

    int demo_messages = 300;
    auto* demo =
        app.add_subcommand("demo", "smtplb in front of three built-in sinks, with sample traffic");
    demo->add_option("--messages,-n", demo_messages, "Messages to send over one connection")
        ->check(CLI::Range(1, 1000000));

    smtplb::app::ProbeOptions probe_options;
    std::string probe_depth, probe_timeout = "10s";
    auto* probe = app.add_subcommand(
        "probe",
        "Run one health probe and print the conversation with timings; exit status 0 "
        "healthy, 1 busy (4xx), 2 down");
    probe->add_option("target", probe_options.target, "Backend ADDRESS:PORT")->required();
    probe->add_option(
        "--depth", probe_depth,
        "connect | banner | ehlo | starttls | mail | rcpt (default: rcpt with --rcpt-to, "
        "else mail)");
    probe->add_option("--mail-from", probe_options.mail_from,
                      "Probe sender (default probe@external.invalid; \"\" for <>)");
    probe->add_option("--rcpt-to", probe_options.rcpt_to, "Probe recipient");
    probe->add_option("--helo", probe_options.helo, "Name to send with EHLO");
    probe->add_option("--timeout", probe_timeout, "Whole probe, e.g. 10s");

    smtplb::app::AdminOptions admin_options;
    auto* status = app.add_subcommand(
        "status", "Show a running daemon's pools and backends (from its admin API)");
    status->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    status->add_option("--token-file", admin_options.token_file,
                       "Bearer token for the admin API (else the configuration's)");
    status->add_option("--tls-ca", admin_options.tls_ca,
                       "Talk TLS to the admin listener, trusting this PEM file");
    status->add_option("--config,-c", admin_options.config_path,
                       "Take the admin address from this configuration");
    status->add_flag("--json", admin_options.json, "Print the API's JSON document");
    status->add_flag("--cluster", admin_options.cluster,
                     "Show the cluster's nodes and each one's view of the backends ([cluster])");
    smtplb::app::LimitsOptions limits_options;
    auto* limits = app.add_subcommand(
        "limits",
        "Show a running daemon's [[limit]]s with their hits and the keys nearest them, or one "
        "key's state (--key)");
    limits->add_option("--key", limits_options.key,
                       "A key as the tracking log writes it, e.g. sender=a@example.net");
    limits->add_option("--limit", limits_options.limit, "Only this limit (by name)");
    auto* limits_top = limits->add_option("--top", limits_options.top,
                                          "Keys listed per limit, 1 to 100 (default 10)");
    limits->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    limits->add_option("--token-file", admin_options.token_file,
                       "Bearer token for the admin API (else the configuration's)");
    limits->add_option("--tls-ca", admin_options.tls_ca,
                       "Talk TLS to the admin listener, trusting this PEM file");
    limits->add_option("--config,-c", admin_options.config_path,
                       "Take the admin address from this configuration");
    limits->add_flag("--json", admin_options.json, "Print the API's JSON document");
    auto* reload = app.add_subcommand(
        "reload",
        "Make a running daemon re-read its configuration (same as SIGHUP); prints "
        "what changed, or every reason the file was refused (exit status 1)");
    reload->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    reload->add_option("--token-file", admin_options.token_file,
                       "Bearer token for the admin API (else the configuration's)");
    reload->add_option("--tls-ca", admin_options.tls_ca,
                       "Talk TLS to the admin listener, trusting this PEM file");
    reload->add_option("--config,-c", admin_options.config_path,
                       "Take the admin address from this configuration (validated first: "
                       "exit status 1 when it is not valid)");
    reload->add_option("--pid", admin_options.pid,
                       "When the configuration has no admin API: send SIGHUP to this process "
                       "(systemd's $MAINPID) after validating the file");
    long reopen_pid = 0;
    auto* reopen_logs = app.add_subcommand(
        "reopen-logs",
        "Make a running daemon open its tracking log again after a rotation (same as SIGUSR1)");
    reopen_logs->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    reopen_logs->add_option("--token-file", admin_options.token_file,
                            "Bearer token for the admin API (else the configuration's)");
    reopen_logs->add_option("--tls-ca", admin_options.tls_ca,
                            "Talk TLS to the admin listener, trusting this PEM file");
    reopen_logs->add_option("--config,-c", admin_options.config_path,
                            "Take the admin address from this configuration");
    reopen_logs->add_option("--pid", reopen_pid,
                            "Send SIGUSR1 to this process instead of using the admin API");
    std::string backend_pool, backend_name, backend_action;
    auto* backend = app.add_subcommand(
        "backend", "Drain a backend, put it in maintenance, or enable it, on a running daemon");
    backend->add_option("pool", backend_pool, "Pool name")->required();
    backend->add_option("backend", backend_name, "Backend name")->required();
    backend->add_option("action", backend_action, "drain | maintenance | enable")->required();
    backend->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    backend->add_option("--token-file", admin_options.token_file,
                        "Bearer token for the admin API (else the configuration's)");
    backend->add_option("--tls-ca", admin_options.tls_ca,
                        "Talk TLS to the admin listener, trusting this PEM file");
    backend->add_option("--config,-c", admin_options.config_path,
                        "Take the admin address from this configuration");

    std::string queue_action, queue_id;
    auto* queue = app.add_subcommand(
        "queue",
        "The spool: list | show ID | flush | hold ID | release ID | delete ID. Works on a "
        "running daemon (through its admin API) and on the spool of a stopped one");
    queue->add_option("action", queue_action, "list | show | flush | hold | release | delete")
        ->required();
    queue->add_option("id", queue_id, "Queue ID (from `smtplb queue list` or the tracking log)");
    queue->add_option("--config,-c", admin_options.config_path,
                      "The daemon's configuration (state_dir, admin address)");
    queue->add_option("--admin", admin_options.admin, "The daemon's admin ADDRESS:PORT");
    queue->add_option("--token-file", admin_options.token_file,
                      "Bearer token for the admin API (else the configuration's)");
    queue->add_option("--tls-ca", admin_options.tls_ca,
                      "Talk TLS to the admin listener, trusting this PEM file");
    queue->add_flag("--json", admin_options.json, "Print the API's JSON document");

    smtplb::app::ReportOptions report_options;
    std::string report_by = "backend", report_interval = "1h";
    auto* report = app.add_subcommand(
        "report",
        "Relayed messages per backend (or listener, client, domain) per interval, "
        "from a tracking log, with each one's share and the skew");
    report->add_option("--log", report_options.log, "Tracking log (JSON Lines); - for stdin")
        ->required();
    report->add_option("--by", report_by, "backend | listener | client | domain");
    report->add_option("--interval", report_interval, "Row width, e.g. 1h, 15m, 1d");
    report->add_option("--svg", report_options.svg, "Also write a chart to this SVG file");

    bool audit_offline = false;
    auto* audit = app.add_subcommand(
        "audit",
        "Check a deployment for the mistakes that bite: backends that relay for the "
        "balancer's address, identity not passed on, shallow probes, skewing settings");
    audit->add_option("--config,-c", config_path, "Configuration file (TOML)")->required();
    audit->add_flag("--offline", audit_offline,
                    "Check the configuration only; contact no backend and no DNS server");
    std::string audit_dns;
    std::vector<std::string> audit_domains;
    audit->add_option("--domain", audit_domains,
                      "Check this domain's MX records against the balancer (repeatable)");
    audit->add_option("--dns", audit_dns,
                      "DNS server ADDRESS:PORT for the MX checks (default: the system's)");

    CLI11_PARSE(app, argc, argv);

    if (*audit) return smtplb::app::run_audit(config_path, audit_offline, audit_domains, audit_dns);

    if (*report) {
        using smtplb::core::ReportBy;
        const std::pair<const char*, ReportBy> kinds[] = {{"backend", ReportBy::Backend},
                                                          {"listener", ReportBy::Listener},
                                                          {"client", ReportBy::Client},
                                                          {"domain", ReportBy::Domain}};
        bool known = false;
        for (auto [name, kind] : kinds)
            if (report_by == name) {
                report_options.by = kind;
                known = true;
            }
        auto interval = smtplb::base::parse_duration(report_interval);
        if (!known || !interval || *interval < std::chrono::minutes(1) ||
            *interval > std::chrono::hours(24 * 31)) {
            std::cerr << "smtplb report: --by must be backend | listener | client | domain, and "
                         "--interval a duration from 1m to 31d\n";
            return 64;
        }
        report_options.interval = *interval;
        return smtplb::app::run_report(report_options);
    }

    if (*status)
        return admin_options.cluster ? smtplb::app::run_cluster_status(admin_options)
                                     : smtplb::app::run_status(admin_options);
    if (*limits) {
        limits_options.top_given = limits_top->count() > 0;
        return smtplb::app::run_limits_command(admin_options, limits_options);
    }
    if (*reload) return smtplb::app::run_reload_command(admin_options);
    if (*reopen_logs) return smtplb::app::run_reopen_logs_command(admin_options, reopen_pid);
    if (*queue) return smtplb::app::run_queue_command(admin_options, queue_action, queue_id);
    if (*backend)
        return smtplb::app::run_backend_command(admin_options, backend_pool, backend_name,
                                                backend_action);

    if (*probe) {
        using smtplb::proto::ProbeDepth;
        probe_options.depth = probe_options.rcpt_to.empty() ? ProbeDepth::Mail : ProbeDepth::Rcpt;
        if (!probe_depth.empty()) {
            bool known = false;
            for (auto d : {ProbeDepth::Connect, ProbeDepth::Banner, ProbeDepth::Ehlo,
                           ProbeDepth::Starttls, ProbeDepth::Mail, ProbeDepth::Rcpt})
                if (probe_depth == smtplb::proto::to_string(d)) {
                    probe_options.depth = d;
                    known = true;
                }
            if (!known) {
                std::cerr << "smtplb probe: --depth must be connect | banner | ehlo | starttls | "
                             "mail | rcpt\n";
                return 64;
            }
        }
        auto timeout = smtplb::base::parse_duration(probe_timeout);
        if (!timeout || timeout->count() < 1 || *timeout > std::chrono::minutes(10)) {
            std::cerr << "smtplb probe: --timeout must be a duration up to 10m, e.g. 10s\n";
            return 64;
        }
        probe_options.timeout = *timeout;
        return smtplb::app::run_probe_command(probe_options);
    }

    if (*run) return smtplb::app::run_daemon(config_path);
    if (*check) return smtplb::app::check_config(config_path, check_options);
    if (*sink) {
        auto hp = smtplb::base::HostPort::parse(listen);
        if (!hp) {
            std::cerr << "smtplb sink: --listen must be ADDRESS:PORT\n";
            return 2;
        }
        sink_options.listen = *hp;
        sink_options.xclient = !no_xclient;
        sink_options.esmtp = !no_esmtp;
        for (const auto& text : xclient_authorized) {
            auto cidr = smtplb::base::Cidr::parse(text);
            if (!cidr) {
                std::cerr << "smtplb sink: --xclient-authorized: not an address or CIDR: " << text
                          << "\n";
                return 2;
            }
            sink_options.xclient_authorized.push_back(*cidr);
        }
        if (no_xclient && sink_options.xclient_strict) {
            std::cerr << "smtplb sink: --no-xclient and --xclient-strict exclude each other\n";
            return 2;
        }
        if (!xclient_authorized.empty() && !sink_options.xclient_strict) {
            std::cerr << "smtplb sink: --xclient-authorized needs --xclient-strict\n";
            return 2;
        }
        for (const auto& text : faults) {
            std::string error;
            auto f = smtplb::tools::SinkFault::parse(text, error);
            if (!f) {
                std::cerr << "smtplb sink: " << error << "\n";
                return 2;
            }
            sink_options.faults.push_back(*f);
        }
        return smtplb::app::run_sink(sink_options);
    }
    if (*demo) return smtplb::app::run_demo(demo_messages);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run_command_line(argc, argv);
    } catch (const std::exception& e) {
        // Nothing expected escapes; if something does, say what, not abort().
        smtplb::base::log_line("event=internal_error reason=" +
                               smtplb::base::logfmt_value(e.what()));
        return 70;  // EX_SOFTWARE
    }
}
