#include <boost/json.hpp>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "core/report.hpp"

namespace smtplb::app {
namespace json = boost::json;

namespace {

std::string string_at(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// One tracking-log line, or nothing when it is not one.
std::optional<core::ReportInput> parse_line(const std::string& line) {
    json::error_code ec;
    auto value = json::parse(line, ec);
    if (ec || !value.is_object()) return std::nullopt;
    const auto& o = value.as_object();
    const auto* time = o.if_contains("time_ms");
    if (!time || !time->is_int64()) return std::nullopt;
    core::ReportInput in;
    in.time_ms = time->as_int64();
    in.result = string_at(o, "result");
    in.listener = string_at(o, "listener");
    in.client = string_at(o, "client");
    if (const auto* attempts = o.if_contains("attempts"); attempts && attempts->is_array()) {
        const auto& a = attempts->as_array();
        if (!a.empty() && a.back().is_object())
            in.backend = string_at(a.back().as_object(), "backend");
    }
    if (const auto* domains = o.if_contains("recipient_domains"); domains && domains->is_array())
        for (const auto& d : domains->as_array())
            if (d.is_string()) in.domains.emplace_back(d.as_string());
    return in;
}

}  // namespace

int run_report(const ReportOptions& options) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (options.log != "-") {
        file.open(options.log);
        if (!file) {
            std::cerr << "smtplb report: cannot read " << options.log << "\n";
            return 1;
        }
        in = &file;
    }
    std::vector<core::ReportInput> lines;
    std::uint64_t bad = 0;
    for (std::string line; std::getline(*in, line);) {
        if (line.empty()) continue;
        if (auto parsed = parse_line(line))
            lines.push_back(std::move(*parsed));
        else
            ++bad;
    }
    auto report = core::build_report(lines, options.by, options.interval);
    std::cout << report.table();
    if (bad) std::cerr << "smtplb report: " << bad << " lines are not tracking records; skipped\n";
    if (!options.svg.empty()) {
        std::ofstream out(options.svg);
        out << report.svg();
        if (!out) {
            std::cerr << "smtplb report: cannot write " << options.svg << "\n";
            return 1;
        }
    }
    return 0;
}

}  // namespace smtplb::app
