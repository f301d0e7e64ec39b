// `smtplb queue`: the spool of a running daemon through its admin API, or of
// a stopped one directly on disk (the same code answers both ways).
#include <sys/stat.h>

#include <boost/json.hpp>
#include <cstdio>
#include <iostream>

#include "admin/queue.hpp"
#include "admin_call.hpp"
#include "commands.hpp"
#include "config/loader.hpp"
#include "io/spool/spool.hpp"
#include "io/tracking_log.hpp"

namespace smtplb::app {
namespace json = boost::json;

namespace {

struct Request {
    const char* method;
    std::vector<std::string> parts;  // after /api/v1/queue
};

std::optional<Request> request_for(const std::string& action, const std::string& id) {
    if (action == "list") return Request{"GET", {}};
    if (action == "flush") return Request{"POST", {"flush"}};
    if (id.empty()) return std::nullopt;
    if (action == "show") return Request{"GET", {id}};
    if (action == "hold" || action == "release" || action == "delete")
        return Request{"POST", {id, action}};
    return std::nullopt;
}

void print_list(const json::object& doc) {
    std::printf("%zu messages (%s held), %s bytes",
                static_cast<std::size_t>(doc.at("messages").to_number<double>()),
                text_of(doc.if_contains("held")).c_str(),
                text_of(doc.if_contains("bytes")).c_str());
    if (const auto* oldest = doc.if_contains("oldest_age_s"))
        std::printf(", oldest %s s", text_of(oldest).c_str());
    std::printf("\n");
    const auto& queue = doc.at("queue").as_array();
    if (queue.empty()) return;
    std::printf("%-16s %-10s %8s %10s %8s %-10s %s\n", "ID", "STATE", "AGE_S", "SIZE", "ATTEMPTS",
                "POOL", "LAST ERROR");
    for (const auto& v : queue) {
        const auto& e = v.as_object();
        std::printf("%-16s %-10s %8s %10s %8s %-10s %s\n", text_of(e.if_contains("id")).c_str(),
                    text_of(e.if_contains("state")).c_str(),
                    text_of(e.if_contains("age_s")).c_str(), text_of(e.if_contains("size")).c_str(),
                    text_of(e.if_contains("attempts")).c_str(),
                    text_of(e.if_contains("pool")).c_str(),
                    e.contains("last_error") ? text_of(e.if_contains("last_error")).c_str() : "");
    }
}

void print_show(const json::object& e) {
    for (const char* key :
         {"id", "state", "pool", "listener", "sender", "client", "helo", "body_size", "age_s",
          "attempts", "last_error", "next_attempt_in_s", "ret", "envid"})
        if (const auto* v = e.if_contains(key)) std::printf("%-18s %s\n", key, text_of(v).c_str());
    for (const auto& r : e.at("recipients").as_array()) {
        const auto& ro = r.as_object();
        std::string dsn;  // what the sender asked to be told (RFC 3461)
        for (const char* key : {"notify", "orcpt"})
            if (const auto* v = ro.if_contains(key))
                dsn += std::string(" ") + key + "=" + text_of(v);
        std::printf("%-18s %s (%s)%s\n", "recipient", text_of(ro.if_contains("address")).c_str(),
                    text_of(ro.if_contains("state")).c_str(), dsn.c_str());
    }
}

int print_answer(const std::string& action, int http_status, const std::string& body,
                 bool as_json) {
    if (http_status != 200) {
        std::cerr << "smtplb queue " << action << ": " << field_or_body(body, "error") << "\n";
        return 1;
    }
    if (as_json) {
        std::cout << body;
        return 0;
    }
    try {
        auto doc = json::parse(body).as_object();
        if (action == "list")
            print_list(doc);
        else if (action == "show")
            print_show(doc);
        else if (action == "flush")
            std::printf("%s messages due now\n", text_of(doc.if_contains("flushed")).c_str());
        else
            std::printf("%s: %s\n", text_of(doc.if_contains("id")).c_str(),
                        text_of(doc.if_contains("done")).c_str());
    } catch (const std::exception&) {
        std::cout << body;
    }
    return 0;
}

}  // namespace

int run_queue_command(const AdminOptions& options, const std::string& action,
                      const std::string& id) {
    auto request = request_for(action, id);
    if (!request) {
        std::cerr
            << "smtplb queue: use list | show ID | flush | hold ID | release ID | delete ID\n";
        return 64;
    }
    std::string path = "/api/v1/queue";
    for (const auto& p : request->parts)
        path += "/" + p;
    // The daemon's tracking line says who asked.
    if (request->parts.size() == 2) path += "?by=cli";
    if (options.config_path.empty()) {
        // No configuration: only a running daemon, at --admin, can answer.
        int status = 0;
        auto result = call(options, "queue", request->method, path, status);
        if (!result) return status;
        return print_answer(action, result->status, result->body, options.json);
    }
    auto loaded = config::load_file(options.config_path);
    if (!loaded.config) {
        std::cerr << loaded.diagnostics.format(options.config_path);
        return 64;
    }
    const auto& config = *loaded.config;
    struct stat st {};
    if (::stat((config.server.state_dir + "/spool").c_str(), &st) != 0) {
        std::cerr << "smtplb queue: no spool in " << config.server.state_dir << "\n";
        return action == "list" ? 0 : 1;
    }
    // The daemon holds the spool's lock while it runs: if we get it, the
    // daemon is stopped and we work on the files ourselves.
    io::asio::io_context io;
    auto owned = std::make_shared<io::Spool>(io, config);  // as the daemon holds it
    auto& spool = *owned;
    std::string error;
    if (!spool.open(error)) {
        if (error.find("in use") == std::string::npos) {
            std::cerr << "smtplb queue: " << error << "\n";
            return 1;
        }
        int status = 0;
        auto result = call(options, "queue", request->method, path, status);
        if (!result) return status;
        return print_answer(action, result->status, result->body, options.json);
    }
    spool.set_event_log([](const std::string&) {});
    while (spool.scanning() && io.run_one() > 0) {
    }
    if (action == "flush") {
        std::cout << "the daemon is not running: queued mail is delivered when it starts\n";
        return 0;
    }
    // The daemon is stopped: the tracking line goes to its log from here;
    // only to an existing file (one made here would be root's, which the
    // daemon's own user could not open).
    std::unique_ptr<io::TrackingLog> tracking;
    const auto& log_path = config.server.tracking_log;
    if (log_path != "-" && !log_path.empty() && ::stat(log_path.c_str(), &st) == 0)
        tracking = std::make_unique<io::TrackingLog>(log_path);
    auto answer = admin::handle_queue_request(
        &spool, request->method, request->parts, "limit=1000000",
        [&](const core::SpoolQueue::Entry& message, const std::string& done) {
            if (tracking) tracking->write(admin::queue_action_line(message, done, "cli"));
        });
    return print_answer(action, answer.status, answer.body, options.json);
}

}  // namespace smtplb::app
