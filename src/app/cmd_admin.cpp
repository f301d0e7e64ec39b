#include <signal.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "admin/client.hpp"
#include "admin/limits_text.hpp"
#include "admin_call.hpp"
#include "commands.hpp"
#include "config/loader.hpp"

namespace smtplb::app {
namespace json = boost::json;

namespace {

struct AdminTarget {
    base::HostPort address;
    std::string token;
    admin::ClientTls tls;
};

// --admin wins; else the configuration's server.admin; else the default.
// The bearer token from --token-file, else the configuration's.
std::optional<AdminTarget> admin_target(const AdminOptions& o) {
    AdminTarget target;
    if (!o.token_file.empty()) {
        std::ifstream in(o.token_file);
        std::getline(in, target.token);
        while (!target.token.empty() &&
               std::isspace(static_cast<unsigned char>(target.token.back())))
            target.token.pop_back();
        if (target.token.empty()) {
            std::cerr << "smtplb: cannot read a token from " << o.token_file << "\n";
            return std::nullopt;
        }
    }
    if (!o.tls_ca.empty()) target.tls = {true, o.tls_ca, false};
    std::string text = o.admin;
    if (text.empty() && !o.config_path.empty()) {
        auto loaded = config::load_file(o.config_path);
        if (!loaded.config) {
            std::cerr << loaded.diagnostics.format(o.config_path);
            return std::nullopt;
        }
        if (!loaded.config->server.admin_bind) {
            std::cerr << o.config_path << ": server.admin is empty: the daemon has no admin API\n";
            return std::nullopt;
        }
        target.address = *loaded.config->server.admin_bind;
        if (target.token.empty()) target.token = loaded.config->server.admin_token;
        if (const auto& tls = loaded.config->server.admin_tls; tls.enabled() && !target.tls.enabled)
            target.tls = {true, tls.cert, true};
        return target;
    }
    if (text.empty()) text = config::Server{}.admin;
    auto hp = base::HostPort::parse(text);
    if (!hp) {
        std::cerr << "smtplb: --admin must be ADDRESS:PORT\n";
        return std::nullopt;
    }
    target.address = *hp;
    return target;
}

// "SIZE 10240000 SMTPUTF8 8BITMIME": a backend's last known EHLO, or for a
// pool how many of its backends have each ("SMTPUTF8 1/2").
std::string capability_words(const json::object& caps, const char* of) {
    std::string out = "SIZE " + text_of(caps.if_contains("size"));
    for (const char* key : {"smtputf8", "8bitmime", "dsn", "chunking", "requiretls"}) {
        const auto* v = caps.if_contains(key);
        if (!v) continue;
        std::string name = key;
        for (char& c : name)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (v->is_bool()) {
            if (v->as_bool()) out += " " + name;
        } else {
            out += " " + name + " " + text_of(v) + "/" + of;
        }
    }
    return out;
}

void print_capabilities(const json::object& root) {
    std::printf("\n%-12s %-12s %s\n", "POOL", "BACKEND", "CAPABILITIES (last known EHLO)");
    for (const auto& pv : root.at("pools").as_array()) {
        const auto& pool = pv.as_object();
        std::string name = text_of(pool.if_contains("name"));
        if (const auto* c = pool.if_contains("capabilities"); c && c->is_object()) {
            const auto& caps = c->as_object();
            std::string known = text_of(caps.if_contains("known"));
            std::printf("%-12s %-12s %s (%s of %s backends known)\n", name.c_str(), "*",
                        capability_words(caps, known.c_str()).c_str(), known.c_str(),
                        text_of(caps.if_contains("backends")).c_str());
        }
        for (const auto& bv : pool.at("backends").as_array()) {
            const auto& b = bv.as_object();
            const auto* c = b.if_contains("capabilities");
            std::printf("%-12s %-12s %s\n", name.c_str(), text_of(b.if_contains("name")).c_str(),
                        c && c->is_object() ? capability_words(c->as_object(), "").c_str()
                                            : "unknown (no EHLO seen yet)");
        }
    }
}

void print_status(const json::value& doc) {
    const auto& root = doc.as_object();
    std::printf("%-12s %-12s %-22s %4s %7s %-13s %-12s %6s %10s  %s\n", "POOL", "BACKEND",
                "ADDRESS", "PRI", "WEIGHT", "STATE", "ADMIN", "FLIGHT", "DELIVERED", "LAST PROBE");
    for (const auto& pv : root.at("pools").as_array()) {
        const auto& pool = pv.as_object();
        for (const auto& bv : pool.at("backends").as_array()) {
            const auto& b = bv.as_object();
            std::string probe = "-";
            if (const auto* lp = b.if_contains("last_probe")) {
                const auto& p = lp->as_object();
                probe = text_of(p.if_contains("verdict")) + " at " + text_of(p.if_contains("step"));
                // Why, as the JSON says it ("connection failed: Connection refused"), then
                // the deciding reply; "ok" says nothing the verdict does not.
                const auto* reason = p.if_contains("reason");
                if (reason && text_of(reason) != "ok") probe += ": " + text_of(reason);
                // A reason that quotes the reply (AUTH refused: 535 ...) says it once.
                if (const auto* reply = p.if_contains("reply");
                    reply && probe.find(text_of(reply)) == std::string::npos)
                    probe += ": " + text_of(reply);
            }
            std::printf(
                "%-12s %-12s %-22s %4s %7.2f %-13s %-12s %6s %10s  %s\n",
                text_of(pool.if_contains("name")).c_str(), text_of(b.if_contains("name")).c_str(),
                text_of(b.if_contains("address")).c_str(),
                text_of(b.if_contains("priority")).c_str(),
                b.at("effective_weight").to_number<double>(),
                text_of(b.if_contains("health")).c_str(), text_of(b.if_contains("admin")).c_str(),
                text_of(b.if_contains("in_flight")).c_str(),
                text_of(&b.at("counters").as_object().at("delivered")).c_str(), probe.c_str());
        }
    }
    // Pools from DNS: what each asks, how many backends it found, when next.
    for (const auto& pv : root.at("pools").as_array()) {
        const auto& pool = pv.as_object();
        const auto* dv = pool.if_contains("discover");
        if (!dv || !dv->is_object()) continue;
        const auto& d = dv->as_object();
        std::string line =
            text_of(pool.if_contains("name")) + ": from DNS, " + text_of(d.if_contains("kind")) +
            " " + text_of(d.if_contains("name")) + ", " + text_of(d.if_contains("backends")) +
            " backends, next refresh in " +
            std::to_string(d.at("next_refresh_ms").to_number<std::int64_t>() / 1000) + " s";
        if (const auto* e = d.if_contains("last_error"))
            line += "; failing (" + text_of(d.if_contains("failing")) + " times): " + text_of(e) +
                    "; keeping the last answer";
        std::printf("\n%s\n", line.c_str());
    }
    print_capabilities(root);
    // The [[limit]]s, each with the keys nearest it (smtplb limits: more).
    if (const auto* limits = root.if_contains("limits");
        limits && limits->is_array() && !limits->as_array().empty())
        std::printf("\n%s", admin::format_limits(limits->as_array()).c_str());
}

}  // namespace

std::string text_of(const json::value* v) {
    if (!v) return "-";
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

// A string field of a JSON answer, or the whole body when it has none.
std::string field_or_body(const std::string& body, const char* key) {
    try {
        auto doc = json::parse(body);
        if (const auto* v = doc.as_object().if_contains(key); v && v->is_string())
            return std::string(v->as_string());
    } catch (const std::exception&) {
    }
    return body;
}

// One request to the daemon; when there is no answer, says why (as
// `command`) and sets the exit status.
std::optional<admin::HttpResult> call(const AdminOptions& options, const char* command,
                                      const char* method, const std::string& path, int& status) {
    auto target = admin_target(options);
    if (!target) {
        status = 64;
        return std::nullopt;
    }
    auto result = admin::http_request(target->address, method, path, options.timeout, target->token,
                                      target->tls);
    if (result.status == 0) {
        std::cerr << "smtplb " << command << ": " << result.error << "\n";
        status = 1;
        return std::nullopt;
    }
    return result;
}

int show_answer(const admin::HttpResult& result, const AdminOptions& options, const char* command,
                const std::function<void(const json::value&)>& print) {
    if (result.status != 200) {
        std::cerr << "smtplb " << command << ": HTTP " << result.status << ": "
                  << field_or_body(result.body, "error") << "\n";
        return 1;
    }
    if (options.json) {
        std::cout << result.body;
        return 0;
    }
    try {
        print(json::parse(result.body));
    } catch (const std::exception& e) {
        std::cerr << "smtplb " << command << ": unexpected answer: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

int run_status(const AdminOptions& options) {
    int status = 0;
    auto result = call(options, "status", "GET", "/api/v1/status", status);
    if (!result) return status;
    return show_answer(*result, options, "status", print_status);
}

int run_backend_command(const AdminOptions& options, const std::string& pool,
                        const std::string& backend, const std::string& action) {
    if (action != "drain" && action != "maintenance" && action != "enable") {
        std::cerr << "smtplb backend: the action must be drain, maintenance or enable\n";
        return 64;
    }
    int status = 0;
    auto result = call(options, "backend", "POST",
                       "/api/v1/backends/" + pool + "/" + backend + "/" + action, status);
    if (!result) return status;
    if (result->status != 200) {
        std::cerr << "smtplb backend: " << field_or_body(result->body, "error") << "\n";
        return 1;
    }
    try {
        auto doc = json::parse(result->body);
        const auto& b = doc.as_object();
        std::printf("%s/%s: admin %s, health %s, %s in flight\n", pool.c_str(), backend.c_str(),
                    text_of(b.if_contains("admin")).c_str(),
                    text_of(b.if_contains("health")).c_str(),
                    text_of(b.if_contains("in_flight")).c_str());
    } catch (const std::exception&) {
        std::cout << result->body;
    }
    return 0;
}

// Exit status 1 whenever the configuration is refused (by the file's own
// validation here, or by the daemon), with every reason on stderr, so that
// `systemctl reload` fails visibly; 64 for a usage error.
int run_reload_command(const AdminOptions& options) {
    if (options.admin.empty() && !options.config_path.empty()) {
        auto loaded = config::load_file(options.config_path);
        if (!loaded.config) {
            std::cerr << loaded.diagnostics.format(options.config_path)
                      << "smtplb reload: refused: " << options.config_path
                      << " is not valid; the daemon runs as before\n";
            return 1;
        }
        // Without an admin API: the file is valid, the daemon is signalled
        // (what it then refuses, a port it cannot bind, only its log says).
        if (!loaded.config->server.admin_bind && options.pid > 0) {
            if (::kill(options.pid, SIGHUP) != 0) {
                std::cerr << "smtplb reload: cannot signal process " << options.pid << ": "
                          << std::strerror(errno) << "\n";
                return 1;
            }
            std::cout << "sent SIGHUP to process " << options.pid
                      << " (no admin API: its log says what changed)\n";
            return 0;
        }
    }
    // A reload builds TLS contexts and binds listeners before it answers.
    auto patient = options;
    patient.timeout = std::max(options.timeout, std::chrono::milliseconds(60000));
    int status = 0;
    auto result = call(patient, "reload", "POST", "/api/v1/reload", status);
    if (!result) return status;
    auto message = field_or_body(result->body, "message");
    if (result->status != 200 && message == result->body)
        message = field_or_body(result->body, "error");
    if (result->status != 200) {
        std::cerr << message << (message.ends_with('\n') ? "" : "\n")
                  << "smtplb reload: refused; the daemon runs as before\n";
        return 1;
    }
    std::cout << message << (message.ends_with('\n') ? "" : "\n");
    return 0;
}

}  // namespace smtplb::app
